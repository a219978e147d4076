"""Blender-side tests: run INSIDE Blender's Python (``.venv-blender``, ``import bpy``) by the
driver tests (``tests/test_blender_*.py``) of the main suite.

Without ``bpy`` (the main venv) nothing in this folder is collected, so ``python -m pytest``
from the repository root stays green. With ``bpy``, Blender's user folders are isolated in a
temporary directory (``BLENDER_USER_RESOURCES``, set before ``bpy`` is imported) and the
``addon`` fixture enables the repository's ``blender_addon/`` as the legacy add-on
``oneshot_avatar`` (a symlink in that directory's ``scripts/addons``), through Blender's own
add-on system, so the preferences exist as for a user.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from pathlib import Path

import pytest

HAVE_BPY = importlib.util.find_spec("bpy") is not None
if not HAVE_BPY:
    collect_ignore_glob = ["*.py"]
elif not os.environ.get("BLENDER_USER_RESOURCES"):
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="oneshot-blender-user-")

ADDON_DIR = Path(__file__).resolve().parents[2] / "blender_addon"
LEGACY_MODULE = "oneshot_avatar"
EXTENSION_MODULE = "bl_ext.user_default.oneshot_avatar"


def env_path(name: str) -> Path:
    """A path the driver passes in environment variable ``name``, or skip the test."""
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"${name} is not set: run these tests through their driver "
                    "(tests/test_blender_ui.py)")
    return Path(value)


def link_legacy_addon() -> None:
    """``<user scripts>/addons/oneshot_avatar`` -> the repository's ``blender_addon``."""
    import bpy

    addons = Path(bpy.utils.user_resource("SCRIPTS", path="addons", create=True))
    link = addons / LEGACY_MODULE
    if not link.exists():
        link.symlink_to(ADDON_DIR, target_is_directory=True)
    bpy.utils.refresh_script_paths()


def enable_addon(module: str = LEGACY_MODULE):
    import addon_utils

    if module == LEGACY_MODULE:
        link_legacy_addon()
    loaded = addon_utils.enable(module, default_set=True, handle_error=None)
    assert loaded is not None, f"could not enable {module}"
    return loaded


def disable_addon(module: str = LEGACY_MODULE) -> None:
    import addon_utils

    addon_utils.disable(module, default_set=True, handle_error=None)


def addon_preferences(module: str = LEGACY_MODULE):
    import bpy

    return bpy.context.preferences.addons[module].preferences


def use_backend(url: str, token: str = "", timeout_s: float = 30.0):
    """Point the add-on at the backend at ``url`` (URL mode, this token and timeout); returns
    its preferences."""
    preferences = addon_preferences()
    preferences.backend_mode = "URL"
    preferences.backend_url = url
    preferences.token = token
    preferences.timeout_s = timeout_s
    return preferences


def driver_server() -> tuple[str, str]:
    """(URL, token) of the server the driver started (``$ONESHOT_AVATAR_TEST_SERVER_URL``,
    ``_TOKEN``; no token: ""), or skip."""
    url = os.environ.get("ONESHOT_AVATAR_TEST_SERVER_URL")
    if not url:
        pytest.skip("$ONESHOT_AVATAR_TEST_SERVER_URL is not set: run these tests through their "
                    "driver (tests/test_blender_*.py)")
    return url, os.environ.get("ONESHOT_AVATAR_TEST_SERVER_TOKEN", "")


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a port bound, then let go)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def assert_backend_down_at_once(*calls) -> None:
    """With the add-on pointed at a closed port, each ``(operator, pattern)`` of ``calls`` fails
    with a RuntimeError (Blender's error report) matching ``pattern``, all within 5 s: a refused
    connection is reported at once, not after the timeout."""
    addon_preferences().backend_url = closed_port_url()
    started = time.monotonic()
    for operator, pattern in calls:
        with pytest.raises(RuntimeError, match=pattern):
            operator()
    assert time.monotonic() - started < 5


def import_avatar(path):
    """Import ``path`` through the add-on's operator (it must finish); returns the new rig."""
    import bpy

    assert bpy.ops.oneshot_avatar.import_avatar(filepath=str(path)) == {"FINISHED"}
    return bpy.context.view_layer.objects.active


def served_rig(fps: int):
    """A fresh scene at ``fps`` whose add-on talks to the driver's server, with the driver's
    package (``$ONESHOT_AVATAR_TEST_PACKAGE``) imported; returns the rig."""
    from rig_support import fresh_scene

    fresh_scene(fps)
    use_backend(*driver_server())
    return import_avatar(env_path("ONESHOT_AVATAR_TEST_PACKAGE"))


@pytest.fixture(scope="session")
def addon():
    """The add-on enabled (legacy mode) for the whole session; yields its module."""
    module = enable_addon()
    yield module
    disable_addon()


@pytest.fixture()
def empty_scene(addon):
    """A fresh empty file (the add-on stays enabled); yields its scene."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    yield bpy.context.scene
