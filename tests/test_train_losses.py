"""Training losses: SSIM/PSNR, the perceptual losses (LPIPS loading, the SSIM substitute),
the mesh and Gaussian regularisers, and the screen-space densification signal."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from offline import run_offline
from oneshot_avatar.avatar.binding import barycentric_from_local
from oneshot_avatar.errors import BadFileError
from oneshot_avatar.train.densification import screen_gradient_norms
from oneshot_avatar.train.losses import d_ssim, l1, psnr, ssim, ssim_map
from oneshot_avatar.train.perceptual import (
    LPIPS,
    LPIPS_CHANNELS,
    SSIMPerceptual,
    _gradient_magnitude,
    gradient_difference,
    load_vgg16_features,
    lpips_package_weights,
    make_perceptual,
    vgg16_features,
)
from oneshot_avatar.train.regularizers import (
    MeshTopology,
    laplacian_loss,
    normal_consistency_loss,
    normal_consistency_torch,
    offset_magnitude_loss,
    position_loss,
    scale_loss,
    uniform_laplacian,
)


def _image(seed: int = 0, size: int = 48) -> torch.Tensor:
    """A smooth random colour image [1, 3, size, size] with edges (blocks + gradients)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=g)
    blocks = F.interpolate(coarse, size=(size, size), mode="nearest")
    ramp = torch.linspace(0, 1, size).view(1, 1, 1, size).expand(1, 3, size, size)
    return (0.7 * blocks + 0.3 * ramp).clamp(0, 1)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-t * t / (2 * sigma * sigma))
    w = w / w.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, w.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, w.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)


def _noisy(x: torch.Tensor, level: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + level * torch.randn(x.shape, generator=g)).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# SSIM, PSNR


def test_ssim_and_psnr_values():
    x = _image()
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert float(d_ssim(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(l1(x, x)) == 0.0
    # A uniform error of 0.1 is an MSE of 0.01: 20 dB.
    assert psnr(x * 0 + 0.5, x * 0 + 0.6) == pytest.approx(20.0, abs=1e-4)
    mask = torch.zeros(1, 1, 48, 48)
    mask[..., :24, :] = 1
    y = x.clone()
    y[..., 24:, :] += 0.3  # errors outside the mask only
    assert psnr(y, x, mask) == float("inf")
    assert psnr(y, x) < 20
    assert float(d_ssim(_blur(x, 1.0), x)) > 0.01


# ---------------------------------------------------------------------------------------------
# The SSIM-based substitute


def test_ssim_perceptual_zero_on_identical_and_monotone():
    loss = SSIMPerceptual()
    x = _image(3)
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    blurred = [float(loss(_blur(x, s), x)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in itertools.pairwise(blurred)), blurred
    noisy = [float(loss(_noisy(x, s), x)) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a < b for a, b in itertools.pairwise(noisy)), noisy
    pred = x.clone().requires_grad_(True)
    loss(_blur(pred, 1.0), x).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# LPIPS


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """A random-weight VGG16 in torchvision's key layout (plus a classifier key that must be
    ignored) and random non-negative LPIPS linear layers under the lpips package's names."""
    folder = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    features = vgg16_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    vgg = folder / "vgg16.pth"
    torch.save(state, vgg)
    lin_state = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}
    lin = folder / "vgg.pth"
    torch.save(lin_state, lin)
    return vgg, lin, state, lin_state


def test_lpips_loads_weights_by_key_name(lpips_files):
    vgg, lin, state, lin_state = lpips_files
    model = LPIPS.from_files(vgg, lin)
    for index in (0, 2, 5, 28):
        assert torch.equal(model.features[index].weight, state[f"features.{index}.weight"])
        assert torch.equal(model.features[index].bias, state[f"features.{index}.bias"])
    for i in range(5):
        assert torch.equal(getattr(model, f"lin{i}"), lin_state[f"lin{i}.model.1.weight"])
    assert not any(p.requires_grad for p in model.parameters())


def test_lpips_distance_behaviour(lpips_files):
    vgg, lin, *_ = lpips_files
    model = make_perceptual("cpu", vgg_weights=vgg, lin_weights=lin)
    assert isinstance(model, LPIPS) and model.name == "lpips-vgg"
    x = _image(5, 64)
    assert float(model(x, x)) == pytest.approx(0.0, abs=1e-7)
    distances = [float(model(_noisy(x, s), x)) for s in (0.02, 0.08, 0.3)]
    assert 0 < distances[0] < distances[1] < distances[2], distances
    pred = _noisy(x, 0.1).requires_grad_(True)
    model(pred, x).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_lpips_bad_files_name_the_file(lpips_files, tmp_path):
    vgg, lin, state, _ = lpips_files
    missing = tmp_path / "nope.pth"
    with pytest.raises(BadFileError, match="nope.pth"):
        LPIPS.from_files(missing, lin)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(BadFileError, match="corrupt.pth"):
        LPIPS.from_files(vgg, corrupt)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if k != "features.12.weight"}, partial)
    with pytest.raises(BadFileError, match=r"partial.pth.*features\.12\.weight"):
        load_vgg16_features(partial)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, 3, 1, 1) for i in range(5)}, wrong)
    with pytest.raises(BadFileError, match=r"lin0\.model\.1\.weight"):
        LPIPS.from_files(vgg, wrong)
    with pytest.raises(BadFileError, match="vgg16.pth"):  # one file alone is not enough
        make_perceptual("cpu", vgg_weights=vgg)


def test_make_perceptual_discovery(lpips_files, tmp_path, monkeypatch):
    vgg, lin, *_ = lpips_files
    monkeypatch.delenv("ONESHOT_AVATAR_VGG16", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    if lpips_package_weights() is None:
        assert isinstance(make_perceptual("cpu"), SSIMPerceptual)
    # An lpips package is found without being imported (its __init__ would fail here).
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "weights" / "v0.1" / "vgg.pth").write_bytes(lin.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert lpips_package_weights() == package / "weights" / "v0.1" / "vgg.pth"
    assert isinstance(make_perceptual("cpu"), SSIMPerceptual)  # no VGG16 yet
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "vgg16-397923af.pth").write_bytes(vgg.read_bytes())
    assert isinstance(make_perceptual("cpu"), LPIPS)
    monkeypatch.setenv("ONESHOT_AVATAR_VGG16", str(tmp_path / "missing_vgg.pth"))
    with pytest.raises(BadFileError, match="missing_vgg.pth"):
        make_perceptual("cpu")


# ---------------------------------------------------------------------------------------------
# Regularisers


def _octahedron():
    vertices = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                            dtype=torch.float32)
    faces = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                          [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return vertices, faces


# ---------------------------------------------------------------------------------------------
# The compiled CPU twins of the image losses and mesh regularisers


def _value_and_gradient(fn, x):
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def _with_threads(count, fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("shape", [(1, 3, 64, 48), (2, 3, 40, 23), (1, 3, 9, 30), (1, 1, 5, 5)])
def test_compiled_ssim_matches_pytorch_values_and_gradients(shape):
    """Training's D-SSIM and the perceptual substitute use the compiled mean SSIM on the CPU:
    its value and gradient equal ``ssim_map(...).mean()`` under autograd (float64), for
    batches, images smaller than the window (it shrinks) and one channel, and do not depend
    on the number of threads."""
    pytest.importorskip("numba")
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    expected = _value_and_gradient(lambda v: ssim_map(v, y).mean(), x)
    got = _value_and_gradient(lambda v: ssim(v, y), x)
    torch.testing.assert_close(got[0], expected[0], atol=1e-14, rtol=1e-12)
    assert expected[1].abs().max() > 1e-5
    torch.testing.assert_close(got[1], expected[1], atol=1e-15, rtol=1e-10)
    single = _with_threads(1, lambda: _value_and_gradient(lambda v: ssim(v, y), x))
    assert torch.equal(single[0], got[0]) and torch.equal(single[1], got[1])


def test_compiled_gradient_difference_matches_pytorch():
    """The perceptual substitute's ``mean |G(x) - G(y)|`` (Sobel magnitude of the luminance):
    compiled value and gradient equal PyTorch's (float64), down to a 3 x 3 image."""
    pytest.importorskip("numba")
    g = torch.Generator().manual_seed(3)
    for shape in [(1, 3, 40, 33), (2, 3, 3, 3)]:
        x = torch.rand(shape, generator=g, dtype=torch.float64)
        y = torch.rand(shape, generator=g, dtype=torch.float64)
        expected = _value_and_gradient(
            lambda v: (_gradient_magnitude(v) - _gradient_magnitude(y)).abs().mean(), x)  # noqa: B023
        got = _value_and_gradient(lambda v: gradient_difference(v, y), x)  # noqa: B023
        torch.testing.assert_close(got[0], expected[0], atol=1e-14, rtol=1e-12)
        assert expected[1].abs().max() > 1e-4
        torch.testing.assert_close(got[1], expected[1], atol=1e-15, rtol=1e-10)


def test_compiled_mesh_regularisers_match_pytorch(open_body):
    """On the open body with random offsets, the compiled Laplacian and normal-consistency
    terms and their gradients equal the PyTorch formulas (float64), with any thread count."""
    pytest.importorskip("numba")
    with torch.no_grad():
        rest = open_body().vertices[0].double()
    faces = open_body.faces
    topology = MeshTopology.from_faces(faces, rest.shape[0])
    g = torch.Generator().manual_seed(7)
    offsets = 0.01 * torch.randn(rest.shape, generator=g, dtype=torch.float64)
    cases = [
        (lambda o: laplacian_loss(o, topology),
         lambda o: uniform_laplacian(o, topology).pow(2).sum(-1).mean()),
        (lambda o: normal_consistency_loss(rest + o, faces, topology),
         lambda o: normal_consistency_torch(rest + o, faces, topology)),
    ]
    for compiled, reference in cases:
        expected = _value_and_gradient(reference, offsets)
        got = _value_and_gradient(compiled, offsets)
        torch.testing.assert_close(got[0], expected[0], atol=1e-15, rtol=1e-12)
        assert expected[1].abs().max() > 1e-7
        torch.testing.assert_close(got[1], expected[1], atol=1e-15, rtol=1e-9)
        single = _with_threads(1, lambda: _value_and_gradient(compiled, offsets))  # noqa: B023
        assert torch.equal(single[0], got[0]) and torch.equal(single[1], got[1])


def test_the_compiled_training_pieces_run_with_the_network_refused(tmp_path):
    """The compiled placement, image losses and mesh regularisers (their kernels, the atomic
    and prefetch intrinsics, numba's cache) need no network: a fresh interpreter whose sockets
    refuse to connect runs each forward and backward."""
    pytest.importorskip("numba")
    done = run_offline("""
        import torch
        from oneshot_avatar.avatar.cpu_place import place_cpu_grad
        from oneshot_avatar.train.losses import ssim
        from oneshot_avatar.train.perceptual import gradient_difference
        from oneshot_avatar.train.regularizers import (
            MeshTopology, laplacian_loss, normal_consistency_loss)
        g = torch.Generator().manual_seed(0)
        vertices = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1],
                                 [0, 0, -1]]).requires_grad_(True)
        faces = torch.tensor([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4], [1, 0, 5], [2, 1, 5],
                              [3, 2, 5], [0, 3, 5]])
        binding = torch.arange(8)
        local = [torch.rand(8, 3, generator=g), torch.nn.functional.normalize(
                 torch.randn(8, 4, generator=g), dim=-1), torch.rand(8, 3, generator=g)]
        means, quats, scales = place_cpu_grad(vertices[None], faces, binding, *local)
        topology = MeshTopology.from_faces(faces, 6)
        image = torch.rand(1, 3, 24, 20, generator=g, requires_grad=True)
        target = torch.rand(1, 3, 24, 20, generator=g)
        total = (means.sum() + quats.sum() + scales.sum() + laplacian_loss(vertices, topology)
                 + normal_consistency_loss(vertices * 1.1, faces, topology)
                 + ssim(image, target) + gradient_difference(image, target))
        total.backward()
        print("gradients", int(vertices.grad.abs().sum() > 0) + int(image.grad.abs().sum() > 0))
    """, "the compiled training pieces", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("gradients")[1].strip() == "2"


def test_mesh_topology_of_an_octahedron():
    _, faces = _octahedron()
    topology = MeshTopology.from_faces(faces, 6)
    assert topology.edges.shape == (12, 2)
    assert torch.equal(topology.degree, torch.full((6,), 4.0))
    assert topology.face_pairs.shape == (12, 2)
    shared = [len(set(faces[a].tolist()) & set(faces[b].tolist())) for a, b in topology.face_pairs.tolist()]
    assert shared == [2] * 12


def test_laplacian_and_offset_values():
    _, faces = _octahedron()
    topology = MeshTopology.from_faces(faces, 6)
    zero = torch.zeros(6, 3)
    assert float(laplacian_loss(zero, topology)) == 0.0
    assert float(laplacian_loss(zero + torch.tensor([0.3, -0.2, 0.1]), topology)) == pytest.approx(0, abs=1e-12)
    # One vertex moved by d: L = d there, -d/4 at its 4 neighbours, 0 at the opposite vertex.
    d = torch.tensor([0.02, -0.01, 0.03])
    offsets = zero.clone()
    offsets[4] = d
    lap = uniform_laplacian(offsets, topology)
    assert torch.allclose(lap[4], d)
    assert torch.allclose(lap[[0, 1, 2, 3]], -d.expand(4, 3) / 4)
    assert torch.allclose(lap[5], torch.zeros(3))
    expected = float(d.pow(2).sum()) * (1 + 4 / 16) / 6
    assert float(laplacian_loss(offsets, topology)) == pytest.approx(expected, rel=1e-5)
    assert float(offset_magnitude_loss(offsets)) == pytest.approx(float(d.pow(2).sum()) / 6, rel=1e-6)


def test_normal_consistency_values():
    # Two triangles sharing the edge (0, 1) along x; the second rotated by theta about it.
    theta = 0.7
    vertices = torch.tensor([[0, 0, 0], [1, 0, 0], [0.5, 1, 0],
                             [0.5, -math.cos(theta), -math.sin(theta)]], dtype=torch.float32)
    faces = torch.tensor([[0, 1, 2], [1, 0, 3]])
    topology = MeshTopology.from_faces(faces, 4)
    assert topology.face_pairs.shape == (1, 2)
    assert float(normal_consistency_loss(vertices, faces, topology)) == pytest.approx(1 - math.cos(theta), abs=1e-6)
    flat = vertices.clone()
    flat[3] = torch.tensor([0.5, -1.0, 0.0])
    assert float(normal_consistency_loss(flat, faces, topology)) == pytest.approx(0.0, abs=1e-7)


def test_position_and_scale_values():
    local = torch.tensor([[0.0, 0.0, 0.0],  # centroid, on the plane: free
                          [0.0, 0.0, 0.4],  # 0.4 off the plane: 0.4 - 0.25 beyond tolerance
                          [0.5, 0.0, 0.0]])  # barycentric (-1/6, 5/6, 1/3): 1/6 outside
    assert torch.allclose(barycentric_from_local(local).sum(-1), torch.ones(3))
    expected = (0.0 + 0.15 + 1 / 6) / 3
    assert float(position_loss(local, normal_tolerance=0.25)) == pytest.approx(expected, rel=1e-5)
    assert float(position_loss(local[:1])) == 0.0
    log_scales = torch.log(torch.tensor([[0.3, 0.2, 0.01], [0.9, 0.1, 0.1]]))
    assert float(scale_loss(log_scales, 0.6)) == pytest.approx(0.3 / 2, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Densification signal


def test_screen_gradient_matches_gradient_of_projected_means():
    """For a loss of the projected 2D means only, the signal derived from the 3D gradient is
    the 2D gradient's norm times (W/2, H/2)."""
    from oneshot_avatar.cameras import look_at

    camera = look_at((0.3, 0.2, 3.0), (0.0, 0.0, 0.0), width=80, height=60, fov_y_degrees=40.0)
    g = torch.Generator().manual_seed(0)
    means = (0.4 * torch.randn(1, 50, 3, generator=g)).requires_grad_(True)
    pixels, _depth = camera.project(means)
    weights = torch.randn(1, 50, 2, generator=g)
    (weights * pixels.pow(2)).sum().backward()
    expected = (weights * 2 * pixels.detach() * torch.tensor([40.0, 30.0])).norm(dim=-1)
    norms, visible = screen_gradient_norms(means.detach(), means.grad, camera.world_to_cam[None, None],
                                           camera.K[None, None], 80, 60)
    assert torch.allclose(norms[0, 0], expected[0], rtol=1e-4, atol=1e-5)
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < 80) & (pixels[..., 1] >= 0) & (pixels[..., 1] < 60)
    assert torch.equal(visible[0, 0], inside[0])
