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
from bpy.app.handlers import persistent

from . import preferences
from .core import camera as camera_export
from .core import render_engine as plain
from .core.client import ServiceError
from .core.render_engine import flat32
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
        try:
            found = ensure_uploaded(client, cache, avatar_id="" if key else entry["avatar_id"],
                                    package=package, name=entry["name"])
        except ServiceError as error:
            if error.field != "package" or error.status is None or error.status >= 500:
                raise
            # The backend refused the file (damaged, or caught half-written): say which one.
            raise ServiceError(f"the backend refused the package {package} of rig "
                               f"{entry['name']!r}: {error.message}", status=error.status,
                               field="avatar", url=error.url,
                               hint="the file may be damaged or still being written; render "
                                    "again once it is complete, or import it again") from None
        if key is not None:
            with self._lock:
                self._known[key] = found
        return found


UPLOADS = _Uploads()
AHEAD_FRAMES = 8  # Render Animation: frames asked for in one request
FIRST_FRAMES = 2  # ... but the first one, which Blender waits for idle, is short
AHEAD_PIXELS = 16_000_000  # ... at most this many pixels together (memory)


class _Pending:
    """One request of frames ahead running on a worker thread (Render Animation)."""

    def __init__(self, numbers: list[int], work):
        self.numbers = numbers
        self.frames: list[plain.Frame] | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()

        def run():
            try:
                self.frames = work()
            except BaseException as error:  # noqa: BLE001 - raised again in take()
                self.error = error
            finally:
                self._done.set()

        threading.Thread(target=run, name="oneshot-avatar frames ahead", daemon=True).start()

    def result(self) -> dict[int, plain.Frame]:
        self._done.wait()
        if self.error is not None:
            raise self.error
        return dict(zip(self.numbers, self.frames))


class _RenderJob:
    """What one render job (F12, or a whole Render Animation) keeps between frames: frames
    rendered ahead until Blender asks for them, the next batch in flight on a worker thread
    (so the backend renders while Blender writes), and the backend id of each package as the
    job found it (a package rewritten on disk during the job is used from the next job on, so
    one animation shows one avatar). Cleared when a render job starts, ends or is cancelled."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.key = None
        self.frames: dict[int, plain.Frame] = {}
        self.pending: _Pending | None = None
        self.avatar_ids: dict[tuple, str] = {}

    def take(self, key, frame: int) -> plain.Frame | None:
        """The frame when it was asked for ahead (waits for the batch in flight); an error of
        that batch is raised here, for this frame."""
        if self.key != key:
            self.clear()
            self.key = key
            return None
        if frame not in self.frames and self.pending is not None \
                and frame in self.pending.numbers:
            pending, self.pending = self.pending, None
            self.frames.update(pending.result())
        return self.frames.pop(frame, None)

    def keep(self, frames: dict[int, plain.Frame]) -> None:
        self.frames.update(frames)

    def avatar_id(self, client, cache, entry: dict[str, Any]) -> str:
        pin = (client.base_url, entry["name"], entry["package"], entry["avatar_id"])
        found = self.avatar_ids.get(pin)
        if found is None:
            found = self.avatar_ids[pin] = UPLOADS.avatar_id(client, cache, entry)
        return found


JOB = _RenderJob()


@persistent
def _new_render_job(*_args) -> None:
    JOB.clear()


RENDER_JOB_HANDLERS = ("render_init", "render_complete", "render_cancel")


def fetch_frames(config, entries: list[dict[str, Any]], cameras: list[dict[str, Any]],
                 width: int, height: int, cache, *, dtype: str = "float32", depth: bool = True,
                 avatar_id=None) -> list[plain.Frame]:
    """Worker-safe (no bpy): upload what is missing, render, decode. ``avatar_id(client, cache,
    entry)`` picks each avatar's backend id (default: :data:`UPLOADS`); ``depth=False`` asks
    for colour only."""
    if not entries:
        return [plain.transparent_frame(width, height)]
    client = config.client()
    pick = avatar_id or UPLOADS.avatar_id
    avatars = [plain.SceneAvatar(pick(client, cache, entry), entry["params"],
                                 entry["expression_space"], entry["matrix_world"])
               for entry in entries]
    data = client.render_scene(plain.scene_request(avatars, cameras, dtype=dtype, depth=depth))
    return plain.decode_scene(data, width, height)


def batch_work(config, frames: list, width: int, height: int, cache):
    """``(numbers, work)`` for frames read ahead: ``work()`` (any thread) renders them in one
    request and returns their decoded frames."""
    entries, cameras = plain.merge_frames(frames)
    numbers = [number for number, _, _ in frames]

    def work() -> list[plain.Frame]:
        decoded = fetch_frames(config, entries, cameras, width, height, cache,
                               avatar_id=JOB.avatar_id)
        return decoded * len(numbers) if not entries else decoded  # none: all transparent

    return numbers, work


def viewport_work(config, depsgraph, view_matrix, window_matrix, width: int, height: int):
    """``(key, work)`` for the viewport's request loop: ``key`` says what is on screen (camera,
    poses, backend), ``work()`` (worker thread) returns the decoded frame to draw."""
    entries = read_scene_avatars(depsgraph)
    key, camera = plain.viewport_request(entries, [list(r) for r in view_matrix],
                                         [list(r) for r in window_matrix], width, height,
                                         config.url)
    cache = upload_cache()
    return key, lambda: fetch_frames(config, entries, [camera], width, height, cache,
                                     dtype="float16", depth=False)[0]


class DrawCache:
    """The GPU texture of the frame on screen (made again only when the frame changes)."""

    def __init__(self):
        self.texture = None
        self.frame = None


def draw_picture(picture: plain.ViewportPicture, width: int, height: int, cache: DrawCache,
                 bind=None, unbind=None) -> None:
    """Draw ``picture`` into the bound framebuffer, pixel coordinates ``(0, 0)``-``(width,
    height)``: the frame as a premultiplied texture stretched over the region (between
    ``bind()`` and ``unbind()``: the engine's display-space shader), and the message at the top
    left. Needs a GPU context (a 3D view's draw, or an offscreen)."""
    import gpu

    frame = picture.frame
    if frame is not None and frame.drawn is not None:
        # Only the part with coverage goes to the GPU (a viewport is mostly empty), drawn where
        # it lies in the frame, the frame stretched over the region.
        x0, y0, x1, y1 = frame.drawn
        if cache.frame is not frame:
            part = frame.combined[y0:y1, x0:x1]
            pixels = gpu.types.Buffer("FLOAT", part.size, flat32(part))
            cache.texture = gpu.types.GPUTexture((x1 - x0, y1 - y0), format="RGBA16F",
                                                 data=pixels)
            cache.frame = frame
        from gpu_extras.presets import draw_texture_2d

        sx, sy = width / frame.width, height / frame.height
        gpu.state.blend_set("ALPHA_PREMULT")
        if bind is not None:
            bind()
        draw_texture_2d(cache.texture, (x0 * sx, y0 * sy), (x1 - x0) * sx, (y1 - y0) * sy)
        if unbind is not None:
            unbind()
        gpu.state.blend_set("NONE")
    if picture.message:
        import blf

        blf.size(0, 14)
        blf.color(0, 1.0, 0.8, 0.3, 1.0)
        blf.position(0, 12, height - 60, 0)
        blf.draw(0, picture.message)


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
        self.viewport = plain.Viewport()
        self.drawn = DrawCache()

    # ---- final render (F12, Render Animation)

    def update_render_passes(self, scene=None, renderlayer=None):
        self.register_pass(scene, renderlayer, "Combined", 4, "RGBA", "COLOR")
        if renderlayer is not None and renderlayer.use_pass_z:
            self.register_pass(scene, renderlayer, "Depth", 1, "Z", "VALUE")

    def render(self, depsgraph):
        scene = depsgraph.scene
        frame_now = scene.frame_current
        try:
            frame, width, height = self._frame(depsgraph, frame_now)
        except (ServiceError, camera_export.CameraExportError, plain.SceneAnswerError,
                OSError) as error:
            JOB.clear()
            self.report({"ERROR"}, f"One-Shot Avatar: frame {frame_now}: {_short(error)}")
            return
        except Exception as error:  # noqa: BLE001 - Blender would write an empty frame and go on
            import traceback

            traceback.print_exc()
            JOB.clear()
            self.report({"ERROR"}, f"One-Shot Avatar: frame {frame_now}: internal error "
                                   f"{type(error).__name__}: {_short(error)} (details in the "
                                   "system console)")
            return
        result = self.begin_result(0, 0, width, height)
        layer = result.layers[0]
        # foreach_set copies the buffer (~1 ms); assigning ``rect`` a sequence converts it
        # value by value (1-5 s for 640x360 in Blender 5.0/5.2).
        layer.passes["Combined"].rect.foreach_set(plain.flat32(frame.combined))
        depth = next((p for p in layer.passes if p.name in ("Depth", "Z")), None)
        if depth is not None:
            depth.rect.foreach_set(plain.flat32(frame.depth))
        self.end_result(result)

    def _frame(self, depsgraph, frame_now: int) -> tuple[plain.Frame, int, int]:
        """This frame's pixels: asked for ahead already, or now (with the frames after it
        during Render Animation); then the next batch is sent while Blender writes these."""
        scene = depsgraph.scene
        render = scene.render
        width, height = camera_export.render_size(render.resolution_x, render.resolution_y,
                                                  render.resolution_percentage)
        key = (scene.name, width, height, bool(self.is_animation))
        frame = JOB.take(key, frame_now)
        if frame is None:
            config = preferences.connection_config(bpy.context)
            frames = self._read_ahead(depsgraph, frame_now, width, height,
                                      most=FIRST_FRAMES)
            numbers, work = batch_work(config, frames, width, height, upload_cache())
            JOB.keep(dict(zip(numbers, work())))
            frame = JOB.take(key, frame_now)
        if self.is_animation and JOB.pending is None:
            self._send_next(depsgraph, frame_now, width, height)
        return frame, width, height

    def _send_next(self, depsgraph, frame_now: int, width: int, height: int) -> None:
        """Read the batch after the frames kept and start its request on a worker thread."""
        scene = depsgraph.scene
        step = max(1, scene.frame_step)
        after = max(JOB.frames, default=frame_now) + step
        if after > scene.frame_end or after in JOB.frames:
            return
        frames = self._read_ahead(depsgraph, after, width, height, back_to=frame_now)
        config = preferences.connection_config(bpy.context)
        numbers, work = batch_work(config, frames, width, height, upload_cache())
        JOB.pending = _Pending(numbers, work)

    def _read_ahead(self, depsgraph, first: int, width: int, height: int, *,
                    back_to: int | None = None, most: int | None = None) -> list:
        """``[(frame, avatars, camera)]``: frame ``first``, and during Render Animation the
        next frames of the range too (one request renders them together; the backend batches
        them), at most ``most`` (default :data:`AHEAD_FRAMES`). The batch ends where a rig
        appears, vanishes or its object moves. The scene is left at ``back_to`` (default
        ``first``)."""
        scene = depsgraph.scene
        back_to = first if back_to is None else back_to
        step = max(1, scene.frame_step)
        count = 1
        if self.is_animation:
            count = max(1, min(AHEAD_FRAMES if most is None else most,
                               AHEAD_PIXELS // (width * height),
                               (scene.frame_end - first) // step + 1))

        def read() -> tuple[list, dict]:
            camera = self.camera_override or scene.camera
            camera = camera.evaluated_get(depsgraph) if camera is not None else None
            return read_scene_avatars(depsgraph), scene_camera_payload(scene, camera)

        moved = first != scene.frame_current
        try:
            if moved:
                self.frame_set(first, 0.0)
            entries, camera = read()
            frames = [(first, entries, camera)]
            for index in range(1, count):
                number = first + index * step
                self.frame_set(number, 0.0)
                moved = True
                entries, camera = read()
                if not plain.same_rigs(frames[0][1], entries):
                    break
                frames.append((number, entries, camera))
        finally:
            if moved:
                self.frame_set(back_to, 0.0)
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
            self.viewport.failed(_short(error))
            return
        self.viewport.want(key, work)
        _watch(self)

    def view_draw(self, context, depsgraph):
        self._request_view(context, depsgraph)
        scene = depsgraph.scene
        draw_picture(self.viewport.picture(), context.region.width, context.region.height,
                     self.drawn, lambda: self.bind_display_space_shader(scene),
                     self.unbind_display_space_shader)


def _watch(engine) -> None:
    """Redraw the view when the request in flight answers (one timer on the main thread)."""
    if getattr(engine, "_watching", False) or not engine.viewport.busy:
        return
    engine._watching = True
    seen = engine.viewport.requests.finished
    target = engine  # bpy structs take no weak references; a freed one raises ReferenceError

    def poll():
        try:
            if target.viewport.requests.finished != seen:
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
    for name in RENDER_JOB_HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if _new_render_job not in handlers:
            handlers.append(_new_render_job)
    for panel in _compat_panels():
        panel.COMPAT_ENGINES.add(ENGINE_ID)


def unregister() -> None:
    for name in RENDER_JOB_HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if _new_render_job in handlers:
            handlers.remove(_new_render_job)
    JOB.clear()
    for panel in _compat_panels():
        panel.COMPAT_ENGINES.discard(ENGINE_ID)
    bpy.utils.unregister_class(OneshotAvatarRenderEngine)
