"""Parity of the compiled CPU rasterizer (``backend="cpu"``) with the PyTorch reference
(``backend="torch"``), on values and gradients of every input, plus the degenerate cases.

Run with ``-s`` to see the error figures: every comparison prints ``max|cpu - torch|`` next to
its tolerance before anything is asserted.

Tolerances. The reference runs in the inputs' dtype (float32 here); the CPU path converts to
float64, blends and projects in float64 and rounds its results back to float32. The two are
the same formulas (same cutoffs, clamp, eps2d, SH, depth and background), so what differs is
the reference's float32 rounding: ~6e-8 relative per operation, accumulated over the ~100
Gaussians a pixel composites and, for gradients, over the pixels a Gaussian covers.

* rgb, alpha: max abs error <= 2e-5 over every pixel of every image (values in [0, 1]);
* depth: max abs error <= 2e-4 m where alpha > 0.01 (the expected depth divides by alpha);
* gradients, normalised by the largest reference gradient of the same quantity
  (``max|g_cpu - g_torch| / max|g_torch|``): colours / SH, opacities and backgrounds 2e-5
  (linear in the weights), means, quats and scales 2e-4 (through the conic inverse, where
  float32 cancellation is largest); and cosine similarity >= 0.99999 for each. Measured with
  these seeds: 1e-7 to 3e-6.

A pixel where one side has a Gaussian's alpha a rounding error above 1/255 and the other below
(or T on either side of 1e-4) would differ by up to ~4e-3: possible in principle, not seen
with these seeds; the printed "pixels over tol" would then be 1 or 2, not thousands.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import pytest
import torch

from oneshot_avatar.render import choose_backend, cpu_available, rasterize_gaussians
from oneshot_avatar.render import torch_rasterizer as reference
from offline import run_offline
from raster_scenes import box_gaussians, cameras

pytestmark = pytest.mark.skipif(not cpu_available(), reason="needs numba (pip install numba)")

VALUE_TOL = {"rgb": 2e-5, "alpha": 2e-5, "depth": 2e-4}
GRAD_TOL = {
    "means": 2e-4, "quats": 2e-4, "scales": 2e-4, "opacities": 2e-5, "colors": 2e-5,
    "backgrounds": 2e-5, "viewmats": 2e-4,
}
MIN_COSINE = 0.99999


def random_scene(n: int, batch: int, seed: int, sh_degree: int | None) -> dict:
    """Gaussians in a body-sized box around (0, 0, 3) plus the awkward ones: behind the
    cameras, far off to the side but large (FOV clamp, off-screen), faint, zero opacity, tiny,
    huge, and a stack of opaque ones (early termination)."""
    scene = box_gaussians(n, batch, seed, sh_degree)
    means, scales, opacities = scene["means"], scene["scales"], scene["opacities"]
    k = n // 50
    means[:, :k, 2] = -1.0  # behind every camera
    means[:, k : 2 * k, 0] = 4.0  # off to the side, and large
    scales[:, k : 2 * k] *= 20
    scales[:, 2 * k : 3 * k] = 1e-6  # tiny: the eps2d blur alone sets their footprint
    scales[:, 3 * k] = torch.tensor([0.8, 0.5, 0.6])  # huge: covers the images
    opacities[:, 3 * k] = 0.3
    opacities[:, 3 * k + 1 : 4 * k] = 0.0  # invisible
    opacities[:, 4 * k : 5 * k] = 0.003  # below 1/255: culled
    return scene


def render(backend, scene, viewmats, Ks, width, height, sh_degree, backgrounds, *,
           camera_grad=False, grad=True):
    """Values and the gradients of a loss on rgb, alpha and depth for every input."""
    leaves = {k: v.detach().clone().requires_grad_(grad) for k, v in scene.items()}
    bg = None if backgrounds is None else backgrounds.detach().clone().requires_grad_(grad)
    views = viewmats.detach().clone().requires_grad_(camera_grad)
    with torch.set_grad_enabled(grad):
        out = rasterize_gaussians(
            leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"],
            leaves["colors"], views, Ks, width, height, sh_degree=sh_degree, backgrounds=bg,
            near=0.05, far=20.0, backend=backend,
        )
    assert out.backend == backend
    grads = {}
    if grad:
        g = torch.Generator().manual_seed(5)
        w_rgb = torch.rand(out.rgb.shape, generator=g).to(out.rgb.dtype)  # same in any dtype
        solid = (out.alpha.detach() > 0.05).to(out.alpha.dtype)  # keep 1/alpha tame
        loss = (out.rgb * w_rgb).sum() + 0.3 * out.alpha.sum() + 0.1 * (out.depth * solid).sum()
        loss.backward()
        grads = {k: v.grad for k, v in leaves.items()}
        if bg is not None:
            grads["backgrounds"] = bg.grad
        if camera_grad:
            grads["viewmats"] = views.grad
    return out, grads


def compare(cpu, ref, *, expect_visible=True):
    """Print and assert the value and gradient errors against the tolerances."""
    (out_c, grads_c), (out_r, grads_r) = cpu, ref
    failures = []
    solid = out_r.alpha > 0.01
    print()
    for name in ("rgb", "alpha", "depth"):
        a, b = getattr(out_c, name).double(), getattr(out_r, name).double()
        assert a.shape == b.shape, name
        if name == "depth":
            a, b = a[solid], b[solid]
        err = (a - b).abs()
        worst = err.max().item() if err.numel() else 0.0
        tol = VALUE_TOL[name]
        print(f"  {name:9s} max abs err {worst:.3e} (tol {tol:.0e}), "
              f"pixels over tol {(err > tol).sum().item()}")
        if not worst <= tol:
            failures.append(f"{name}: max abs err {worst:.3e} > {tol:.0e}")
    for name, b in grads_r.items():
        a = grads_c[name]
        assert a is not None and b is not None, name
        a, b = a.double(), b.double()
        assert torch.isfinite(a).all(), f"non-finite d/d{name}"
        scale = b.abs().max().item()
        err = (a - b).abs().max().item()
        if scale == 0:
            # nothing to compare with; the float64 CPU path may keep a gradient that the
            # float32 reference underflows to 0 (a 1e-7 m Gaussian's quaternion: ~1e-28)
            print(f"  d/d{name:11s} reference zero: max |cpu| {a.abs().max().item():.3e}")
            if err > 1e-20:
                failures.append(f"d/d{name}: reference is zero, cpu has {err:.3e}")
            continue
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        tol = GRAD_TOL[name]
        print(f"  d/d{name:11s} normalised err {err / scale:.3e} (tol {tol:.0e}), "
              f"cosine {cosine:.8f}")
        if not (err / scale <= tol and cosine >= MIN_COSINE):
            failures.append(f"d/d{name}: normalised err {err / scale:.3e} (tol {tol:.0e}), "
                            f"cosine {cosine:.8f}")
    if expect_visible:
        assert (out_r.alpha > 0.5).any(), "the scene shows nothing: the test would prove little"
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("sh_degree", [None, 1, 3])
def test_random_scenes_match_the_reference_on_values_and_gradients(sh_degree):
    # B = 2 scenes x C = 3 cameras, 70 x 45 pixels: neither square nor a multiple of 16
    scene = random_scene(600, 2, seed=1 + (sh_degree or 0), sh_degree=sh_degree)
    scene["means"][1] += torch.tensor([0.05, -0.1, 0.1])  # the two scenes differ
    viewmats, Ks, backgrounds = cameras(2, 70, 45)
    cpu = render("cpu", scene, viewmats, Ks, 70, 45, sh_degree, backgrounds)
    ref = render("torch", scene, viewmats, Ks, 70, 45, sh_degree, backgrounds)
    compare(cpu, ref)


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3, 4])
def test_renders_without_gradients_evaluate_sh_like_the_reference(sh_degree):
    # Renders that need no gradient (previews, `render`, the service) evaluate the SH colours
    # with a compiled kernel instead of the reference's PyTorch function: in float64 the two
    # are the same formulas, for every degree, several scenes and cameras.
    scene = {k: v.double() for k, v in random_scene(300, 2, seed=11, sh_degree=sh_degree).items()}
    scene["colors"] = torch.cat([scene["colors"], scene["colors"][:, :, :2]], dim=2)  # K > used
    viewmats, Ks, backgrounds = cameras(2, 40, 30)
    cpu, _ = render("cpu", scene, viewmats.double(), Ks.double(), 40, 30, sh_degree,
                    backgrounds.double(), grad=False)
    ref, _ = render("torch", scene, viewmats.double(), Ks.double(), 40, 30, sh_degree,
                    backgrounds.double(), grad=False)
    assert (ref.alpha > 0.5).any()
    assert (cpu.rgb - ref.rgb).abs().max() < 1e-10
    assert (cpu.alpha - ref.alpha).abs().max() < 1e-10


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_compiled_sh_colours_match_the_reference_on_values_and_gradients(sh_degree):
    # Training evaluates the SH colours (and their gradients to the coefficients and to the
    # means, through the view direction) with compiled kernels: in float64 they are PyTorch's
    # formulas, with the clamp at 0 hit, a zero-length direction and unused coefficients.
    from oneshot_avatar.render.cpu_rasterizer import sh_colors_cpu

    generator = torch.Generator().manual_seed(5 + sh_degree)
    B, C, N, K = 2, 3, 400, 18
    means = torch.randn(B, N, 3, generator=generator, dtype=torch.float64)
    coeffs = 0.6 * torch.randn(B, N, K, 3, generator=generator, dtype=torch.float64)
    viewmats = torch.eye(4, dtype=torch.float64).repeat(B, C, 1, 1)
    viewmats[..., :3, 3] = 3 * torch.randn(B, C, 3, generator=generator, dtype=torch.float64)
    means[1, 7] = reference.camera_centres(viewmats)[1, 2]  # a Gaussian at a camera's centre
    weights = torch.randn(B, C, N, 3, generator=generator, dtype=torch.float64)
    results = []
    for colours in (reference.gaussian_colors, sh_colors_cpu):
        m, c = means.clone().requires_grad_(), coeffs.clone().requires_grad_()
        rgb = colours(m, c, viewmats, sh_degree)
        grads = torch.autograd.grad((rgb * weights).sum(), (m, c), allow_unused=True,
                                    materialize_grads=True)
        results.append((rgb, *grads))
    if sh_degree > 0:
        assert (results[0][0] == 0).any()  # the clamp is exercised
    for name, a, b in zip(("rgb", "d/dmeans", "d/dcoeffs"), results[0], results[1]):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), (name, (a - b).abs().max().item())
    assert torch.equal(results[1][2][..., (sh_degree + 1) ** 2:, :],
                       torch.zeros_like(results[1][2][..., (sh_degree + 1) ** 2:, :]))


def test_gradients_reach_the_cameras_like_the_reference():
    # The body fit moves the camera through the silhouette: the CPU path then projects with
    # the reference's autograd functions and blends with its own kernels.
    scene = random_scene(400, 1, seed=7, sh_degree=2)
    viewmats, Ks, backgrounds = cameras(1, 40, 52, count=2)
    cpu = render("cpu", scene, viewmats, Ks, 40, 52, 2, backgrounds, camera_grad=True)
    ref = render("torch", scene, viewmats, Ks, 40, 52, 2, backgrounds, camera_grad=True)
    compare(cpu, ref)


def test_the_open_body_matches_the_reference(open_body):
    # The fast preset's situation: one Gaussian per triangle of the open body (27,420), SH 1,
    # seen by the front camera that frames it; 72 x 100 pixels. With random opacities down to
    # 0.02 a pixel composites up to thousands of Gaussians, and the float32 reference's own
    # rounding grows with that (measured: rgb 1.2e-4, gradients ~1e-3 normalised, against the
    # same reference in float64). So the reference runs in float64 here, and the CPU path, fed
    # float32 like training feeds it, must be within the usual tolerances of it.
    from oneshot_avatar.avatar import MeshGaussians
    from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras

    with torch.no_grad():
        rest = open_body().vertices[0].float()
        gaussians = MeshGaussians.on_mesh(rest, open_body.faces, open_body.info.num_faces,
                                          sh_degree=1)
        posed = gaussians.place(rest[None], open_body.faces)
    g = torch.Generator().manual_seed(3)
    sh = posed.sh.clone()
    sh += torch.randn(sh.shape, generator=g) * 0.2
    opacities = (posed.opacities * torch.rand(posed.opacities.shape, generator=g)).clamp(0.02)
    scene = {"means": posed.means, "quats": posed.quats, "scales": posed.scales,
             "opacities": opacities, "colors": sh}
    scene = {k: v.float() for k, v in scene.items()}
    camera = front_shot_cameras(rest, ShotSettings(width=72, height=100))[0]
    viewmats = camera.world_to_cam.float()[None, None]
    Ks = camera.K.float()[None, None]
    backgrounds = torch.tensor([[[0.2, 0.5, 0.9]]])
    cpu = render("cpu", scene, viewmats, Ks, 72, 100, 1, backgrounds)
    ref = render("torch", {k: v.double() for k, v in scene.items()}, viewmats.double(),
                 Ks.double(), 72, 100, 1, backgrounds.double())
    compare(cpu, ref)


def _single(mean, scale, opacity, *, quat=(1.0, 0.0, 0.0, 0.0)):
    return {
        "means": torch.tensor([[mean]]), "quats": torch.tensor([[quat]]),
        "scales": torch.tensor([[scale]]), "opacities": torch.tensor([[opacity]]),
        "colors": torch.tensor([[[0.9, 0.4, 0.1]]]),
    }


@pytest.mark.parametrize(
    "case, scene, shows",
    [
        ("behind the camera", _single((0.0, 0.0, -2.0), (0.1, 0.1, 0.1), 0.9), False),
        ("off-screen", _single((9.0, 0.0, 3.0), (0.05, 0.05, 0.05), 0.9), False),
        ("zero opacity", _single((0.0, 0.0, 3.0), (0.1, 0.1, 0.1), 0.0), False),
        ("huge", _single((0.1, 0.0, 3.0), (3.0, 2.0, 1.0), 0.8, quat=(0.9, 0.1, 0.3, 0.2)), True),
        ("tiny", _single((0.01, 0.02, 3.0), (1e-7, 1e-7, 1e-7), 0.9), True),
        ("closer than near", _single((0.0, 0.0, 0.01), (0.1, 0.1, 0.1), 0.9), False),
        ("at the camera's centre", _single((0.0, 0.0, 0.0), (0.1, 0.1, 0.1), 0.9), False),
    ],
)
def test_degenerate_gaussians_match_the_reference(case, scene, shows):
    viewmats, Ks, backgrounds = cameras(1, 37, 29, count=1)
    cpu = render("cpu", scene, viewmats, Ks, 37, 29, None, backgrounds)
    ref = render("torch", scene, viewmats, Ks, 37, 29, None, backgrounds)
    compare(cpu, ref, expect_visible=shows)
    if not shows:  # nothing drawn: the background everywhere, and zero gradients
        out, grads = cpu
        assert torch.equal(out.alpha, torch.zeros_like(out.alpha)), case
        assert torch.allclose(out.rgb, backgrounds[:, :, None, None].expand_as(out.rgb)), case
        for name in ("means", "quats", "scales", "opacities", "colors"):
            assert torch.count_nonzero(grads[name]) == 0, (case, name)


def test_an_empty_scene_renders_the_background_and_backpropagates():
    empty = {"means": torch.zeros(2, 0, 3), "quats": torch.zeros(2, 0, 4),
             "scales": torch.zeros(2, 0, 3), "opacities": torch.zeros(2, 0),
             "colors": torch.zeros(2, 0, 3)}
    viewmats, Ks, backgrounds = cameras(2, 20, 17, count=2)
    out, grads = render("cpu", empty, viewmats, Ks, 20, 17, None, backgrounds)
    assert out.rgb.shape == (2, 2, 17, 20, 3)
    assert torch.allclose(out.rgb, backgrounds[:, :, None, None].expand_as(out.rgb))
    assert torch.equal(out.alpha, torch.zeros_like(out.alpha))
    assert torch.equal(out.depth, torch.zeros_like(out.depth))
    # T = 1 everywhere: d(Σ w·rgb)/d(background) is the sum of the loss weights per image
    w_rgb = torch.rand(out.rgb.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(grads["backgrounds"], w_rgb.sum(dim=(2, 3)))
    assert all(torch.count_nonzero(g) == 0 for k, g in grads.items() if k != "backgrounds")


def test_float64_inputs_match_the_float64_reference_closely():
    scene = {k: v.double() for k, v in random_scene(300, 1, seed=4, sh_degree=1).items()}
    viewmats, Ks, backgrounds = cameras(1, 33, 41, count=2)
    viewmats, Ks, backgrounds = viewmats.double(), Ks.double(), backgrounds.double()
    (out_c, grads_c) = render("cpu", scene, viewmats, Ks, 33, 41, 1, backgrounds)
    (out_r, grads_r) = render("torch", scene, viewmats, Ks, 33, 41, 1, backgrounds)
    assert out_c.rgb.dtype == torch.float64
    # both in float64: the same formulas agree to ~1e-12
    assert (out_c.rgb - out_r.rgb).abs().max() < 1e-10
    for name, ref in grads_r.items():
        assert (grads_c[name] - ref).abs().max() <= 1e-9 * ref.abs().max(), name


def test_tile_lists_are_front_to_back_with_ties_by_index_for_any_thread_count():
    """The binning (one radix sort by depth, then a counting sort into tiles by chunks of
    the sorted list) gives every tile gsplat's list: the Gaussians whose box overlaps it, by
    depth, ties by index, across several images, for 1 to 3 threads."""
    import numpy as np

    from oneshot_avatar.render import cpu_rasterizer

    rng = np.random.default_rng(0)
    I, N, width, height = 2, 3000, 70, 45  # partial tiles on both axes
    tiles_x, tiles_y = math.ceil(width / 16), math.ceil(height / 16)
    means2d = rng.uniform(-20, 90, (I, N, 2))
    radii = rng.integers(0, 30, (I, N, 2))
    visible = rng.random((I, N)) > 0.2
    depths = rng.choice([0.5, 1.0, 2.0, 3.5], (I, N)) + rng.integers(0, 3, (I, N)) * 1e-9
    expected_offsets, expected = [0], []
    for i in range(I):
        order = np.argsort(depths[i], kind="stable")
        for ty in range(tiles_y):
            for tx in range(tiles_x):
                for n in order:
                    (mx, my), (rx, ry) = means2d[i, n] / 16, radii[i, n] / 16
                    x0, x1 = (min(max(math.floor(mx - rx), 0), tiles_x),
                              min(max(math.ceil(mx + rx), 0), tiles_x))
                    y0, y1 = (min(max(math.floor(my - ry), 0), tiles_y),
                              min(max(math.ceil(my + ry), 0), tiles_y))
                    if visible[i, n] and x0 <= tx < x1 and y0 <= ty < y1:
                        expected.append(i * N + n)
                expected_offsets.append(len(expected))
    from oneshot_avatar.render import cpu_kernels

    splats = np.zeros((I * N, cpu_kernels.SPLAT_FIELDS))  # the binning reads the centres
    splats[:, :2] = means2d.reshape(I * N, 2)
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            offsets, flat_ids = cpu_rasterizer._bin(splats, radii, visible, depths, tiles_x,
                                                    tiles_y)
            assert offsets.tolist() == expected_offsets, threads
            assert flat_ids.tolist() == expected, threads
    finally:
        torch.set_num_threads(previous)


def test_depth_order_is_by_the_whole_key_then_index_whatever_the_prefix_runs():
    """The radix passes sort only the keys' leading bits; the runs that share them are then
    ordered by the whole key, ties by index: short runs (near-ties 1 ulp apart, exact ties) and
    runs longer than the insertion sort takes (400 depths within 400 ulp of each other, with far
    ones widening the prefix's step), in any thread count, and ``NO_KEY`` left out."""
    import numpy as np

    from oneshot_avatar.render import cpu_kernels, cpu_rasterizer

    rng = np.random.default_rng(3)
    near = 1.0 + rng.integers(0, 400, 400) * np.finfo(np.float64).eps  # one long run
    spread = rng.uniform(0.2, 900.0, 3000)
    ties = np.repeat(rng.uniform(0.2, 900.0, 50), 4)  # exact ties
    close = np.nextafter(ties, np.inf)[::2]  # 1 ulp above some of them
    depths = rng.permutation(np.concatenate([near, spread, ties, close]))
    keys = depths.view(np.uint64).copy()
    hidden = rng.random(len(keys)) < 0.1
    keys[hidden] = cpu_kernels.NO_KEY
    shown = np.flatnonzero(~hidden)
    expected = shown[np.lexsort((shown, depths[shown]))]
    assert len(near) > cpu_kernels.LONG_RUN
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            assert cpu_rasterizer._depth_order(keys).tolist() == expected.tolist(), threads
    finally:
        torch.set_num_threads(previous)


def test_results_do_not_depend_on_threads_and_are_repeatable():
    scene = random_scene(800, 1, seed=11, sh_degree=1)
    viewmats, Ks, backgrounds = cameras(1, 64, 48, count=2)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = render("cpu", scene, viewmats, Ks, 64, 48, 1, backgrounds)
        torch.set_num_threads(3)  # more threads than this machine may have cores
        three = render("cpu", scene, viewmats, Ks, 64, 48, 1, backgrounds)
        again = render("cpu", scene, viewmats, Ks, 64, 48, 1, backgrounds)
    finally:
        torch.set_num_threads(previous)
    for other in (three, again):  # bit for bit
        assert torch.equal(one[0].rgb, other[0].rgb) and torch.equal(one[0].depth, other[0].depth)
        for name in one[1]:
            assert torch.equal(one[1][name], other[1][name]), name


def test_several_python_threads_can_render_at_once():
    scene = random_scene(500, 1, seed=12, sh_degree=None)
    viewmats, Ks, backgrounds = cameras(1, 48, 40, count=1)
    expected = render("cpu", scene, viewmats, Ks, 48, 40, None, backgrounds, grad=False)[0]
    results, errors = [], []

    def work():
        try:
            results.append(render("cpu", scene, viewmats, Ks, 48, 40, None, backgrounds,
                                  grad=False)[0])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for out in results:
        assert torch.equal(out.rgb, expected.rgb)


def test_auto_picks_the_cpu_rasterizer_on_cpu_and_cpu_needs_cpu_tensors():
    means = torch.zeros(1, 2, 3)
    assert choose_backend("auto", means) == "cpu"
    assert choose_backend("cpu", means) == "cpu"
    assert choose_backend("torch", means) == "torch"
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CPU tensors"):
            choose_backend("cpu", means.cuda())


def test_kernel_constants_are_the_reference_constants():
    from oneshot_avatar.render import cpu_kernels, cpu_rasterizer

    assert cpu_kernels.ALPHA_THRESHOLD == reference.ALPHA_THRESHOLD
    assert cpu_kernels.MAX_ALPHA == reference.MAX_ALPHA
    assert cpu_kernels.TRANSMITTANCE_MIN == reference.TRANSMITTANCE_MIN
    assert cpu_kernels.EPS2D == reference.EPS2D
    assert cpu_kernels.BOX_EXTEND_MAX == reference.BOX_EXTEND_MAX
    assert cpu_kernels.FOV_CLAMP_MARGIN == reference.FOV_CLAMP_MARGIN
    assert cpu_rasterizer.TILE_SIZE == reference.GSPLAT_TILE_SIZE == 16


def test_importing_the_render_package_does_not_import_numba():
    code = ("import sys, oneshot_avatar.render; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_cpu_rasterizer_renders_with_the_network_refused(tmp_path):
    """The compiled rasterizer (its kernels, the prefetch intrinsic, numba's cache) needs no
    network: a fresh interpreter whose sockets refuse to connect renders a scene on it."""
    done = run_offline("""
        import torch
        from oneshot_avatar.render import rasterize_gaussians
        g = torch.Generator().manual_seed(0)
        n = 300
        means = torch.rand(1, n, 3, generator=g) * 0.4 + torch.tensor([-0.2, -0.2, 2.0])
        quats = torch.randn(1, n, 4, generator=g)
        scales = torch.rand(1, n, 3, generator=g) * 0.02 + 0.01
        out = rasterize_gaussians(means, quats, scales, torch.full((1, n), 0.8),
                                  torch.rand(1, n, 3, generator=g), torch.eye(4)[None, None],
                                  torch.tensor([[[[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]]]]),
                                  64, 64, backend="cpu")
        print("covered", int((out.alpha > 0.5).sum()))
        # Training's path too: SH colours (degree 3) with their compiled gradients.
        sh = (torch.randn(1, n, 16, 3, generator=g) * 0.1).requires_grad_()
        out = rasterize_gaussians(means, quats, scales, torch.full((1, n), 0.8), sh,
                                  torch.eye(4)[None, None],
                                  torch.tensor([[[[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]]]]),
                                  64, 64, sh_degree=3, backend="cpu")
        out.rgb.sum().backward()
        print("sh_grad", float(sh.grad.abs().sum()))
    """, "a CPU render", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split("covered")[1].split()[0]) > 100  # on screen (174 px)
    assert float(done.stdout.split("sh_grad")[1]) > 0.0  # the SH gradient kernel ran
