"""Render Animation in real Blender against the backend's own render of the same frames (run by
``benchmarks/viewport.py --blender PYTHON`` in Blender's Python, the ``bpy`` module; not alone).

Environment (set by viewport.py): ``BENCH_URL`` (a running ``oneshot-avatar serve``),
``BENCH_PACKAGE`` (an ``.avatar``), ``BENCH_SERVER_PID`` (for its CPU seconds), ``BENCH_SIZE``
("640x360"), ``BENCH_FRAMES``, ``BENCH_OUT`` (a scratch folder), ``BENCH_PREVIEW`` ("hidden":
the rig's splat preview hidden from the render, as Set Up Avatar Compositing leaves it, so
Blender does not evaluate its Geometry Nodes each frame; "shown"). Prints one JSON line:

- ``own_s``: the backend's own render of the scene's frames (the request Render Avatar sends,
  ``/v1/render`` as a zip of PNGs, extracted into a folder), wall seconds per frame,
  ``own_cpu`` the server's CPU and ``own_blender_cpu`` Blender's;
- ``engine_s``: ``bpy.ops.render.render(animation=True)`` with the One-Shot Avatar engine
  writing PNGs (RGBA), wall seconds per frame, ``engine_cpu`` the server's CPU and
  ``engine_blender_cpu`` Blender's (all its threads);
- ``floor_s`` / ``floor_blender_cpu``: the same Render Animation with an engine that writes
  the engine's first frame again and again: Blender's own share of any Render Animation (frame change, render
  result, PNG files);
- where the engine's time goes per frame on Blender's thread: ``read_ahead`` (depsgraph reads
  of the frames asked ahead), ``wait`` (for the backend's answer), ``copy`` (the rest of
  ``render``: the render result) and ``blender`` (the rest: Blender's own frame change and the
  PNG files); ``decode`` runs on a worker thread for the batches sent ahead.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="bench-blender-user-"))

import bpy

REPO = Path(__file__).resolve().parents[1]


def server_cpu() -> float:
    fields = Path(f"/proc/{os.environ['BENCH_SERVER_PID']}/stat").read_text().rsplit(")", 1)[1]
    fields = fields.split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def enable_addon():
    import addon_utils

    addons = Path(bpy.utils.user_resource("SCRIPTS", path="addons", create=True))
    link = addons / "oneshot_avatar"
    if not link.exists():
        link.symlink_to(REPO / "blender_addon", target_is_directory=True)
    bpy.utils.refresh_script_paths()
    assert addon_utils.enable("oneshot_avatar", default_set=True, handle_error=None)
    preferences = bpy.context.preferences.addons["oneshot_avatar"].preferences
    preferences.backend_mode = "URL"
    preferences.backend_url = os.environ["BENCH_URL"]
    preferences.token = ""
    preferences.timeout_s = 30.0


class _Blank(bpy.types.RenderEngine):
    """Writes a fixed frame: what Render Animation costs in Blender with no avatar work (frame
    change, the render result, colour management, the PNG files)."""

    bl_idname = "BENCH_BLANK"
    bl_label = "Blank (benchmark)"

    pixels = None  # the engine's first frame (so the PNG files cost what the engine's do)

    def render(self, depsgraph):
        render = depsgraph.scene.render
        width = render.resolution_x * render.resolution_percentage // 100
        height = render.resolution_y * render.resolution_percentage // 100
        result = self.begin_result(0, 0, width, height)
        result.layers[0].passes["Combined"].rect.foreach_set(_Blank.pixels)
        self.end_result(result)


def blender_floor(scene, folder: Path, frames: int, first: Path) -> tuple[float, float]:
    """Render Animation of the same frames and format with :class:`_Blank` writing the image
    ``first`` each frame: wall and Blender CPU seconds per frame."""
    import numpy as np

    image = bpy.data.images.load(str(first))
    _Blank.pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(_Blank.pixels)
    bpy.data.images.remove(image)
    bpy.utils.register_class(_Blank)
    engine, path = scene.render.engine, scene.render.filepath
    try:
        scene.render.engine = _Blank.bl_idname
        scene.render.filepath = str(folder) + os.sep
        t0, own0 = time.perf_counter(), time.process_time()
        bpy.ops.render.render(animation=True)
        return (time.perf_counter() - t0) / frames, (time.process_time() - own0) / frames
    finally:
        scene.render.engine, scene.render.filepath = engine, path
        bpy.utils.unregister_class(_Blank)


def main() -> None:
    enable_addon()
    import oneshot_avatar.render_engine as engine_module
    from oneshot_avatar.core import render_engine as plain
    from oneshot_avatar.preferences import connection_config

    from oneshot_avatar import render_ops

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    assert bpy.ops.oneshot_avatar.import_avatar(filepath=os.environ["BENCH_PACKAGE"]) == \
        {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    frames = int(os.environ.get("BENCH_FRAMES", "16"))
    shoulder = rig.pose.bones["left_shoulder"]
    for frame in range(1, frames + 1):
        angle = -0.8 + 1.6 * (frame - 1) / max(1, frames - 1)
        shoulder.rotation_quaternion = (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))
        shoulder.keyframe_insert("rotation_quaternion", frame=frame)
    if os.environ.get("BENCH_PREVIEW", "hidden") == "hidden":
        for child in rig.children_recursive:  # as Set Up Avatar Compositing leaves them
            child.hide_render = True
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -4.0, rig.location.z - 0.3)
    camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    camera.data.lens = 40.0
    scene.camera = camera
    width, height = (int(v) for v in os.environ.get("BENCH_SIZE", "640x360").split("x"))
    scene.render.engine = "ONESHOT_AVATAR"
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.frame_start, scene.frame_end = 1, frames
    out = Path(os.environ["BENCH_OUT"])
    scene.render.filepath = str(out / "frames") + os.sep
    scene.frame_set(1)

    # The backend's own render of the same frames and camera (what Render Avatar sends).
    client = connection_config().client()
    avatar, package = render_ops.avatar_on_rig(rig)
    request = render_ops.build_render_request(bpy.context, rig, list(range(1, frames + 1)))
    request["avatar"] = render_ops.ensure_avatar(client, avatar, package, rig.name,
                                                 render_ops.upload_cache())
    request["background"] = None
    request["format"] = "zip"
    client.render({**request, "motion": {**request["motion"],
                                         "params": {k: v[:1] for k, v in
                                                    request["motion"]["params"].items()}}})
    cpu0, t0, own0 = server_cpu(), time.perf_counter(), time.process_time()
    archive = client.render(request)
    (out / "own.zip").write_bytes(archive)  # and its PNGs into a folder, as Render Avatar does
    render_ops.extract_frames(out / "own.zip", list(range(1, frames + 1)), str(out / "own"),
                              "frame_")
    own_s = (time.perf_counter() - t0) / frames
    own_cpu = (server_cpu() - cpu0) / frames
    own_blender_cpu = (time.process_time() - own0) / frames

    # Render Animation, with the engine's parts timed.
    spent = {"read_ahead": 0.0, "frame": 0.0, "decode": 0.0, "render": 0.0}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    scene.render.filepath = str(out / "warm.png")  # warm up the engine (upload check, imports)
    bpy.ops.render.render(write_still=True)
    scene.render.filepath = str(out / "frames") + os.sep
    cls = engine_module.OneshotAvatarRenderEngine
    saved = (cls.render, cls._read_ahead, cls._frame, plain.decode_scene)
    render_timed = timed("render", cls.render)

    def render(self, depsgraph):  # Blender calls methods with their own argument count
        return render_timed(self, depsgraph)

    cls.render = render
    cls._read_ahead = timed("read_ahead", cls._read_ahead)
    cls._frame = timed("frame", cls._frame)
    plain.decode_scene = timed("decode", plain.decode_scene)
    try:
        cpu0, t0, own0 = server_cpu(), time.perf_counter(), time.process_time()
        bpy.ops.render.render(animation=True)
        total = time.perf_counter() - t0
        engine_cpu = (server_cpu() - cpu0) / frames
        engine_blender_cpu = (time.process_time() - own0) / frames
    finally:
        cls.render, cls._read_ahead, cls._frame, plain.decode_scene = saved
    written = sorted(os.listdir(out / "frames"))
    assert len(written) == frames, written
    floor_s, floor_cpu = blender_floor(scene, out / "floor", frames,
                                       out / "frames" / written[0])
    engine_s = total / frames
    parts = {k: v / frames for k, v in spent.items()}
    # waiting for pixels on Blender's thread (requests run on a worker while Blender writes)
    parts["wait"] = parts.pop("frame") - parts["read_ahead"]
    parts["copy"] = parts["render"] - parts["read_ahead"] - parts["wait"]
    parts["blender"] = engine_s - parts.pop("render")
    parts["decode (any thread)"] = parts.pop("decode")
    print("BENCH " + json.dumps({"own_s": own_s, "own_cpu": own_cpu, "engine_s": engine_s,
                                 "engine_cpu": engine_cpu, "parts": parts,
                                 "own_blender_cpu": own_blender_cpu,
                                 "floor_s": floor_s, "floor_blender_cpu": floor_cpu,
                                 "engine_blender_cpu": engine_blender_cpu,
                                 "blender_version": bpy.app.version_string}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - printed for the driver, then a failing exit
        import traceback

        traceback.print_exc()
        sys.exit(1)
