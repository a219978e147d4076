"""The pure-PyTorch rasterizer on CPU: analytic footprints, occlusion, backgrounds, depth,
culling, gsplat's early stop, a literal per-pixel transcription of gsplat 1.5.3's kernels,
SH, batching, gradients (finite differences in float64) and a 20k-Gaussian render."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from oneshot_avatar.render import RasterOutput, choose_backend, rasterize_gaussians
from oneshot_avatar.render import torch_rasterizer as tr

IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)


def camera(
    width: int, height: int, focal: float, cx: float | None = None, cy: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:  # viewmats [1, 1, 4, 4], Ks [1, 1, 3, 3]
    cx = width / 2 if cx is None else cx
    cy = height / 2 if cy is None else cy
    K = torch.tensor([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=dtype)
    return torch.eye(4, dtype=dtype)[None, None], K[None, None]


def intrinsics(fx: float, cx: float, cy: float, fy: float | None = None) -> torch.Tensor:
    """[1, 1, 3, 3] float64 pinhole intrinsics."""
    fy = fx if fy is None else fy
    return torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)[None, None]


def gaussians(
    means, scales, opacities, colors, quats=None, dtype: torch.dtype = torch.float64
) -> dict[str, torch.Tensor]:
    """[N, ...] lists -> the batched [1, N, ...] tensors of rasterize_gaussians."""
    means = torch.tensor(means, dtype=dtype)
    n = len(means)
    quats = torch.tensor(quats if quats is not None else [IDENTITY_QUAT] * n, dtype=dtype)
    scales = torch.tensor(scales, dtype=dtype)
    if scales.dim() == 1:
        scales = scales[:, None].expand(n, 3)
    return {
        "means": means[None], "quats": quats[None], "scales": scales[None].contiguous(),
        "opacities": torch.tensor(opacities, dtype=dtype)[None],
        "colors": torch.tensor(colors, dtype=dtype)[None],
    }


def render(scene, viewmats, Ks, width, height, **kwargs) -> RasterOutput:
    return rasterize_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["colors"],
        viewmats, Ks, width, height, backend="torch", **kwargs,
    )


# ---------------------------------------------------------------- analytic single Gaussian


def isotropic_scale_for_sigma(sigma_px: float, focal: float, depth: float) -> float:
    """World scale whose projected std (after gsplat's eps2d blur) is ``sigma_px`` pixels on
    the optical axis: σ² = (f s / z)² + 0.3."""
    return math.sqrt(sigma_px**2 - tr.EPS2D) * depth / focal


@pytest.mark.parametrize("opacity", [0.8, 1.0])
def test_single_gaussian_footprint_is_the_blurred_gaussian(opacity):
    W, H, f, z = 64, 48, 100.0, 2.0
    # principal point on a pixel centre: the Gaussian projects onto pixel (32, 20)
    viewmats, Ks = camera(W, H, f, cx=32.5, cy=20.5)
    s = isotropic_scale_for_sigma(4.0, f, z)
    colour = [0.2, 0.6, 0.9]
    out = render(gaussians([[0, 0, z]], [s], [opacity], [colour]), viewmats, Ks, W, H)

    alpha = out.alpha[0, 0, ..., 0]
    cols = torch.arange(W, dtype=torch.float64) + 0.5 - 32.5
    rows = torch.arange(H, dtype=torch.float64) + 0.5 - 20.5
    d2 = rows[:, None] ** 2 + cols[None, :] ** 2
    expected = torch.clamp(opacity * torch.exp(-0.5 * d2 / 16.0), max=0.999)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))

    assert alpha[20, 32].item() == pytest.approx(min(opacity, 0.999), abs=1e-12)
    # one projected sigma (4 px, of which 0.3 px² is eps2d) to the right and below
    assert alpha[20, 36].item() == pytest.approx(opacity * math.exp(-0.5), abs=1e-12)
    assert alpha[24, 32].item() == pytest.approx(opacity * math.exp(-0.5), abs=1e-12)
    torch.testing.assert_close(alpha, expected, atol=1e-12, rtol=0)
    assert (alpha > 0).sum() > 100  # a real footprint, with the tail below 1/255 cut
    assert alpha[20, 32 + 14].item() == 0.0  # 3.5 sigma: below 1/255 even at opacity 1

    peak = out.rgb[0, 0, 20, 32] / alpha[20, 32]
    torch.testing.assert_close(peak, torch.tensor(colour, dtype=torch.float64))
    on = alpha > 0
    torch.testing.assert_close(out.depth[0, 0, ..., 0][on], torch.full_like(alpha[on], z))
    assert (out.depth[0, 0, ..., 0][~on] == 0).all()
    assert out.backend == "torch"
    assert out.rgb.shape == (1, 1, H, W, 3)
    assert out.alpha.shape == out.depth.shape == (1, 1, H, W, 1)


def test_anisotropic_gaussian_rotated_by_quaternion():
    """A Gaussian long along its local x, rotated 90° about z (wxyz quaternion, unnormalised),
    lies along the image y axis."""
    W, H, f, z = 48, 48, 100.0, 2.0
    viewmats, Ks = camera(W, H, f, cx=24.5, cy=24.5)
    half = math.sqrt(0.5)
    scene = gaussians(
        [[0, 0, z]], [[0.12, 0.02, 0.02]], [0.9], [[1, 1, 1]], quats=[[3 * half, 0, 0, 3 * half]]
    )
    alpha = render(scene, viewmats, Ks, W, H).alpha[0, 0, ..., 0]
    # std 6 px along the image y axis, sqrt(1 + 0.3) px along x
    long_axis = 0.9 * math.exp(-0.5 * 16 / (36 + tr.EPS2D))
    assert alpha[24 + 4, 24].item() == pytest.approx(long_axis, rel=1e-9)
    assert alpha[24 - 4, 24].item() == pytest.approx(long_axis, rel=1e-9)
    assert alpha[24, 24 + 4] == 0 and alpha[24, 24 - 4] == 0


# ---------------------------------------------------------------- occlusion, background, depth


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearer_gaussian_occludes_regardless_of_input_order(order):
    W, H, f = 32, 32, 60.0
    viewmats, Ks = camera(W, H, f, cx=16.5, cy=16.5)  # the axis hits pixel (16, 16)'s centre
    near = {"mean": [0, 0, 2.0], "scale": 0.1, "opacity": 0.95, "colour": [1.0, 0.0, 0.0]}
    far = {"mean": [0, 0, 3.0], "scale": 0.15, "opacity": 0.95, "colour": [0.0, 0.0, 1.0]}
    items = [[near, far][i] for i in order]
    scene = gaussians(
        [g["mean"] for g in items], [g["scale"] for g in items],
        [g["opacity"] for g in items], [g["colour"] for g in items],
    )
    out = render(scene, viewmats, Ks, W, H)
    centre = out.rgb[0, 0, 16, 16]
    a = 0.95  # both peak at pixel (16, 16)
    torch.testing.assert_close(centre, torch.tensor([a, 0, (1 - a) * a], dtype=torch.float64))
    assert out.alpha[0, 0, 16, 16, 0].item() == pytest.approx(1 - (1 - a) ** 2)
    expected_depth = (a * 2.0 + (1 - a) * a * 3.0) / (1 - (1 - a) ** 2)
    assert out.depth[0, 0, 16, 16, 0].item() == pytest.approx(expected_depth)


def test_background_is_blended_with_the_final_transmittance():
    W, H, f = 32, 24, 50.0
    viewmats, Ks = camera(W, H, f)
    scene = gaussians(
        [[0, 0, 2.0], [0.1, 0.05, 2.5]], [0.1, 0.2], [0.7, 0.5], [[1, 0.5, 0], [0, 0.3, 1]]
    )
    bg = torch.tensor([[[0.25, 0.5, 0.75]]], dtype=torch.float64)
    plain = render(scene, viewmats, Ks, W, H)
    over = render(scene, viewmats, Ks, W, H, backgrounds=bg)
    expected = plain.rgb + (1 - plain.alpha) * bg[:, :, None, None, :]
    torch.testing.assert_close(over.rgb, expected)
    torch.testing.assert_close(over.alpha, plain.alpha)
    torch.testing.assert_close(over.depth, plain.depth)  # background adds no depth
    assert (plain.alpha < 0.01).any()  # there are pixels where the background shows
    torch.testing.assert_close(over.rgb[0, 0, 0, 0], bg[0, 0])


def test_early_stop_drops_the_gaussian_that_would_end_the_pixel():
    """gsplat's rasterize_to_pixels: a Gaussian whose T_next would be <= 1e-4 is not composited
    and no later Gaussian is either, even one that alone would keep T above 1e-4."""
    W, H, f = 16, 16, 50.0
    viewmats, Ks = camera(W, H, f, cx=8.5, cy=8.5)
    scene = gaussians(
        [[0, 0, 1.0], [0, 0, 2.0], [0, 0, 3.0]], [0.2, 0.4, 0.6], [0.999, 0.95, 0.05],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    )
    out = render(scene, viewmats, Ks, W, H)
    # centre: T = 1e-3 after the first; 1e-3 * 0.05 <= 1e-4 ends the pixel
    assert out.alpha[0, 0, 8, 8, 0].item() == pytest.approx(0.999, abs=1e-12)
    torch.testing.assert_close(
        out.rgb[0, 0, 8, 8], torch.tensor([0.999, 0, 0], dtype=torch.float64)
    )
    assert out.depth[0, 0, 8, 8, 0].item() == pytest.approx(1.0)


def test_culling_by_near_and_far_and_behind_the_camera():
    W, H, f = 32, 32, 40.0
    viewmats, Ks = camera(W, H, f)
    colours = [[1, 1, 1]] * 4
    scene = gaussians(
        [[0, 0, -2.0], [0, 0, 0.005], [0, 0, 60.0], [0, 0, 0.0]], [0.3, 0.001, 5.0, 0.3],
        [0.9] * 4, colours,
    )
    out = render(scene, viewmats, Ks, W, H, near=0.01, far=50.0)
    assert out.alpha.abs().max() == 0 and out.rgb.abs().max() == 0 and out.depth.abs().max() == 0
    # the same far Gaussian renders once the far plane is behind it
    out = render(scene, viewmats, Ks, W, H, near=0.01, far=100.0)
    assert out.alpha.max() > 0.5
    # exactly on the near plane is kept (gsplat culls z < near and z > far)
    on_near = gaussians([[0, 0, 0.5]], [0.01], [0.9], [[1, 1, 1]])
    assert render(on_near, viewmats, Ks, W, H, near=0.5).alpha.max() > 0.5


def test_a_frame_with_nothing_visible_still_backpropagates_zeros():
    viewmats, Ks = camera(16, 16, 20.0)
    scene = gaussians([[0, 0, -1.0], [0.2, 0, -2.0]], [0.1, 0.1], [0.5, 0.9], [[1, 0, 0]] * 2)
    leaves = {k: v.requires_grad_(True) for k, v in scene.items()}
    out = render(leaves, viewmats, Ks, 16, 16)
    assert out.alpha.max() == 0
    (out.rgb.sum() + out.alpha.sum() + out.depth.sum()).backward()
    for name, leaf in leaves.items():
        assert leaf.grad is not None and (leaf.grad == 0).all(), name


def test_opacity_below_threshold_and_off_image_gaussians_are_culled():
    W, H, f = 32, 32, 40.0
    viewmats, Ks = camera(W, H, f)
    faint = gaussians([[0, 0, 2.0]], [0.3], [1 / 256], [[1, 1, 1]])
    assert render(faint, viewmats, Ks, W, H).alpha.max() == 0
    aside = gaussians([[5.0, 0, 2.0]], [0.05], [0.9], [[1, 1, 1]])
    proj = tr.project_gaussians(
        aside["means"], aside["quats"], aside["scales"], aside["opacities"], viewmats, Ks,
        W, H, 0.01, 1e10,
    )
    assert not proj.visible.any() and (proj.radii == 0).all()


# ---------------------------------------------------------------- projection details


def test_projection_clamps_the_jacobian_to_the_widened_fov():
    """gsplat persp_proj: x/z in the Jacobian clamped to [-(cx/fx + 0.3 tan), (W - cx)/fx +
    0.3 tan] with tan = W / (2 fx); the projected mean itself is not clamped."""
    W, H, f, cx, cy = 64, 48, 50.0, 20.0, 30.0
    _, Ks = camera(W, H, f, cx=cx, cy=cy)
    means_c = torch.tensor([[[[3.0, -2.5, 2.0], [0.2, 0.1, 2.0]]]], dtype=torch.float64)
    cov = torch.diag(torch.tensor([0.01, 0.02, 0.03], dtype=torch.float64))
    covs = cov.expand(1, 1, 2, 3, 3)
    means2d, covs2d = tr.perspective_project(means_c, covs, Ks, W, H)

    def expected(x, y, z):
        lim_x_pos = (W - cx) / f + 0.3 * W / (2 * f)
        lim_x_neg = cx / f + 0.3 * W / (2 * f)
        lim_y_pos = (H - cy) / f + 0.3 * H / (2 * f)
        lim_y_neg = cy / f + 0.3 * H / (2 * f)
        tx = z * min(lim_x_pos, max(-lim_x_neg, x / z))
        ty = z * min(lim_y_pos, max(-lim_y_neg, y / z))
        J = np.array([[f / z, 0, -f * tx / z**2], [0, f / z, -f * ty / z**2]])
        return J @ cov.numpy() @ J.T, (f * x / z + cx, f * y / z + cy), (tx != x, ty != y)

    for i, (x, y, z) in enumerate(means_c[0, 0].tolist()):
        cov2d, mean2d, clamped = expected(x, y, z)
        np.testing.assert_allclose(covs2d[0, 0, i].numpy(), cov2d, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(means2d[0, 0, i].numpy(), mean2d, rtol=1e-12)
        assert clamped == ((True, True) if i == 0 else (False, False))


def test_radius_is_gsplats_opacity_aware_box():
    W, H, f = 64, 64, 100.0
    viewmats, Ks = camera(W, H, f)
    scene = gaussians(
        [[0, 0, 2.0]] * 3, [[0.1, 0.05, 0.02]] * 3, [1.0, 0.5, 0.02], [[1, 1, 1]] * 3
    )
    proj = tr.project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], viewmats, Ks,
        W, H, 0.01, 1e10,
    )
    var_x, var_y = (f * 0.1 / 2) ** 2 + 0.3, (f * 0.05 / 2) ** 2 + 0.3
    for i, o in enumerate([1.0, 0.5, 0.02]):
        extend = min(3.33, math.sqrt(2 * math.log(o * 255)))
        expected = [math.ceil(extend * math.sqrt(var_x)), math.ceil(extend * math.sqrt(var_y))]
        assert proj.radii[0, i].tolist() == expected


# ---------------------------------------------------------------- literal gsplat transcription


def gsplat_reference(
    means, quats, scales, opacities, colors, viewmat, K, width, height, near, far, background
):
    """One image, float64 numpy, one Gaussian and one pixel at a time: a literal reading of
    gsplat 1.5.3's projection_ewa_3dgs_fused_fwd_kernel, isect_tiles (16 px tiles) and
    rasterize_to_pixels_3dgs_fwd_kernel. Independent of the code under test."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tiles_x, tiles_y = math.ceil(width / 16), math.ceil(height / 16)
    visible = []
    for i in range(len(means)):
        x, y, z = R @ means[i] + t
        if z < near or z > far:
            continue
        w, qx, qy, qz = quats[i] / np.linalg.norm(quats[i])
        rot = np.array([
            [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - w * qz), 2 * (qx * qz + w * qy)],
            [2 * (qx * qy + w * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - w * qx)],
            [2 * (qx * qz - w * qy), 2 * (qy * qz + w * qx), 1 - 2 * (qx * qx + qy * qy)],
        ])
        cov_c = R @ rot @ np.diag(scales[i] ** 2) @ rot.T @ R.T
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        tx = z * min((width - cx) / fx + 0.3 * tan_x, max(-(cx / fx + 0.3 * tan_x), x / z))
        ty = z * min((height - cy) / fy + 0.3 * tan_y, max(-(cy / fy + 0.3 * tan_y), y / z))
        J = np.array([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]])
        cov2d = J @ cov_c @ J.T + 0.3 * np.eye(2)
        if np.linalg.det(cov2d) <= 0 or opacities[i] < 1 / 255:
            continue
        extend = min(3.33, math.sqrt(2 * math.log(opacities[i] * 255)))
        rx = math.ceil(extend * math.sqrt(cov2d[0, 0]))
        ry = math.ceil(extend * math.sqrt(cov2d[1, 1]))
        mx, my = fx * x / z + cx, fy * y / z + cy
        if mx + rx <= 0 or mx - rx >= width or my + ry <= 0 or my - ry >= height:
            continue
        tile_lo = (min(max(0, math.floor((mx - rx) / 16)), tiles_x),
                   min(max(0, math.floor((my - ry) / 16)), tiles_y))
        tile_hi = (min(max(0, math.ceil((mx + rx) / 16)), tiles_x),
                   min(max(0, math.ceil((my + ry) / 16)), tiles_y))
        visible.append((z, i, mx, my, np.linalg.inv(cov2d), tile_lo, tile_hi))
    visible.sort(key=lambda g: (g[0], g[1]))

    rgb = np.zeros((height, width, 3))
    alpha = np.zeros((height, width, 1))
    depth = np.zeros((height, width, 1))
    for row in range(height):
        for col in range(width):
            px, py = col + 0.5, row + 0.5
            tile = (col // 16, row // 16)
            T, acc, acc_z = 1.0, np.zeros(3), 0.0
            for z, i, mx, my, conic, lo, hi in visible:
                if not (lo[0] <= tile[0] < hi[0] and lo[1] <= tile[1] < hi[1]):
                    continue
                dx, dy = mx - px, my - py
                sigma = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy)
                sigma += conic[0, 1] * dx * dy
                a = min(0.999, opacities[i] * math.exp(-sigma))
                if sigma < 0 or a < 1 / 255:
                    continue
                next_T = T * (1 - a)
                if next_T <= 1e-4:
                    break
                acc += colors[i] * a * T
                acc_z += z * a * T
                T = next_T
            rgb[row, col] = acc + T * background
            alpha[row, col] = 1 - T
            depth[row, col] = acc_z / max(1 - T, 1e-10)
    return rgb, alpha, depth


def random_scene(n: int, seed: int, dtype=torch.float64, sh_degree: int | None = None):
    """Gaussians in front of a camera at the origin, with some behind it, some far off to the
    side but large (Jacobian clamp), faint ones, fully opaque ones and a stack at the centre
    that triggers the early stop."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g, dtype=dtype) * torch.tensor([2.0, 1.6, 3.0])
    means -= torch.tensor([1.0, 0.8, 0.0])
    means[:, 2] += 1.5
    means[: n // 10, 2] = -1.0  # behind the camera
    means[n // 10 : n // 5, 0] = 3.0  # beyond the side of the image, x/z = 1.2 to 2
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.15 + 0.01
    scales[n // 10 : n // 5] *= 6.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype) * 2.0
    opacities = torch.rand(n, generator=g, dtype=dtype)
    opacities[n // 5 : n // 5 + 3] = torch.tensor([1.0, 0.001, 0.9999])
    means[-6:] = torch.tensor([0.0, 0.0, 2.0]) + 0.01 * torch.arange(6)[:, None]
    opacities[-6:] = 0.97
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g, dtype=dtype)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.3
    return {"means": means[None], "quats": quats[None], "scales": scales[None],
                "opacities": opacities[None], "colors": colors[None]}


def orbit_viewmat(angle: float, dtype=torch.float64) -> torch.Tensor:
    """World -> camera for a camera at distance 0 looking down +z, turned about y by angle
    around the point (0, 0, 2) — so the scene stays in view."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, 0, -s], [0, 1, 0], [s, 0, c]], dtype=dtype)
    centre = torch.tensor([0.0, 0.0, 2.0], dtype=dtype)
    view = torch.eye(4, dtype=dtype)
    view[:3, :3] = rot
    view[:3, 3] = centre - rot @ centre
    return view


def test_matches_a_literal_transcription_of_gsplats_kernels():
    W, H = 45, 35  # not a multiple of the tile sizes: partial tiles on both axes
    scene = random_scene(60, seed=3)
    viewmats = torch.stack([orbit_viewmat(0.0), orbit_viewmat(0.4)])[None]
    Ks = intrinsics(40.0, 21.0, 18.5, fy=42.0).expand(1, 2, 3, 3)
    bg = torch.tensor([[[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    near, far = 0.2, 4.0
    out = render(scene, viewmats, Ks, W, H, backgrounds=bg, near=near, far=far)
    assert (out.alpha > 0.99).any() and (out.alpha == 0).any()
    for cam in range(2):
        rgb, alpha, depth = gsplat_reference(
            *(scene[k][0].numpy() for k in ("means", "quats", "scales", "opacities", "colors")),
            viewmats[0, cam].numpy(), Ks[0, cam].numpy(), W, H, near, far, bg[0, cam].numpy(),
        )
        np.testing.assert_allclose(out.rgb[0, cam].numpy(), rgb, atol=1e-10, rtol=0)
        np.testing.assert_allclose(out.alpha[0, cam].numpy(), alpha, atol=1e-10, rtol=0)
        np.testing.assert_allclose(out.depth[0, cam].numpy(), depth, atol=1e-8, rtol=0)


@pytest.mark.parametrize("tile_size", [4, 16])
def test_tile_size_does_not_change_the_image(tile_size):
    scene = random_scene(80, seed=5)
    viewmats = orbit_viewmat(0.2)[None, None]
    Ks = intrinsics(60.0, 30.0, 25.0)
    proj = tr.project_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], viewmats, Ks,
        61, 50, 0.01, 1e10,
    )
    feats = torch.cat([scene["colors"], proj.depths[..., None]], dim=-1)
    base = tr.rasterize_to_pixels(proj, scene["opacities"], feats, 61, 50)
    other = tr.rasterize_to_pixels(
        proj, scene["opacities"], feats, 61, 50, tile_size=tile_size, chunk_elements=5000, block=7
    )
    torch.testing.assert_close(other[0], base[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(other[1], base[1], atol=1e-12, rtol=0)


# ---------------------------------------------------------------- spherical harmonics


def test_sh_bases_are_orthonormal_on_the_sphere():
    """gsplat's constants give an orthonormal real SH basis (degrees 0-4): checks every
    constant and sign combination against the defining property."""
    n = 200_000
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * k / n
    phi = math.pi * (1 + 5**0.5) * k
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)  # Fibonacci sphere
    bases = tr.eval_sh_bases(4, dirs)
    gram = bases.T @ bases * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye(25, dtype=torch.float64), atol=2e-4, rtol=0)
    # and the degree-1 signs of gsplat: -C1 y, C1 z, -C1 x
    e = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(tr.eval_sh_bases(1, e)[:, 1:], -tr.SH_C1 * torch.tensor(
        [[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=torch.float64))


def test_sh_degree_zero_equals_the_rgb_path():
    scene = random_scene(40, seed=7, sh_degree=0)
    viewmats = orbit_viewmat(0.1)[None, None]
    Ks = intrinsics(50.0, 24.0, 20.0)
    sh = render(scene, viewmats, Ks, 48, 40, sh_degree=0)
    rgb_scene = dict(scene, colors=torch.clamp_min(tr.SH_C0 * scene["colors"][:, :, 0] + 0.5, 0))
    rgb = render(rgb_scene, viewmats, Ks, 48, 40)
    torch.testing.assert_close(sh.rgb, rgb.rgb, atol=1e-12, rtol=0)
    torch.testing.assert_close(sh.alpha, rgb.alpha, atol=1e-12, rtol=0)


def test_sh_is_evaluated_towards_each_camera():
    """Colour depends on the view direction normalise(mean - camera centre): a degree-1
    coefficient on the x basis makes a Gaussian seen from +x and -x differ accordingly."""
    coeffs = torch.zeros(1, 1, 4, 3, dtype=torch.float64)
    coeffs[0, 0, 3] = torch.tensor([1.0, 0.0, 0.0])  # Y_3 = -C1 x
    scene = {
        "means": torch.zeros(1, 1, 3, dtype=torch.float64),
        "quats": torch.tensor([[IDENTITY_QUAT]], dtype=torch.float64),
        "scales": torch.full((1, 1, 3), 0.2, dtype=torch.float64),
        "opacities": torch.tensor([[0.9]], dtype=torch.float64), "colors": coeffs,
    }
    views = []
    for eye_x in (-2.0, 2.0):  # camera on the x axis looking at the origin
        forward = torch.tensor([-eye_x, 0, 0], dtype=torch.float64) / 2.0
        down = torch.tensor([0, 1.0, 0], dtype=torch.float64)
        right = torch.linalg.cross(down, forward)
        rot = torch.stack([right, down, forward])  # rows: camera axes in world
        view = torch.eye(4, dtype=torch.float64)
        view[:3, :3] = rot
        view[:3, 3] = -rot @ torch.tensor([eye_x, 0, 0], dtype=torch.float64)
        views.append(view)
    viewmats = torch.stack(views)[None]
    Ks = torch.tensor([[[30.0, 0, 8.5], [0, 30.0, 8.5], [0, 0, 1]]] * 2, dtype=torch.float64)[None]
    out = render(scene, viewmats, Ks, 17, 17, sh_degree=1)
    peak = out.rgb[0, :, 8, 8, 0] / out.alpha[0, :, 8, 8, 0]
    # direction mean - camera = (+1, 0, 0) from the camera at x = -2, (-1, 0, 0) from x = +2
    expected = torch.tensor([0.5 - tr.SH_C1, 0.5 + tr.SH_C1], dtype=torch.float64)
    torch.testing.assert_close(peak, expected)


# ---------------------------------------------------------------- batching


def test_batch_and_camera_dims_equal_separate_calls():
    scenes = [random_scene(50, seed=s, sh_degree=2) for s in (11, 12)]
    batched = {k: torch.cat([s[k] for s in scenes]) for k in scenes[0]}
    viewmats = torch.stack([
        torch.stack([orbit_viewmat(0.0), orbit_viewmat(0.3), orbit_viewmat(-0.5)]),
        torch.stack([orbit_viewmat(0.1), orbit_viewmat(0.7), orbit_viewmat(-0.2)]),
    ])
    Ks = torch.tensor([[40.0, 0, 20.0], [0, 40.0, 16.0], [0, 0, 1]], dtype=torch.float64)
    Ks = Ks.expand(2, 3, 3, 3).clone()
    Ks[1, 2, 0, 0] = 55.0
    bg = torch.rand(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = render(batched, viewmats, Ks, 40, 32, sh_degree=2, backgrounds=bg)
    assert out.rgb.shape == (2, 3, 32, 40, 3)
    for b in range(2):
        for c in range(3):
            one = render(
                scenes[b], viewmats[b, c][None, None], Ks[b, c][None, None], 40, 32,
                sh_degree=2, backgrounds=bg[b, c][None, None],
            )
            torch.testing.assert_close(out.rgb[b, c], one.rgb[0, 0], atol=1e-12, rtol=0)
            torch.testing.assert_close(out.alpha[b, c], one.alpha[0, 0], atol=1e-12, rtol=0)
            torch.testing.assert_close(out.depth[b, c], one.depth[0, 0], atol=1e-12, rtol=0)


# ---------------------------------------------------------------- gradients


def tiny_scene(sh_degree: int | None):
    """Three Gaussians seen by two cameras in a 16x12 image, none close to a threshold."""
    means = torch.tensor([[0.05, -0.02, 2.0], [-0.1, 0.08, 2.4], [0.15, 0.1, 2.8]],
                         dtype=torch.float64)
    quats = torch.tensor([[0.9, 0.1, -0.2, 0.3], [0.5, 0.5, 0.1, -0.4], [1.2, 0.0, 0.3, 0.1]],
                         dtype=torch.float64)
    scales = torch.tensor([[0.12, 0.07, 0.05], [0.09, 0.15, 0.06], [0.2, 0.1, 0.08]],
                          dtype=torch.float64)
    opacities = torch.tensor([0.7, 0.55, 0.8], dtype=torch.float64)
    if sh_degree is None:
        colors = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.2, 0.3, 0.9]],
                              dtype=torch.float64)
    else:
        g = torch.Generator().manual_seed(1)
        colors = torch.randn(3, (sh_degree + 1) ** 2, 3, generator=g, dtype=torch.float64) * 0.2
    viewmats = torch.stack([orbit_viewmat(0.0), orbit_viewmat(0.25)])[None]
    Ks = torch.tensor([[[20.0, 0, 8.0], [0, 20.0, 6.0], [0, 0, 1]]] * 2, dtype=torch.float64)[None]
    bg = torch.tensor([[[0.2, 0.4, 0.1], [0.5, 0.5, 0.5]]], dtype=torch.float64)
    return (means[None], quats[None], scales[None], opacities[None], colors[None]), viewmats, Ks, bg


@pytest.mark.parametrize("sh_degree", [None, 2])
def test_gradients_match_finite_differences(sh_degree):
    """Every input element's derivative (central differences, float64) against autograd, seen
    through 12 fixed random combinations of all output pixels (rgb, alpha and depth of both
    cameras) — the full Jacobian would need a backward pass per pixel."""
    params, viewmats, Ks, bg = tiny_scene(sh_degree)
    params = tuple(p.clone().requires_grad_(True) for p in params)
    mixing = torch.randn(2 * 12 * 16 * 5, 12, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(2))

    def rendered(means, quats, scales, opacities, colors):
        out = rasterize_gaussians(
            means, quats, scales, opacities, colors, viewmats, Ks, 16, 12,
            sh_degree=sh_degree, backgrounds=bg, backend="torch",
        )
        assert out.alpha.max() > 0.5 and (out.alpha[0, 1] > 0.1).any()
        pixels = torch.cat([out.rgb.flatten(), out.alpha.flatten(), out.depth.flatten()])
        return pixels @ mixing

    assert torch.autograd.gradcheck(rendered, params, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("sh_degree", [None, 3])
def test_gradients_reach_every_parameter_finite_and_nonzero(sh_degree):
    scene = random_scene(200, seed=9, dtype=torch.float32, sh_degree=sh_degree)
    params = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
    viewmats = torch.stack([orbit_viewmat(0.0), orbit_viewmat(0.5)]).float()[None]
    Ks = torch.tensor([[[60.0, 0, 32.0], [0, 60.0, 24.0], [0, 0, 1]]] * 2)[None]
    out = render(params, viewmats, Ks, 64, 48, sh_degree=sh_degree)
    loss = out.rgb.square().sum() + out.alpha.sum() + 0.1 * out.depth.sum()
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # Gaussians behind the camera get no gradient at all
    behind = slice(0, 20)
    assert params["means"].grad[0, behind].abs().max() == 0
    assert params["opacities"].grad[0, behind].abs().max() == 0


# ---------------------------------------------------------------- scale, API


def test_twenty_thousand_gaussians_at_256_render_and_backpropagate():
    g = torch.Generator().manual_seed(0)
    n = 20_000
    means = torch.rand(1, n, 3, generator=g) * torch.tensor([0.6, 1.8, 0.4]) + torch.tensor(
        [-0.3, -0.9, 2.8]
    )
    quats = torch.randn(1, n, 4, generator=g)
    scales = (torch.rand(1, n, 3, generator=g) * 0.02 + 0.003).requires_grad_(True)
    opacities = torch.rand(1, n, generator=g).requires_grad_(True)
    colors = torch.rand(1, n, 3, generator=g).requires_grad_(True)
    f = 256 / (2 * math.tan(math.radians(25)))
    Ks = torch.tensor([[f, 0, 128.0], [0, f, 128.0], [0, 0, 1]])[None, None]
    out = rasterize_gaussians(
        means, quats, scales, opacities, colors, torch.eye(4)[None, None], Ks, 256, 256,
        backend="torch",
    )
    assert out.backend == "torch"
    assert torch.isfinite(out.rgb).all() and out.alpha.max() > 0.9
    out.rgb.mean().backward()
    assert torch.isfinite(colors.grad).all() and colors.grad.abs().sum() > 0


def test_auto_backend_on_cpu_is_the_cpu_rasterizer_and_gsplat_needs_cuda():
    means = torch.zeros(1, 2, 3)
    assert choose_backend("auto", means) == "cpu"
    assert choose_backend("torch", means) == "torch"
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        choose_backend("gsplat", means)
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend("cuda", means)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"quats": torch.zeros(1, 5, 3)}, r"quats must have shape \[B, N, 4\] = \[1, 5, 4\]"),
        ({"opacities": torch.zeros(1, 5, 1)}, r"opacities must have shape \[B, N\]"),
        ({"colors": torch.zeros(1, 5, 4, 3)}, r"colors must have shape \[B, N, 3\]"),
        ({"colors": torch.zeros(1, 5, 3), "sh_degree": 1}, r"SH coefficients of shape"),
        ({"colors": torch.zeros(1, 5, 2, 3), "sh_degree": 1}, r"needs K >= 4"),
        ({"Ks": torch.zeros(1, 2, 3, 3)}, r"Ks must have shape \[B, C, 3, 3\] = \[1, 1, 3, 3\]"),
        ({"viewmats": torch.zeros(2, 1, 4, 4)}, r"viewmats must have shape"),
        ({"backgrounds": torch.zeros(1, 3)}, r"backgrounds must have shape \[B, C, 3\]"),
        ({"width": 0}, r"width must be a positive int"),
        ({"near": 2.0, "far": 1.0}, r"near < far"),
        ({"scales": torch.zeros(1, 5, 3, dtype=torch.float64)}, r"scales has dtype"),
    ],
)
def test_bad_inputs_are_rejected_with_a_message(change, message):
    args = {
        "means": torch.zeros(1, 5, 3), "quats": torch.zeros(1, 5, 4),
        "scales": torch.zeros(1, 5, 3),
        "opacities": torch.zeros(1, 5), "colors": torch.zeros(1, 5, 3),
        "viewmats": torch.eye(4)[None, None], "Ks": torch.eye(3)[None, None],
        "width": 8, "height": 8,
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        rasterize_gaussians(**args)


def test_importing_the_package_does_not_import_gsplat():
    code = (
        "import sys, oneshot_avatar.render, oneshot_avatar.render.gsplat_rasterizer; "
        "assert 'gsplat' not in sys.modules, 'gsplat imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
