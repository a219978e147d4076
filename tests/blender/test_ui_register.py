"""In real Blender: the add-on registers and unregisters cleanly (twice, as a legacy add-on and
as an extension installed from the built zip), and its panels draw with what exists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from conftest import (
    EXTENSION_MODULE,
    LEGACY_MODULE,
    addon_preferences,
    disable_addon,
    enable_addon,
)

OPERATORS = ("import_avatar", "reconstruct", "render_avatar", "preview_frame", "align_pose",
             "test_connection", "start_local_backend", "stop_local_backend", "cancel_job",
             "remove_job", "retry_job_result", "import_motion", "import_builtin_motion")
# File > Import: avatar, motion files, video motion; File > Export: motion.
MENU_ENTRIES = {"TOPBAR_MT_file_import": 3, "TOPBAR_MT_file_export": 1}
PANELS = ("ONESHOT_AVATAR_PT_main", "ONESHOT_AVATAR_PT_reconstruct", "ONESHOT_AVATAR_PT_jobs",
          "ONESHOT_AVATAR_PT_animate", "ONESHOT_AVATAR_PT_render")


def _registered() -> dict[str, bool]:
    import addon_utils

    status = {f"op {name}": hasattr(bpy.types, f"ONESHOT_AVATAR_OT_{name}") for name in OPERATORS}
    status.update({f"panel {name}": hasattr(bpy.types, name) for name in PANELS})
    status["Scene.oneshot_avatar"] = hasattr(bpy.types.Scene, "oneshot_avatar")
    status["status bar"] = any(getattr(f, "__name__", "") == "draw_status_bar"
                               for f in getattr(bpy.types.STATUSBAR_HT_header.draw, "_draw_funcs",
                                                []))
    for menu, entries in MENU_ENTRIES.items():  # all of ours there (True), or none (False)
        ours = [f for f in getattr(getattr(bpy.types, menu).draw, "_draw_funcs", [])
                if "oneshot_avatar" in getattr(f, "__module__", "")]
        status[f"menu {menu}"] = {entries: True, 0: False}.get(len(ours))
    status["enabled"] = any(addon_utils.check(m)[1] for m in (LEGACY_MODULE, EXTENSION_MODULE))
    return status


def _assert_all(expected: bool) -> None:
    status = _registered()
    wrong = {name: value for name, value in status.items() if value != expected}
    assert not wrong, f"expected everything {'registered' if expected else 'gone'}: {wrong}"


@pytest.fixture()
def legacy_off():
    """Neither mode may be enabled while the other registers the same classes: switch the
    session's legacy add-on off for the test and back on afterwards."""
    import addon_utils

    was_enabled = addon_utils.check(LEGACY_MODULE)[1]
    if was_enabled:
        disable_addon(LEGACY_MODULE)
    yield
    if was_enabled:
        enable_addon(LEGACY_MODULE)


def test_legacy_register_unregister_twice(legacy_off):
    for _ in range(2):
        enable_addon(LEGACY_MODULE)
        _assert_all(True)
        preferences = addon_preferences(LEGACY_MODULE)
        assert preferences.backend_url == "http://127.0.0.1:8765"
        assert bpy.context.scene.oneshot_avatar.preset == "fast"
        disable_addon(LEGACY_MODULE)
        _assert_all(False)


def test_extension_install_from_built_zip(tmp_path, legacy_off):
    """The zip `python build_addon.py` writes installs through Blender's extension installer
    and enables/disables twice."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    try:
        import build_addon
    finally:
        sys.path.pop(0)
    archive = build_addon.build(tmp_path)
    assert archive.name == f"oneshot_avatar-{build_addon.manifest_version()}.zip"
    result = bpy.ops.extensions.package_install_files(filepath=str(archive),
                                                      repo="user_default",
                                                      enable_on_install=False)
    assert result == {"FINISHED"}
    bpy.ops.extensions.repo_refresh_all()
    for _ in range(2):
        enable_addon(EXTENSION_MODULE)
        _assert_all(True)
        assert addon_preferences(EXTENSION_MODULE).timeout_s == pytest.approx(10.0)
        disable_addon(EXTENSION_MODULE)
        _assert_all(False)


class LayoutRecorder:
    """Stands in for ``UILayout`` in background mode: checks every property and operator a
    panel draws exists."""

    def __init__(self, problems: list[str]):
        self.problems = problems

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if name in ("prop", "prop_search") and len(args) >= 2:
                data, prop = args[0], args[1]
                if data is None or prop not in data.bl_rna.properties:
                    self.problems.append(f"no property {prop!r} on {data!r}")
            if name == "operator":
                module, _, op = args[0].partition(".")
                if not hasattr(getattr(bpy.ops, module), op) or not hasattr(
                        bpy.types, getattr(getattr(bpy.ops, module), op).idname()):
                    self.problems.append(f"no operator {args[0]!r}")
                return OperatorProperties()
            return self

        return call


class OperatorProperties:
    """What ``layout.operator`` returns: takes the properties a panel sets."""


def test_panels_draw_with_existing_properties_and_operators(empty_scene):
    from oneshot_avatar.background import add_job_record
    from oneshot_avatar.core.jobs import JobSnapshot

    scene = empty_scene
    settings = scene.oneshot_avatar
    settings.photo_path = "//missing.jpg"
    add_job_record(scene, JobSnapshot(id="j_1", kind="reconstruct", state="running",
                                      stage="train", progress=0.5, stage_progress=0.25))
    add_job_record(scene, JobSnapshot(id="j_2", kind="render", state="failed",
                                      error_message="boom"))
    problems: list[str] = []
    context = bpy.context
    for name in PANELS:
        panel_class = getattr(bpy.types, name)
        stand_in = type("PanelStandIn", (), {"layout": LayoutRecorder(problems)})()
        panel_class.draw(stand_in, context)
    assert not problems, problems
    assert settings.avatar_name == "missing"  # filled from the photo's name
