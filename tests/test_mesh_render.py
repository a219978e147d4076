"""The pure-PyTorch mesh rasterizer and surface textures ("mesh colours")."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from oneshot_avatar.cameras import Camera, front_camera
from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.render.mesh import (
    SurfaceTexture,
    barycentric_grid,
    rasterize_mesh,
    render_textured,
    samples_per_face,
)


def identity_camera(size: int = 64, focal: float = 64.0, dtype=torch.float64) -> Camera:
    """At the origin looking along +z (world axes = OpenCV camera axes)."""
    K = torch.tensor([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], dtype=dtype)
    return Camera(K, torch.eye(4, dtype=dtype), size, size)


def unproject(camera: Camera, u: float, v: float, depth: float) -> list[float]:
    return [(u - camera.cx) * depth / camera.fx, (v - camera.cy) * depth / camera.fy, depth]


def quad(camera: Camera, u0: float, u1: float, v0: float, v1: float, depth: float):
    """Two triangles covering the pixel rectangle [u0, u1] x [v0, v1] at one depth."""
    corners = [unproject(camera, u, v, depth) for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]
    return (torch.tensor(corners, dtype=torch.float64),
            torch.tensor([[0, 1, 2], [0, 2, 3]]))


# --------------------------------------------------------------------------------------------
# Coverage, depth, barycentrics


def test_rectangle_covers_exactly_the_pixel_centres_inside_it():
    camera = identity_camera(64)
    vertices, faces = quad(camera, 10.3, 41.7, 5.2, 20.6, depth=2.0)
    raster = rasterize_mesh(vertices, faces, camera)
    cols = (np.arange(64) + 0.5 >= 10.3) & (np.arange(64) + 0.5 <= 41.7)
    rows = (np.arange(64) + 0.5 >= 5.2) & (np.arange(64) + 0.5 <= 20.6)
    expected = rows[:, None] & cols[None, :]
    assert np.array_equal(raster.mask.numpy(), expected)
    # The shared diagonal leaves no hole and the background is marked.
    assert set(raster.face_id[raster.mask].unique().tolist()) == {0, 1}
    assert torch.isinf(raster.depth[~raster.mask]).all()
    assert torch.allclose(raster.depth[raster.mask], torch.tensor(2.0, dtype=torch.float64))


@pytest.mark.parametrize("winding", [(0, 1, 2), (0, 2, 1)])
def test_triangle_coverage_matches_its_area_with_supersampling(winding):
    camera = identity_camera(48)
    corners = [(6.3, 7.1), (40.2, 12.9), (17.5, 43.4)]
    vertices = torch.tensor([unproject(camera, u, v, 3.0) for u, v in corners], dtype=torch.float64)
    faces = torch.tensor([winding])
    (u0, v0), (u1, v1), (u2, v2) = corners
    area = abs((u1 - u0) * (v2 - v0) - (v1 - v0) * (u2 - u0)) / 2
    _, mask = render_textured(vertices, faces, constant_texture(1, (1.0, 1.0, 1.0)), camera,
                              supersample=8)
    assert abs(float(mask.sum()) - area) < 0.01 * area
    # Both windings are drawn: the rasterizer does not cull back faces.
    assert float(mask.max()) == 1.0


def constant_texture(num_faces: int, rgb, resolution: int = 2) -> SurfaceTexture:
    s = samples_per_face(resolution)
    colors = torch.tensor(rgb, dtype=torch.float32).expand(num_faces, s, 3).clone()
    return SurfaceTexture(colors, torch.ones(num_faces, s, dtype=torch.bool), resolution)


@pytest.mark.parametrize("order", ["near_first", "far_first"])
def test_nearer_triangle_wins_whatever_the_face_order(order):
    camera = identity_camera(32)
    near_v, _ = quad(camera, 4.0, 20.0, 4.0, 20.0, depth=1.5)
    far_v, _ = quad(camera, 12.0, 28.0, 12.0, 28.0, depth=4.0)
    vertices = torch.cat([near_v, far_v]) if order == "near_first" else torch.cat([far_v, near_v])
    near_faces = [0, 1] if order == "near_first" else [2, 3]
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    raster = rasterize_mesh(vertices, faces, camera)
    overlap = raster.face_id[14:18, 14:18]
    assert torch.isin(overlap, torch.tensor(near_faces)).all()
    assert torch.allclose(raster.depth[14:18, 14:18], torch.tensor(1.5, dtype=torch.float64))
    far_only = raster.face_id[24:26, 24:26]
    assert not torch.isin(far_only, torch.tensor(near_faces)).any()
    assert torch.allclose(raster.depth[24:26, 24:26], torch.tensor(4.0, dtype=torch.float64))


def test_barycentrics_and_depth_are_perspective_correct():
    camera = identity_camera(64, focal=40.0)
    A, B, C = [-0.5, -0.5, 1.0], [0.9, -0.3, 3.5], [-0.2, 0.8, 2.0]
    vertices = torch.tensor([A, B, C], dtype=torch.float64)
    raster = rasterize_mesh(vertices, torch.tensor([[0, 1, 2]]), camera)
    rows, cols = torch.nonzero(raster.mask, as_tuple=True)
    assert rows.numel() > 300
    # Exact: intersect each pixel-centre ray with the triangle's plane.
    u, v = cols.double() + 0.5, rows.double() + 0.5
    rays = torch.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy,
                        torch.ones_like(u)], dim=1)
    corners = vertices.T  # columns A, B, C
    normal = torch.linalg.cross(vertices[1] - vertices[0], vertices[2] - vertices[0])
    t = (normal @ vertices[0]) / (rays @ normal)
    points = rays * t[:, None]
    exact = torch.linalg.solve(corners, points.T).T  # points = corners @ bary
    assert torch.allclose(raster.bary[rows, cols], exact, atol=1e-9)
    assert torch.allclose(raster.depth[rows, cols], points[:, 2], atol=1e-9)
    # Screen-space (affine) interpolation would be far off for this slanted triangle.
    assert (exact - exact.mean(0)).abs().max() > 0.3


def test_triangles_reaching_behind_the_near_plane_are_dropped():
    camera = identity_camera(32)
    vertices = torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, -1.0],
                             [-0.3, -0.3, 1.0], [0.3, -0.3, 1.0], [0.0, 0.3, 1.0]],
                            dtype=torch.float64)
    raster = rasterize_mesh(vertices, torch.tensor([[0, 1, 2], [3, 4, 5]]), camera)
    assert set(raster.face_id[raster.mask].tolist()) == {1}


def test_small_chunks_give_the_same_image(open_body):
    with torch.no_grad():
        vertices = open_body().vertices[0]
    camera = front_camera([0.0, -0.4, 0.0], 3.0, 96, 96, 40.0)
    whole = rasterize_mesh(vertices, open_body.faces, camera)
    chunked = rasterize_mesh(vertices, open_body.faces, camera, chunk_size=997)
    assert torch.equal(whole.face_id, chunked.face_id)
    assert torch.equal(whole.depth, chunked.depth)


def test_body_silhouette_matches_the_projected_triangles(open_body):
    """Reference: every projected triangle filled by OpenCV, whose fill is conservative (it also
    takes pixels an edge merely touches): ours must lie inside it and hold all of it but a
    one-pixel rim."""
    with torch.no_grad():
        vertices = open_body(global_orient=torch.tensor([[0.0, 0.6, 0.0]])).vertices[0]
    size = 512
    camera = front_camera([0.0, -0.4, 0.0], 2.6, size, size, 40.0)
    raster = rasterize_mesh(vertices, open_body.faces, camera)
    pixels, vertex_depth = camera.project(vertices)
    shift = 4  # OpenCV's fixed-point sub-pixel bits; its pixel centres sit at integers
    points = np.round((pixels.numpy() - 0.5) * (1 << shift)).astype(np.int32)
    reference = np.zeros((size, size), np.uint8)
    for triangle in points[open_body.faces.numpy()]:
        cv2.fillConvexPoly(reference, triangle, 1, lineType=cv2.LINE_8, shift=shift)
    ours = raster.mask.numpy()
    filled = reference > 0
    assert not (ours & ~filled).any()
    core = cv2.erode(reference, np.ones((3, 3), np.uint8)) > 0
    assert (core & ~ours).sum() <= 1e-3 * core.sum()
    iou = (ours & filled).sum() / (ours | filled).sum()
    assert iou > 0.95, iou
    depths = raster.depth[raster.mask]
    assert depths.min() >= vertex_depth.min() - 1e-5 and depths.max() <= vertex_depth.max() + 1e-5


def test_bad_inputs_are_rejected():
    camera = identity_camera(16)
    good = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, 0.1, 1.0]])
    with pytest.raises(UserError, match="vertices"):
        rasterize_mesh(good[:, :2], torch.tensor([[0, 1, 2]]), camera)
    with pytest.raises(UserError, match="outside"):
        rasterize_mesh(good, torch.tensor([[0, 1, 3]]), camera)
    with pytest.raises(UserError, match="supersample"):
        rasterize_mesh(good, torch.tensor([[0, 1, 2]]), camera, supersample=0)


# --------------------------------------------------------------------------------------------
# Surface texture


def test_grid_layout():
    grid = barycentric_grid(3, dtype=torch.float64)
    assert grid.shape == (10, 3) and samples_per_face(3) == 10
    assert torch.allclose(grid.sum(1), torch.ones(10, dtype=torch.float64))
    assert len({tuple(row) for row in (grid * 3).round().int().tolist()}) == 10


@pytest.mark.parametrize("resolution", [1, 3, 4])
def test_sampling_reproduces_linear_functions_and_grid_values(resolution):
    g = torch.Generator().manual_seed(resolution)
    vertices = torch.randn(30, 3, generator=g)
    faces = torch.randint(0, 30, (40, 3), generator=g)
    texture = SurfaceTexture.from_function(vertices, faces, lambda p, n: 0.3 * p + 0.5, resolution)
    bary = torch.rand(40, 25, 3, generator=g) ** 3  # many points near edges and corners
    bary = bary / bary.sum(-1, keepdim=True)
    bary[:, 0] = torch.tensor([1.0, 0.0, 0.0])
    bary[:, 1] = torch.tensor([0.0, 0.0, 1.0])
    face_id = torch.arange(40)[:, None].expand(40, 25)
    expected = 0.3 * torch.einsum("fsk,fkc->fsc", bary, vertices[faces]) + 0.5
    assert torch.allclose(texture.sample(face_id, bary), expected, atol=1e-5)
    grid = barycentric_grid(resolution)
    at_grid = texture.sample(torch.arange(40)[:, None].expand(40, grid.shape[0]),
                             grid.expand(40, -1, -1))
    assert torch.allclose(at_grid, texture.colors, atol=1e-6)


def test_sampling_is_continuous_inside_a_face():
    g = torch.Generator().manual_seed(0)
    texture = SurfaceTexture(torch.rand(1, samples_per_face(4), 3, generator=g),
                             torch.ones(1, samples_per_face(4), dtype=torch.bool), 4)
    t = torch.linspace(0, 1, 2001)
    path = torch.stack([0.9 * t, 0.1 + 0.8 * (1 - t), torch.zeros_like(t)], 1)
    path[:, 2] = 1 - path[:, :2].sum(1)
    colours = texture.sample(torch.zeros(2001, dtype=torch.long), path)
    assert (colours[1:] - colours[:-1]).abs().max() < 0.02
    background = texture.sample(torch.tensor([-1]), torch.tensor([[0.2, 0.3, 0.5]]))
    assert torch.equal(background, torch.zeros(1, 3))


def test_textured_render_of_a_gradient_matches_the_function():
    camera = identity_camera(48)
    vertices, faces = quad(camera, 0.0, 48.0, 0.0, 48.0, depth=2.0)
    texture = SurfaceTexture.from_function(vertices.float(), faces,
                                           lambda p, n: (p + 1.0) / 2.0, 4)
    rgb, mask = render_textured(vertices.float(), faces, texture, camera.to(dtype=torch.float32),
                                supersample=2)
    assert torch.equal(mask, torch.ones(48, 48))
    centres = (torch.arange(48) + 0.5 - 24.0) * 2.0 / 64.0
    expected_x = (centres + 1.0) / 2.0
    assert torch.allclose(rgb[5, :, 0], expected_x, atol=1e-4)
    assert torch.allclose(rgb[:, 7, 1], expected_x, atol=1e-4)


def test_background_and_coverage_blend_at_edges():
    camera = identity_camera(32)
    vertices, faces = quad(camera, 8.5, 20.25, 8.0, 24.0, depth=2.0)
    texture = constant_texture(2, (1.0, 0.5, 0.0))
    rgb, mask = render_textured(vertices, faces, texture, camera, background=(0.0, 0.0, 1.0),
                                supersample=4)
    assert mask[16, 8].item() == pytest.approx(0.5)
    assert mask[16, 20].item() == pytest.approx(0.25)
    expected = torch.tensor([1.0, 0.5, 0.0]) * mask[..., None] + \
        torch.tensor([0.0, 0.0, 1.0]) * (1 - mask[..., None])
    assert torch.allclose(rgb, expected, atol=1e-6)


def test_texture_file_round_trip_and_validation(tmp_path):
    g = torch.Generator().manual_seed(1)
    s = samples_per_face(2)
    texture = SurfaceTexture(torch.rand(5, s, 3, generator=g), torch.rand(5, s, generator=g) > 0.5,
                             2, confidence=torch.rand(5, s, generator=g))
    path = tmp_path / "texture.npz"
    texture.save(path)
    back = SurfaceTexture.load(path)
    assert back.resolution == 2
    assert torch.equal(back.colors, texture.colors) and torch.equal(back.known, texture.known)
    assert torch.equal(back.confidence, texture.confidence)
    np.savez(tmp_path / "bad.npz", schema=np.array("oneshot-avatar/surface-texture/1"),
             resolution=np.array(2), colors=np.zeros((5, 7, 3), np.float32),
             known=np.ones((5, 7), bool))
    with pytest.raises(BadFileError, match="colors"):
        SurfaceTexture.load(tmp_path / "bad.npz")
    with pytest.raises(BadFileError, match="not found"):
        SurfaceTexture.load(tmp_path / "missing.npz")
    with pytest.raises(UserError, match="fn"):
        SurfaceTexture.from_function(torch.rand(3, 3), torch.tensor([[0, 1, 2]]),
                                     lambda p, n: p[:, :2], 2)
