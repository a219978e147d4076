"""The "One-Shot Avatar" render engine: F12 / Render Animation and Rendered viewport shading
draw every avatar rig of the scene with pixels from the backend (``POST /v1/render-scene``).

- ``render``: the scene camera at the scene's resolution x percentage and pixel aspect, the
  current frame; writes Combined (premultiplied, scene-linear, alpha = coverage, so film is
  transparent) and Depth (Z) into the render result, so output paths, file formats, the
  compositor and the Render window work as usual. A backend that is down or refuses the
  request ends the frame with an error report and stops the render (Render Animation too).
- ``view_update`` / ``view_draw``: the 3D view's own view and projection matrices and region
  size; requests run on a worker thread, only the newest frame is in flight, the previous
  image stays on screen meanwhile, and a failure is written in the region.

Which avatars: every armature made by the importer that is visible to the render (or the
viewport), each with its package (uploaded once per checksum and backend, again when the file
changes on disk). The plain parts live in ``core/render_engine.py``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import bpy

from . import preferences
from .core import camera as camera_export
from .core import render_engine as plain
from .core.client import ServiceError
from .core.smplx_rig import RIG_TAG_PROPERTY, expression_space
from .core.uploads import ensure_uploaded
from .render_ops import avatar_on_rig, camera_payload, upload_cache
from .rig_pose import motion_params, read_rig_pose, rig_expression_names

ENGINE_ID = "ONESHOT_AVATAR"
MAX_ERROR_CHARS = 300


def scene_rigs(depsgraph) -> list[bpy.types.Object]:
    """The avatar rigs this depsgraph shows (evaluated objects), by name for a stable order."""
    rigs = [obj for obj in depsgraph.objects
            if obj.type == "ARMATURE" and obj.get(RIG_TAG_PROPERTY) is not None]
    return sorted(rigs, key=lambda obj: obj.name)


def read_scene_avatars(depsgraph) -> list[dict[str, Any]]:
    """Main thread: each rig's pose rows, matrix and package (nothing sent yet)."""
    out = []
    for rig in scene_rigs(depsgraph):
        original = rig.original
        names = rig_expression_names(original)
        avatar_id, package = avatar_on_rig(original)
        out.append({"name": original.name, "avatar_id": avatar_id, "package": package,
                    "params": motion_params([read_rig_pose(original, depsgraph)], names),
                    "expression_space": expression_space(names),
                    "matrix_world": [list(row) for row in rig.matrix_world]})
    return out


def scene_camera_payload(scene, camera_object) -> dict[str, Any]:
    """The scene camera (evaluated object) in the scene's world, as the backend takes it."""
    if camera_object is None:
        raise camera_export.CameraExportError("the scene has no camera; add one and make it "
                                              "the scene camera", "camera")
    if camera_object.type != "CAMERA":
        raise camera_export.CameraExportError(f"the scene camera {camera_object.name!r} is not "
                                              "a camera object", "camera")
    return camera_payload(scene, camera_object)


class _Uploads:
    """Backend avatar id per package file: hashed again only when its size or time changes,
    so a package rewritten on disk is uploaded again (see ``core/uploads.py``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._known: dict[tuple, str] = {}

    def avatar_id(self, client, cache, entry: dict[str, Any]) -> str:
        package = entry["package"]
        key = None
        if package and os.path.isfile(package):
            stat = os.stat(package)
            key = (client.base_url, package, stat.st_size, stat.st_mtime_ns)
            with self._lock:
                if key in self._known:
                    return self._known[key]
        # With a package on disk its checksum decides (a changed file is uploaded again);
        # without one the rig's recorded id must still be on the backend.
        found = ensure_uploaded(client, cache, avatar_id="" if key else entry["avatar_id"],
                                package=package, name=entry["name"])
        if key is not None:
            with self._lock:
                self._known[key] = found
        return found


UPLOADS = _Uploads()
AHEAD_FRAMES = 8  # Render Animation: frames asked for in one request
AHEAD_PIXELS = 16_000_000  # ... at most this many pixels together (memory)


class _Ahead:
    """Frames rendered ahead during Render Animation, until Blender asks for them."""

    def __init__(self):
        self.key = None
        self.frames: dict[int, plain.Frame] = {}

    def take(self, scene_name: str, frame: int, size) -> plain.Frame | None:
        if self.key != (scene_name, size):
            self.clear()
            return None
        return self.frames.pop(frame, None)

    def keep(self, scene_name: str, size, frames: dict) -> None:
        self.key, self.frames = (scene_name, size), dict(frames)

    def clear(self) -> None:
        self.key, self.frames = None, {}


AHEAD = _Ahead()


def fetch_frames(config, entries: list[dict[str, Any]], cameras: list[dict[str, Any]],
                 width: int, height: int, cache, *, dtype: str = "float32"
                 ) -> list[plain.Frame]:
    """Worker-safe (no bpy): upload what is missing, render, decode."""
    if not entries:
        return [plain.transparent_frame(width, height)]
    client = config.client()
    avatars = [plain.SceneAvatar(UPLOADS.avatar_id(client, cache, entry), entry["params"],
                                 entry["expression_space"], entry["matrix_world"])
               for entry in entries]
    data = client.render_scene(plain.scene_request(avatars, cameras, dtype=dtype))
    return plain.decode_scene(data, width, height)


def viewport_work(config, depsgraph, view_matrix, window_matrix, width: int, height: int):
    """``(key, work)`` for the viewport's request loop: ``key`` says what is on screen (camera,
    poses, backend), ``work()`` (worker thread) returns the decoded frame to draw."""
    camera = plain.viewport_camera([list(r) for r in view_matrix],
                                   [list(r) for r in window_matrix], width, height)
    entries = read_scene_avatars(depsgraph)
    cache = upload_cache()
    key = repr((camera, entries, config.url))
    return key, lambda: fetch_frames(config, entries, [camera], width, height, cache,
                                     dtype="float16")[0]


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


class OneshotAvatarRenderEngine(bpy.types.RenderEngine):
    bl_idname = ENGINE_ID
    bl_label = "One-Shot Avatar"
    bl_use_preview = False
    bl_use_postprocess = True
    bl_use_shading_nodes_custom = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.viewport = plain.LatestOnly()
        self.texture = None
        self.texture_frame = None

    # ---- final render (F12, Render Animation)

    def update_render_passes(self, scene=None, renderlayer=None):
        self.register_pass(scene, renderlayer, "Combined", 4, "RGBA", "COLOR")
        if renderlayer is not None and renderlayer.use_pass_z:
            self.register_pass(scene, renderlayer, "Depth", 1, "Z", "VALUE")

    def render(self, depsgraph):
        scene = depsgraph.scene
        render = scene.render
        frame_now = scene.frame_current
        try:
            width, height = camera_export.render_size(render.resolution_x, render.resolution_y,
                                                      render.resolution_percentage)
            frame = AHEAD.take(scene.name, frame_now, (width, height))
            if frame is None:
                frames = self._read_ahead(depsgraph, frame_now, width, height)
                config = preferences.connection_config(bpy.context)
                entries, cameras = plain.merge_frames(frames)
                decoded = fetch_frames(config, entries, cameras, width, height, upload_cache())
                numbers = [number for number, _, _ in frames]
                if not entries:  # no avatar: every frame is transparent
                    decoded = decoded * len(numbers)
                AHEAD.keep(scene.name, (width, height), dict(zip(numbers, decoded)))
                frame = AHEAD.take(scene.name, frame_now, (width, height))
        except (ServiceError, camera_export.CameraExportError, plain.SceneAnswerError,
                OSError) as error:
            AHEAD.clear()
            self.report({"ERROR"}, f"One-Shot Avatar: frame {frame_now}: {_short(error)}")
            return
        result = self.begin_result(0, 0, width, height)
        layer = result.layers[0]
        layer.passes["Combined"].rect = frame.combined.reshape(-1, 4)
        depth = next((p for p in layer.passes if p.name in ("Depth", "Z")), None)
        if depth is not None:
            depth.rect = frame.depth.reshape(-1, 1)
        self.end_result(result)

    def _read_ahead(self, depsgraph, frame_now: int, width: int, height: int) -> list:
        """``[(frame, avatars, camera)]``: this frame, and during Render Animation the next
        frames of the range too (one request renders them together; the backend batches
        them). The batch ends where a rig appears, vanishes or its object moves."""
        scene = depsgraph.scene
        count = 1
        if self.is_animation:
            count = max(1, min(AHEAD_FRAMES, AHEAD_PIXELS // (width * height),
                               (scene.frame_end - frame_now) // max(1, scene.frame_step) + 1))

        def read() -> tuple[list, dict]:
            camera = self.camera_override or scene.camera
            camera = camera.evaluated_get(depsgraph) if camera is not None else None
            return read_scene_avatars(depsgraph), scene_camera_payload(scene, camera)

        entries, camera = read()
        frames = [(frame_now, entries, camera)]
        if count == 1:
            return frames
        try:
            for index in range(1, count):
                number = frame_now + index * scene.frame_step
                self.frame_set(number, 0.0)
                entries, camera = read()
                if not plain.same_rigs(frames[0][1], entries):
                    break
                frames.append((number, entries, camera))
        finally:
            self.frame_set(frame_now, 0.0)
        return frames

    # ---- viewport (Rendered shading)

    def view_update(self, context, depsgraph):
        self._request_view(context, depsgraph)

    def _request_view(self, context, depsgraph) -> None:
        region, view = context.region, context.region_data
        try:
            config = preferences.connection_config(context)
            key, work = viewport_work(config, depsgraph, view.view_matrix, view.window_matrix,
                                      int(region.width), int(region.height))
        except (ServiceError, camera_export.CameraExportError) as error:
            self.viewport_error = _short(error)
            return
        self.viewport_error = None
        self.viewport.want(key, work)
        _watch(self)

    def view_draw(self, context, depsgraph):
        import gpu

        self._request_view(context, depsgraph)
        frame, error = self.viewport.result()
        error = getattr(self, "viewport_error", None) or error
        scene = depsgraph.scene
        if frame is not None:
            if self.texture_frame is not frame:
                pixels = gpu.types.Buffer("FLOAT", frame.width * frame.height * 4,
                                          frame.combined.ravel())
                self.texture = gpu.types.GPUTexture((frame.width, frame.height),
                                                    format="RGBA16F", data=pixels)
                self.texture_frame = frame
            from gpu_extras.presets import draw_texture_2d

            gpu.state.blend_set("ALPHA_PREMULT")
            self.bind_display_space_shader(scene)
            draw_texture_2d(self.texture, (0, 0), context.region.width, context.region.height)
            self.unbind_display_space_shader()
            gpu.state.blend_set("NONE")
        text = (f"One-Shot Avatar: {error}" if error else
                "One-Shot Avatar: rendering..." if frame is None else "")
        if text:
            import blf

            blf.size(0, 14)
            blf.color(0, 1.0, 0.8, 0.3, 1.0)
            blf.position(0, 12, context.region.height - 60, 0)
            blf.draw(0, text)


def _watch(engine) -> None:
    """Redraw the view when the request in flight answers (one timer on the main thread)."""
    if getattr(engine, "_watching", False) or not engine.viewport.busy:
        return
    engine._watching = True
    seen = engine.viewport.finished
    target = engine  # bpy structs take no weak references; a freed one raises ReferenceError

    def poll():
        try:
            if target.viewport.finished != seen:
                target._watching = False
                target.tag_redraw()
                return None
        except ReferenceError:  # the engine was freed (shading changed)
            return None
        return 0.03

    bpy.app.timers.register(poll, first_interval=0.03)


# Panels of other engines that make sense here (output, format, dimensions, passes).
COMPAT_PANELS = ("RENDER_PT_format", "RENDER_PT_frame_range", "RENDER_PT_output",
                 "RENDER_PT_encoding", "RENDER_PT_dimensions", "VIEWLAYER_PT_layer_passes",
                 "VIEWLAYER_PT_layer_passes_data", "RENDER_PT_color_management",
                 "RENDER_PT_film", "DATA_PT_lens", "DATA_PT_camera", "DATA_PT_camera_display")


def _compat_panels():
    for name in COMPAT_PANELS:
        panel = getattr(bpy.types, name, None)
        if panel is not None and hasattr(panel, "COMPAT_ENGINES"):
            yield panel


def register() -> None:
    bpy.utils.register_class(OneshotAvatarRenderEngine)
    for panel in _compat_panels():
        panel.COMPAT_ENGINES.add(ENGINE_ID)


def unregister() -> None:
    for panel in _compat_panels():
        panel.COMPAT_ENGINES.discard(ENGINE_ID)
    bpy.utils.unregister_class(OneshotAvatarRenderEngine)
