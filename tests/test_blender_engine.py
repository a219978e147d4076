"""Driver: the "One-Shot Avatar" render engine in real Blender (tests/blender/test_engine_render.py,
run by Blender's Python) against a real backend on loopback. Here (main venv): build two small
avatar packages, start the server, then check what Blender wrote — F12 against the backend's own
render of the same pose and camera (PSNR >= 40 dB over the avatar, alpha within 2/255), and the
depth pass of two avatars (the nearer one is in front where they overlap)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from addon_packages import build_test_package
from blender_runner import (
    any_blender_python,
    blender_environment,
    blender_params,
    blender_python,
    run_blender_tests,
)
from exr_reader import read_exr
from service_server import running_server


@pytest.fixture(scope="module")
def packages(tmp_path_factory, open_body):
    any_blender_python()
    folder = tmp_path_factory.mktemp("engine-packages")
    return [build_test_package(folder / f"p{seed}.avatar", open_body, 8000, seed=seed)
            for seed in (4, 5)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _pass(layers: dict[str, np.ndarray], suffix: str) -> np.ndarray:
    names = [name for name in layers if name.endswith(suffix)]
    assert len(names) == 1, sorted(layers)
    return layers[names[0]]


@pytest.mark.parametrize("blender", blender_params())
def test_render_engine_in_blender(blender, tmp_path, packages, body_cache):
    python = blender_python(blender)
    out = tmp_path / "out"
    out.mkdir()
    with running_server(tmp_path / "server-data", body_cache=body_cache) as server:
        output = run_blender_tests(["tests/blender/test_engine_render.py"], tmp_path, {
            **server.blender_env(), "ONESHOT_AVATAR_TEST_PACKAGE": str(packages[0]),
            "ONESHOT_AVATAR_TEST_PACKAGE_2": str(packages[1]),
            "ONESHOT_AVATAR_TEST_OUT": str(out)}, extra_args=("-s",), python=python)
    print(output[-3000:], file=sys.stderr)

    engine = np.asarray(Image.open(out / "f12.png").convert("RGBA"))
    reference = np.asarray(Image.open(out / "reference.png").convert("RGBA"))
    assert engine.shape == reference.shape == (80, 64, 4)
    covered = reference[..., 3] > 0
    assert covered.mean() > 0.05  # the avatar is in the picture
    value = psnr(engine[covered][:, :3], reference[covered][:, :3])
    print(f"F12 vs the backend's own render: PSNR {value:.1f} dB", file=sys.stderr)
    assert value >= 40
    assert np.abs(engine[..., 3].astype(int) - reference[..., 3]).max() <= 2

    both, near, far = (read_exr(out / f"{name}.exr") for name in ("both", "near", "far"))
    a_near, a_far = _pass(near, "Combined.A") > 0.9, _pass(far, "Combined.A") > 0.9
    overlap = a_near & a_far
    assert overlap.sum() > 30
    z_both, z_near, z_far = (_pass(layers, "Depth.Z") for layers in (both, near, far))
    assert np.all(z_near[overlap] < z_far[overlap] - 0.5)
    # Where the near avatar is opaque it is all that is seen: its depth, not a mix.
    solid = (_pass(near, "Combined.A") > 0.99) & a_far
    np.testing.assert_allclose(z_both[solid], z_near[solid], atol=0.02)
    assert np.all(z_far[_pass(far, "Combined.A") == 0] >= 1e9)  # Blender's "nothing here"

    # Set Up Avatar Compositing: avatar over the Cycles set, hidden where the box is nearer.
    composite, set_only, avatars = (np.asarray(Image.open(out / f"{name}.png").convert("RGBA"))
                                    .astype(int) for name in ("composite", "set", "avatars"))
    avatar = avatars[..., 3] > 250
    box = (set_only[..., 0] > 100) & (set_only[..., 1] < 60)  # red box in the set render
    assert box.sum() > 20 and (avatar & ~box).sum() > 100 and (avatar & box).sum() > 10
    shown = avatar & ~box
    assert np.abs(composite[shown][:, :3] - avatars[shown][:, :3]).mean() < 6
    hidden = avatar & box
    assert np.abs(composite[hidden][:, :3] - set_only[hidden][:, :3]).mean() < 6
    empty = (avatars[..., 3] == 0) & ~box
    assert np.abs(composite[empty][:, :3] - set_only[empty][:, :3]).mean() < 3


@pytest.mark.parametrize("blender", blender_params())
def test_render_engine_faults_in_blender(blender, tmp_path, packages, body_cache):
    """tests/blender/test_engine_faults.py with a backend of its own (it is killed there)."""
    python = blender_python(blender)
    with running_server(tmp_path / "server-data", body_cache=body_cache) as server:
        output = run_blender_tests(["tests/blender/test_engine_faults.py"], tmp_path, {
            **server.blender_env(), "ONESHOT_AVATAR_TEST_SERVER_PID": str(server.proc.pid),
            "ONESHOT_AVATAR_TEST_PACKAGE": str(packages[0]),
            "ONESHOT_AVATAR_TEST_PACKAGE_2": str(packages[1])}, extra_args=("-s",),
            python=python)
        # before the block's own stop: the Blender side killed it mid-animation
        killed = server.proc.poll() is not None
    print(output[-3000:], file=sys.stderr)
    assert killed, "the server was still running after Blender's fault test"


@pytest.mark.parametrize("blender", blender_params())
def test_viewport_drawing_in_blender(blender, tmp_path, packages, body_cache):
    """tests/blender/test_engine_draw.py: the viewport's drawing code on an offscreen (Blender
    5.1+ starts its GPU module in background mode with gpu.init(); 5.0 cannot draw there)."""
    python = blender_python(blender)
    probe = subprocess.run([str(python), "-c", "import bpy, gpu; print(hasattr(gpu, 'init'))"],
                           capture_output=True, text=True, check=False, timeout=120,
                           env=blender_environment())
    if probe.stdout.strip().splitlines()[-1:] != ["True"]:
        pytest.skip(f"{blender}: this Blender has no gpu.init(), so nothing can be drawn in "
                    "background mode (Blender 5.1+ can)")
    with running_server(tmp_path / "server-data", body_cache=body_cache) as server:
        output = run_blender_tests(["tests/blender/test_engine_draw.py"], tmp_path, {
            **server.blender_env(), "ONESHOT_AVATAR_TEST_PACKAGE": str(packages[0])},
            extra_args=("-s",), python=python)
    print(output[-2000:], file=sys.stderr)
    assert "drawn offscreen with" in output
