"""The person's own colour at the mask's edge (train.foreground): training composites its
targets from it, so the avatar learns no fringe of the backdrop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oneshot_avatar.train.foreground import foreground_colors, spread_colors


def _soft_disc(size: int = 48, radius: float = 14.0) -> torch.Tensor:
    """A disc with a soft, 4-pixel edge: coverage [1, H, W]."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                          torch.arange(size, dtype=torch.float32), indexing="ij")
    distance = ((x - size / 2) ** 2 + (y - size / 2) ** 2).sqrt()
    return ((radius - distance) / 4.0 + 0.5).clamp(0.0, 1.0)[None]


def _edge(mask: torch.Tensor) -> torch.Tensor:
    return (mask > 0.02) & (mask < 0.98)


def test_a_frame_rendered_over_black_gives_back_the_person_colour():
    """A label frame is the person premultiplied over a known black: its edge pixels are dark;
    the person's colour is recovered there, so the target over white has no dark outline."""
    mask = _soft_disc()
    person = torch.tensor([0.9, 0.6, 0.2]).reshape(3, 1, 1).expand(3, *mask.shape[1:])
    image = person * mask  # over black
    recovered = foreground_colors(image, mask, (0.0, 0.0, 0.0))
    edge = _edge(mask)[0]
    assert edge.sum() > 50
    assert torch.allclose(recovered[:, edge], person[:, edge], atol=1e-4)
    over_white = recovered * mask + (1 - mask)
    truth = person * mask + (1 - mask)
    old = image * mask + (1 - mask)  # what training composited before
    assert (over_white - truth).abs().max() < 1e-4
    assert (old - truth).abs()[:, edge].max() > 0.1  # the fringe this removes


def test_a_photo_backdrop_is_estimated_around_the_person():
    """A photo's backdrop is unknown: it is estimated from the pixels around the person, and
    the edge's colour comes out as the person's, not mixed with the backdrop."""
    mask = _soft_disc()
    person = torch.tensor([0.2, 0.3, 0.8]).reshape(3, 1, 1).expand(3, *mask.shape[1:])
    backdrop = torch.tensor([0.9, 0.9, 0.1]).reshape(3, 1, 1).expand_as(person)
    image = person * mask + backdrop * (1 - mask)
    recovered = foreground_colors(image, mask)
    edge = _edge(mask)[0]
    error = (recovered - person).abs()[:, edge]
    before = (image - person).abs()[:, edge]
    assert error.max() < 0.02, error.max()
    assert before.mean() > 10 * error.mean()


def test_a_textured_person_keeps_its_texture_inside_and_its_colours_at_the_edge():
    """Solid pixels keep the image's colour; edge pixels take colours of the person nearby,
    never the backdrop's."""
    g = torch.Generator().manual_seed(0)
    mask = _soft_disc()
    texture = F.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=mask.shape[1:],
                            mode="bilinear", align_corners=False)[0] * 0.5  # in [0, 0.5]
    backdrop = torch.ones_like(texture)  # far from every person colour
    image = texture * mask + backdrop * (1 - mask)
    recovered = foreground_colors(image, mask)
    solid = mask[0] >= 0.999
    assert torch.allclose(recovered[:, solid], image[:, solid], atol=1e-5)
    edge = _edge(mask)[0]
    assert recovered[:, edge].max() < 0.62  # the white backdrop is gone (the image has 1.0)
    assert image[:, edge].max() > 0.9


def test_spreading_reaches_as_far_as_asked():
    known = torch.zeros(1, 9, 9, dtype=torch.bool)
    known[0, 4, 4] = True
    image = torch.zeros(3, 9, 9)
    image[:, 4, 4] = 1.0
    values, reached = spread_colors(image, known, 2)
    assert int(reached.sum()) == 25  # a 5 x 5 square around the pixel
    assert torch.allclose(values[:, reached[0]], torch.ones(3, 25))


def test_the_edges_and_the_photo_field_of_view_need_no_network(tmp_path):
    """This round's additions fetch nothing: un-mixing the edges and reading the photo's EXIF
    focal length run in a fresh interpreter whose sockets refuse to connect."""
    from offline import run_offline

    done = run_offline("""
        import numpy as np, torch
        from PIL import Image
        from oneshot_avatar.subject.photo import exif_with_focal_length, load_photo
        from oneshot_avatar.train.foreground import foreground_colors
        mask = torch.zeros(1, 16, 16); mask[:, 4:12, 4:12] = 1.0; mask[:, 4, 4:12] = 0.5
        out = foreground_colors(torch.rand(3, 16, 16), mask)
        Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(
            "p.png", exif=exif_with_focal_length(40.0, 300, 200))
        print("fov", round(load_photo("p.png").fov_degrees), tuple(out.shape))
    """, "edges and field of view", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fov 40 (3, 16, 16)" in done.stdout
