"""Driver: the add-on's UI side in real Blender (tests/blender/test_ui_*.py, run by Blender's
Python with the bpy module) — registration and the built zip, camera export, jobs against a
fake backend, and rendering against a real ``oneshot-avatar serve`` on loopback.

Here (main venv) we build a small avatar package (and one for a body model the server lacks),
start the server, and check the cameras Blender sends with the backend's own
``oneshot_avatar.cameras.from_blender``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import service_answers
from addon_packages import build_test_package
from blender_runner import (
    any_blender_python,
    blender_environment,
    blender_params,
    blender_python,
    run_blender_tests,
)
from service_server import running_server, start_server

TOKEN = "ui-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def packages(tmp_path_factory, open_body) -> dict[str, Path]:
    """``own``: 500 Gaussians on the open body; ``foreign``: the same claiming another body
    model (its sha256), which the server must refuse."""
    any_blender_python()  # skip before building anything
    folder = tmp_path_factory.mktemp("packages")
    own = build_test_package(folder / "test.avatar", open_body, 500)
    foreign = folder / "foreign.avatar"
    with zipfile.ZipFile(own) as source, zipfile.ZipFile(foreign, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "avatar.json":
                meta = json.loads(data)
                meta["body_model"]["sha256"] = "f" * 64
                data = json.dumps(meta).encode()
            target.writestr(info, data)
    return {"own": own, "foreign": foreign}


LEGACY_INSTALL = """
import bpy  # first: it makes addon_utils importable
import addon_utils
assert bpy.ops.preferences.addon_install(filepath={zip!r}) == {{"FINISHED"}}
for _ in range(2):
    assert addon_utils.enable("oneshot_avatar", default_set=True, handle_error=None)
    assert hasattr(bpy.types, "ONESHOT_AVATAR_OT_render_avatar")
    addon_utils.disable("oneshot_avatar", default_set=True, handle_error=None)
    assert not hasattr(bpy.types, "ONESHOT_AVATAR_OT_render_avatar")
print("legacy install ok")
"""


@pytest.mark.parametrize("blender", blender_params())
def test_addon_registers_and_installs_from_the_built_zip(blender, tmp_path):
    import build_addon

    run_blender_tests(["tests/blender/test_ui_register.py"], tmp_path, python=blender)
    # The same zip through the legacy add-on installer, in a fresh Blender user folder.
    archive = build_addon.build(tmp_path / "dist")
    result = subprocess.run([str(blender_python(blender)), "-c", LEGACY_INSTALL.format(zip=str(archive))],
                            cwd=tmp_path, capture_output=True, text=True, check=False,
                            timeout=300, env={**blender_environment(), "BLENDER_USER_RESOURCES":
                                              str(tmp_path / "legacy-user")})
    assert result.returncode == 0 and "legacy install ok" in result.stdout, (
        result.stdout[-4000:] + result.stderr[-4000:])


@pytest.mark.parametrize("blender", blender_params())
def test_camera_export_matches_the_backend(blender, tmp_path, packages):
    from oneshot_avatar.cameras import from_blender

    out = tmp_path / "out"
    out.mkdir()
    run_blender_tests(["tests/blender/test_ui_camera.py"], tmp_path,
                      {"ONESHOT_AVATAR_TEST_PACKAGE": str(packages["own"]),
                       "ONESHOT_AVATAR_TEST_OUT": str(out)}, python=blender)
    cases = json.loads((out / "camera_cases.json").read_text())
    assert len(cases) == 3
    for name, case in cases.items():
        camera = from_blender(**case["payload"]["blender"], dtype=torch.float64)
        uv, depth = camera.project(torch.tensor(case["points"], dtype=torch.float64))
        assert bool((depth > 0).all()), name
        np.testing.assert_allclose(uv.numpy(), case["blender_pixels"], atol=1e-3, err_msg=name)


@pytest.mark.parametrize("blender", blender_params())
def test_jobs_against_a_fake_backend(blender, tmp_path, packages):
    answers = service_answers.write_answers(tmp_path / "answers.json")  # from the schemas
    run_blender_tests(["tests/blender/test_ui_jobs.py"], tmp_path,
                      {"ONESHOT_AVATAR_TEST_PACKAGE": str(packages["own"]),
                       service_answers.ENV: str(answers)}, python=blender)


@pytest.mark.slow
@pytest.mark.parametrize("blender", blender_params())
def test_render_against_a_real_server(blender, tmp_path, packages, body_cache):
    from PIL import Image, ImageDraw

    photo = tmp_path / "person.png"
    image = Image.new("RGB", (256, 384), (200, 200, 190))
    draw = ImageDraw.Draw(image)
    draw.ellipse((108, 30, 148, 75), fill=(180, 140, 120))
    draw.rectangle((98, 80, 158, 230), fill=(40, 60, 150))
    draw.rectangle((100, 230, 155, 360), fill=(30, 30, 40))
    image.save(photo)
    out = tmp_path / "out"
    out.mkdir()
    with running_server(tmp_path / "server-data", body_cache=body_cache, token=TOKEN) as server:
        run_blender_tests(["tests/blender/test_ui_render.py"], tmp_path, {
            **server.blender_env(), "ONESHOT_AVATAR_TEST_PACKAGE": str(packages["own"]),
            "ONESHOT_AVATAR_TEST_FOREIGN_PACKAGE": str(packages["foreign"]),
            "ONESHOT_AVATAR_TEST_PHOTO": str(photo),
            "ONESHOT_AVATAR_TEST_SERVE_COMMAND": f"{sys.executable} -m oneshot_avatar",
            "ONESHOT_AVATAR_TEST_OUT": str(out)},
            extra_args=("-k", "not killed"), python=blender)  # that one has its own server


@pytest.mark.slow
@pytest.mark.parametrize("blender", blender_params())
def test_backend_killed_during_a_render(blender, tmp_path, packages, body_cache):
    """A server of its own, killed by the Blender-side test in the middle of a render."""
    server = start_server(tmp_path / "doomed-data", env={"ONESHOT_AVATAR_CACHE": str(body_cache)})
    try:
        output = run_blender_tests(
            ["tests/blender/test_ui_render.py"], tmp_path,
            {**server.blender_env(), "ONESHOT_AVATAR_TEST_DOOMED_SERVER_URL": server.url,
             "ONESHOT_AVATAR_TEST_DOOMED_SERVER_PID": str(server.proc.pid),
             "ONESHOT_AVATAR_TEST_PACKAGE": str(packages["own"])},
            extra_args=("-k", "killed", "-s"), python=blender)
        print(output[-2000:], file=sys.stderr)
        assert server.proc.wait(10) == -9  # it really was killed
    finally:
        if server.proc.poll() is None:
            server.kill()
