"""Operators that talk to the backend (connection test, local backend, Reconstruct, job
cancel/remove/retry) and the job monitor.

Nothing here blocks the UI for long: HTTP runs in worker threads (``concurrent.futures``),
whose results are picked up on Blender's main thread by a modal operator's event timer
(while a request is being sent) or by the job monitor's ``bpy.app.timers`` timer (while the
backend works on a job). Worker threads never touch ``bpy``: they get plain values and return
plain values.

Scripts (and background mode, which has no event loop) run the same work synchronously through
the operators' ``execute``; ``wait=True`` also tracks the job until its result is in Blender.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import preferences
from .core.client import (
    AuthenticationError,
    BackendTimeoutError,
    BackendUnreachableError,
    ServiceError,
)
from .core.jobs import (
    JobFormatError,
    JobSnapshot,
    needs_delivery,
    needs_polling,
    progress_text,
)
from .core.smplx_rig import RIG_AVATAR_ID_PROPERTY, RIG_TAG_PROPERTY

# Errors a request or its result handling can raise that are the user's or the backend's to
# fix (reported in the UI); anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ServiceError, ValueError, OSError, zipfile.BadZipFile)
WORKER_THREADS = 3
MODAL_TICK_S = 0.1
MONITOR_TICK_S = 0.25
POLL_INTERVAL_S = 1.0
RETRY_INTERVAL_S = 5.0  # after the backend could not be reached
WAIT_TIMEOUT_S = 3600.0  # `wait=True` gives up after this long


# --------------------------------------------------------------------------------------------
# Worker threads


class Workers:
    """The add-on's thread pool (created on first use, shut down on unregister)."""

    executor: ThreadPoolExecutor | None = None

    @classmethod
    def submit(cls, fn: Callable[..., Any], *args: Any) -> Future:
        if cls.executor is None:
            cls.executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="oneshot-avatar")
        return cls.executor.submit(fn, *args)

    @classmethod
    def shutdown(cls) -> None:
        executor, cls.executor = cls.executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def report(level: str, message: str) -> None:
    """Show ``message`` in Blender's status bar / Info log from code that is not an operator
    (timers). ``level``: 'INFO', 'WARNING' or 'ERROR'."""
    print(f"One-Shot Avatar: {level.lower()}: {message}")
    try:
        bpy.ops.oneshot_avatar.show_report(level=level, message=message)
    except RuntimeError:
        pass  # an ERROR report raises here after it was shown; nothing else to do


def tag_redraw() -> None:
    window_manager = bpy.context.window_manager
    if window_manager is None:
        return
    for window in window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "STATUSBAR", "PREFERENCES"}:
                area.tag_redraw()


def results_folder() -> Path:
    """Where downloaded results go: ``oneshot_avatar/`` next to the saved .blend, else a
    folder in the system's temporary directory."""
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//oneshot_avatar"))
    return Path(tempfile.gettempdir()) / "oneshot_avatar"


def safe_file_name(name: str, fallback: str = "avatar") -> str:
    return bpy.path.clean_name(name or fallback) or fallback


class BackgroundRequest:
    """Mixin for operators whose work is a request to the backend.

    ``prepare(context)`` (main thread) checks inputs and returns the work as a callable of no
    arguments (or ``None`` after reporting why not); the work runs in a worker thread while a
    modal timer keeps the UI live (Esc stops waiting); ``finish(context, result)`` applies the
    result on the main thread. ``execute`` does the same synchronously (scripts, background)."""

    status_text = "Talking to the avatar backend..."
    _future: Future | None = None
    _timer = None

    def prepare(self, context) -> Callable[[], Any] | None:
        raise NotImplementedError

    def finish(self, context, result: Any) -> set[str]:
        raise NotImplementedError

    def _fail(self, error: BaseException) -> set[str]:
        self.report({"ERROR"}, str(error))
        return {"CANCELLED"}

    def execute(self, context):
        try:
            work = self.prepare(context)
            if work is None:
                return {"CANCELLED"}
            return self.finish(context, work())
        except EXPECTED_ERRORS as error:
            return self._fail(error)

    def invoke(self, context, event):
        if context.window is None:  # no event loop to wait in
            return self.execute(context)
        try:
            work = self.prepare(context)
        except EXPECTED_ERRORS as error:
            return self._fail(error)
        if work is None:
            return {"CANCELLED"}
        self._future = Workers.submit(work)
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(MODAL_TICK_S, window=context.window)
        window_manager.modal_handler_add(self)
        context.workspace.status_text_set(self.status_text + "  (Esc: stop waiting)")
        return {"RUNNING_MODAL"}

    def _end_modal(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC":
            self._end_modal(context)
            self.report({"WARNING"}, "Stopped waiting; the backend may still finish the request")
            return {"CANCELLED"}
        if event.type != "TIMER" or self._future is None or not self._future.done():
            return {"PASS_THROUGH"}
        self._end_modal(context)
        try:
            return self.finish(context, self._future.result())
        except EXPECTED_ERRORS as error:
            return self._fail(error)


# --------------------------------------------------------------------------------------------
# Job records (Scene.oneshot_avatar.jobs)


def all_job_records():
    """``(scene, record)`` for every job saved in this .blend."""
    for scene in bpy.data.scenes:
        settings = getattr(scene, "oneshot_avatar", None)
        if settings is None:
            continue
        for record in settings.jobs:
            yield scene, record


def find_job_record(job_id: str):
    for _scene, record in all_job_records():
        if record.job_id == job_id:
            return record
    return None


def add_job_record(scene: bpy.types.Scene, job: JobSnapshot, **values: Any):
    settings = scene.oneshot_avatar
    record = settings.jobs.add()
    record.job_id = job.id
    record.kind = job.kind
    record.name = job.name or values.pop("name", "") or job.id
    apply_snapshot(record, job)
    for key, value in values.items():
        setattr(record, key, value)
    settings.active_job_index = len(settings.jobs) - 1
    return record


def apply_snapshot(record, job: JobSnapshot) -> None:
    record.state = job.state
    record.stage = job.stage or ""
    record.progress = job.progress
    record.stage_progress = job.stage_progress
    if job.avatar_id:
        record.avatar_id = job.avatar_id
    if job.state == "failed":
        record.message = job.failure_text


def record_text(record) -> str:
    return progress_text(record.state, record.stage, record.stage_progress, record.progress,
                         delivered=record.delivered, message=record.message)


def _poll_job(config: preferences.ConnectionConfig, job_id: str) -> JobSnapshot:
    return JobSnapshot.from_api(config.client().get_job(job_id))


def _cancel_job(config: preferences.ConnectionConfig, job_id: str) -> JobSnapshot:
    return JobSnapshot.from_api(config.client().cancel_job(job_id))


def _download_package(config: preferences.ConnectionConfig, job_id: str, target: str) -> str:
    path = config.client().download_job_result(job_id, target)
    if not zipfile.is_zipfile(path):
        path.unlink(missing_ok=True)
        raise ServiceError(f"the backend's result for job {job_id} is not an .avatar package "
                           "(not a zip file)", field="package",
                           hint="run the reconstruction again; see the backend's log")
    return str(path)


def import_avatar_package(path: str, avatar_id: str = "", name: str = "") -> bpy.types.Object:
    """Import a downloaded package with the importer's operator (objects named after
    ``name``, else the package); returns the new rig.
    Raises :class:`ServiceError` with the importer's message when it fails."""
    if not hasattr(bpy.types, bpy.ops.oneshot_avatar.import_avatar.idname()):
        raise ServiceError("the avatar importer is not registered",
                           hint="reinstall the One-Shot Avatar add-on")
    before = {obj.name for obj in bpy.data.objects if RIG_TAG_PROPERTY in obj}
    try:
        bpy.ops.oneshot_avatar.import_avatar(filepath=path, avatar_name=name)
    except RuntimeError as error:
        raise ServiceError(f"importing {path!r} failed: {str(error).strip()}",
                           field="package", hint="the file may be damaged; run the "
                           "reconstruction again") from error
    new = [obj for obj in bpy.data.objects if RIG_TAG_PROPERTY in obj and obj.name not in before]
    if not new:
        raise ServiceError(f"importing {path!r} made no avatar rig", field="package",
                           hint="see the console for the importer's messages")
    rig = new[0]
    if avatar_id and not rig.get(RIG_AVATAR_ID_PROPERTY):
        rig[RIG_AVATAR_ID_PROPERTY] = avatar_id
    return rig


# --------------------------------------------------------------------------------------------
# The monitor: polls unfinished jobs and delivers results, from a bpy.app.timers timer


class JobMonitor:
    """Runs :meth:`step` every :data:`MONITOR_TICK_S` seconds while any job needs it."""

    def __init__(self) -> None:
        self.futures: dict[tuple[str, str], Future] = {}
        self.next_poll: dict[str, float] = {}
        self.connection_problem = ""
        self.deliverers: dict[str, Callable[[Any, Any], None]] = {
            "reconstruct": self._deliver_avatar}
        self.fetchers: dict[str, Callable[..., Any]] = {"reconstruct": self._fetch_avatar}
        # One bound method object: bpy.app.timers recognises a timer by identity.
        self._timer = self._tick

    # ---- timer

    @property
    def running(self) -> bool:
        return bpy.app.timers.is_registered(self._timer)

    def ensure_running(self) -> None:
        if not self.running:
            bpy.app.timers.register(self._timer, first_interval=MONITOR_TICK_S, persistent=True)

    def stop(self) -> None:
        if self.running:
            bpy.app.timers.unregister(self._timer)
        self.futures.clear()
        self.next_poll.clear()

    def _tick(self) -> float | None:
        busy = self.step()
        tag_redraw()
        return MONITOR_TICK_S if busy else None

    def wait(self, done: Callable[[], bool], timeout: float = WAIT_TIMEOUT_S) -> None:
        """Step until ``done()`` (scripts / background mode; blocks)."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise BackendTimeoutError(f"gave up waiting after {timeout:g} s",
                                          hint="the job goes on; see the Avatar panel")
            self.step()
            time.sleep(0.05)

    # ---- one step

    def _submit(self, action: str, job_id: str, fn: Callable[..., Any], *args: Any) -> None:
        key = (action, job_id)
        if key not in self.futures:
            self.futures[key] = Workers.submit(fn, *args)

    def step(self) -> bool:
        """Collect finished work, start polls/downloads that are due; True while anything
        still needs the monitor."""
        self._collect()
        now = time.monotonic()
        busy = bool(self.futures)
        config = None
        for _scene, record in list(all_job_records()):
            job_id = record.job_id
            wants_poll = needs_polling(record.state)
            wants_delivery = needs_delivery(record.state, record.delivered) and not record.message
            if not (wants_poll or wants_delivery):
                continue
            busy = True
            if config is None:
                try:
                    config = preferences.connection_config()
                except ServiceError as error:
                    self.connection_problem = str(error)
                    return True
            if wants_poll and record.cancel_requested:
                self._submit("cancel", job_id, _cancel_job, config, job_id)
            elif now < self.next_poll.get(job_id, 0.0):  # polled recently, or backend away
                continue
            elif wants_poll:
                self.next_poll[job_id] = now + POLL_INTERVAL_S
                self._submit("poll", job_id, _poll_job, config, job_id)
            elif wants_delivery and record.kind in self.fetchers:
                fetch = self.fetchers[record.kind]
                self._submit("fetch", job_id, *fetch(config, record))
        return busy

    def _collect(self) -> None:
        for key, future in list(self.futures.items()):
            if not future.done():
                continue
            del self.futures[key]
            action, job_id = key
            record = find_job_record(job_id)
            if record is None:  # removed from the list (or the file was closed) meanwhile
                continue
            try:
                result = future.result()
            except (BackendUnreachableError, BackendTimeoutError, AuthenticationError) as error:
                self._connection_failed(job_id, error)
                continue
            except ServiceError as error:
                if action == "cancel" and error.status == 409:  # already finished/cancelling
                    record.cancel_requested = False
                else:
                    self._job_failed(record, action, error)
                continue
            except EXPECTED_ERRORS as error:
                self._job_failed(record, action, error)
                continue
            self.connection_problem = ""
            if action == "cancel":
                record.cancel_requested = False  # asked once; polling shows when it stops
            if action in ("poll", "cancel"):
                self._apply(record, result)
            elif action == "fetch":
                try:
                    self.deliverers[record.kind](record, result)
                except EXPECTED_ERRORS as error:
                    self._job_failed(record, action, error)

    def _connection_failed(self, job_id: str, error: ServiceError) -> None:
        if str(error) != self.connection_problem:
            report("WARNING", f"{error} (retrying every {RETRY_INTERVAL_S:g} s)")
        self.connection_problem = str(error)
        self.next_poll[job_id] = time.monotonic() + RETRY_INTERVAL_S

    def _job_failed(self, record, action: str, error: BaseException) -> None:
        if isinstance(error, ServiceError) and error.status == 404 and action in ("poll",
                                                                                  "cancel"):
            record.state = "failed"
            record.message = ("the backend no longer has this job (was its data folder "
                              "cleared?)")
        elif isinstance(error, JobFormatError) or action != "fetch":
            record.state = "failed"
            record.message = str(error)
        else:
            record.message = str(error)
        record.cancel_requested = False
        report("ERROR", f"{record.kind.capitalize()} '{record.name}': {record.message}")

    def _apply(self, record, job: JobSnapshot) -> None:
        before = record.state
        apply_snapshot(record, job)
        if job.finished:
            record.cancel_requested = False
        if before != job.state and job.state == "failed":
            report("ERROR", f"{record.kind.capitalize()} '{record.name}' failed: "
                            f"{record.message}")
        elif before != job.state and job.state == "cancelled":
            report("INFO", f"{record.kind.capitalize()} '{record.name}' cancelled")

    # ---- reconstructions

    def _fetch_avatar(self, config, record) -> tuple:
        target = results_folder() / f"{safe_file_name(record.name)}_{record.job_id}.avatar"
        record.result_path = str(target)
        return _download_package, config, record.job_id, str(target)

    def _deliver_avatar(self, record, path: str) -> None:
        rig = import_avatar_package(path, record.avatar_id, safe_file_name(record.name))
        record.rig_name = rig.name
        record.delivered = True
        for scene in bpy.data.scenes:
            if scene.oneshot_avatar.render_rig is None:
                scene.oneshot_avatar.render_rig = rig
        report("INFO", f"Avatar '{record.name}' imported as {rig.name!r}")


job_monitor = JobMonitor()


@bpy.app.handlers.persistent
def _resume_jobs_after_load(_dummy=None) -> None:
    """Reopened .blend: pick up its unfinished jobs."""
    job_monitor.futures.clear()
    job_monitor.next_poll.clear()
    if any(needs_polling(r.state) or (needs_delivery(r.state, r.delivered) and not r.message)
           for _s, r in all_job_records()):
        job_monitor.ensure_running()


# --------------------------------------------------------------------------------------------
# Operators


class ONESHOT_AVATAR_OT_show_report(bpy.types.Operator):
    """Show a message from the add-on's background work"""

    bl_idname = "oneshot_avatar.show_report"
    bl_label = "One-Shot Avatar Message"
    bl_options = frozenset({"INTERNAL"})

    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""),
                               ("ERROR", "Error", "")], default="INFO")
    message: StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_test_connection(bpy.types.Operator):
    """Ask the backend for its version, device and body model"""

    bl_idname = "oneshot_avatar.test_connection"
    bl_label = "Test Connection"

    def execute(self, context):
        state = preferences.ConnectionState
        try:
            config = preferences.connection_config(context)
            if config.local_backend is not None and not config.local_backend.url:
                self.report({"WARNING"}, "The local backend is starting; test again in a few "
                                         "seconds")
                return {"CANCELLED"}
            health = config.client().health()
        except ServiceError as error:
            state.last_health, state.last_error = None, str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        state.last_health, state.last_error = health, ""
        self.report({"INFO"}, "Connected: " + preferences.describe_health(health))
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_start_local_backend(bpy.types.Operator):
    """Start `oneshot-avatar serve` on this machine (stopped when Blender quits)"""

    bl_idname = "oneshot_avatar.start_local_backend"
    bl_label = "Start Local Backend"

    def execute(self, context):
        try:
            backend = preferences.start_local_backend(preferences.get_preferences(context))
        except ServiceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Starting the local backend: {' '.join(backend.argv)}")
        bpy.app.timers.register(_watch_local_backend, first_interval=0.5)
        return {"FINISHED"}


def _watch_local_backend() -> float | None:
    """Until the local backend listens (or exits): redraw, then say how it went."""
    backend = preferences.ConnectionState.local_backend
    tag_redraw()
    if backend is None:
        return None
    if backend.state == "starting":
        return 0.5
    if backend.state == "listening":
        report("INFO", f"Local backend listening at {backend.url}")
    elif backend.state == "exited":
        report("ERROR", str(backend.failure()))
    return None


class ONESHOT_AVATAR_OT_stop_local_backend(bpy.types.Operator):
    """Stop the local backend the add-on started"""

    bl_idname = "oneshot_avatar.stop_local_backend"
    bl_label = "Stop Local Backend"

    def execute(self, context):
        preferences.stop_local_backend()
        self.report({"INFO"}, "Local backend stopped")
        return {"FINISHED"}


def _existing_file(path: str, field: str) -> str:
    """``path`` resolved (``//`` relative to the .blend); a missing file names the field."""
    resolved = bpy.path.abspath(path)
    if not os.path.isfile(resolved):
        raise ServiceError(f"file not found: {resolved!r}", field=field,
                           hint="pick an existing file in the Avatar panel")
    return resolved


class ONESHOT_AVATAR_OT_reconstruct(BackgroundRequest, bpy.types.Operator):
    """Send the photo to the backend to make an avatar; it is imported when ready"""

    bl_idname = "oneshot_avatar.reconstruct"
    bl_label = "Reconstruct Avatar"
    status_text = "Sending the photo to the avatar backend..."

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},
                       description="Block until the avatar is imported (for scripts)")
    steps: IntProperty(name="Steps", default=0, min=0, options={"SKIP_SAVE"},
                       description="Training steps (0: the preset's)")
    resolution: IntProperty(name="Resolution", default=0, min=0, options={"SKIP_SAVE"},
                            description="Working resolution in pixels (0: the preset's)")
    seed: IntProperty(name="Seed", default=-1, min=-1, options={"SKIP_SAVE"},
                      description="Random seed (-1: the backend's default)")
    timeout: FloatProperty(name="Timeout", default=WAIT_TIMEOUT_S, min=1.0,
                           options={"SKIP_SAVE", "HIDDEN"},
                           description="With Wait: give up after this many seconds")

    def prepare(self, context):
        settings = context.scene.oneshot_avatar
        if not settings.photo_path:
            raise ServiceError("no photo chosen", field="photo",
                               hint="pick a photo in the Avatar panel")
        photo = _existing_file(settings.photo_path, "photo")
        mask = _existing_file(settings.mask_path, "mask") if settings.mask_path else None
        keypoints = (_existing_file(settings.keypoints_path, "keypoints")
                     if settings.keypoints_path else None)
        init = None
        if settings.use_aligned_pose:
            from .render_ops import aligned_pose_init  # render_ops imports this module

            init = json.dumps(aligned_pose_init(context)).encode("utf-8")
        name = settings.avatar_name or bpy.path.display_name_from_filepath(photo)
        config = preferences.connection_config(context)
        options = {"preset": settings.preset, "name": name, "steps": self.steps or None,
                   "resolution": self.resolution or None,
                   "seed": self.seed if self.seed >= 0 else None}

        def send() -> JobSnapshot:
            client = config.client()
            return JobSnapshot.from_api(client.create_reconstruction(
                photo, mask=mask, keypoints=keypoints, init=init, **options))

        return send

    def finish(self, context, job: JobSnapshot):
        record = add_job_record(context.scene, job)
        job_monitor.ensure_running()
        self.report({"INFO"}, f"Reconstruction '{record.name}' queued as {job.id}")
        if not self.wait:
            return {"FINISHED"}
        job_id = job.id

        def done() -> bool:
            current = find_job_record(job_id)
            return current is None or not (needs_polling(current.state) or (
                needs_delivery(current.state, current.delivered) and not current.message))

        job_monitor.wait(done, self.timeout)
        record = find_job_record(job_id)
        if record is None or not record.delivered:
            self.report({"ERROR"}, f"Reconstruction '{job.name or job_id}': "
                                   + (record_text(record) if record else "removed"))
            return {"CANCELLED"}
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_cancel_job(bpy.types.Operator):
    """Ask the backend to cancel this job"""

    bl_idname = "oneshot_avatar.cancel_job"
    bl_label = "Cancel Job"

    job_id: StringProperty(name="Job ID", options={"SKIP_SAVE"})

    def execute(self, context):
        record = find_job_record(self.job_id)
        if record is None:
            self.report({"ERROR"}, f"No job {self.job_id!r} in this file")
            return {"CANCELLED"}
        if not needs_polling(record.state):
            self.report({"WARNING"}, f"Job '{record.name}' is already {record.state}")
            return {"CANCELLED"}
        record.cancel_requested = True
        job_monitor.ensure_running()
        self.report({"INFO"}, f"Cancelling '{record.name}'")
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_remove_job(bpy.types.Operator):
    """Remove this job from the list (the backend keeps its files)"""

    bl_idname = "oneshot_avatar.remove_job"
    bl_label = "Remove Job from List"

    job_id: StringProperty(name="Job ID", options={"SKIP_SAVE"})

    def execute(self, context):
        for scene in bpy.data.scenes:
            jobs = scene.oneshot_avatar.jobs
            for index, record in enumerate(jobs):
                if record.job_id == self.job_id:
                    if needs_polling(record.state):
                        self.report({"WARNING"}, f"Job '{record.name}' is still {record.state}: "
                                                 "cancel it first")
                        return {"CANCELLED"}
                    jobs.remove(index)
                    settings = scene.oneshot_avatar
                    settings.active_job_index = min(settings.active_job_index,
                                                    max(len(jobs) - 1, 0))
                    return {"FINISHED"}
        self.report({"ERROR"}, f"No job {self.job_id!r} in this file")
        return {"CANCELLED"}


class ONESHOT_AVATAR_OT_retry_job_result(bpy.types.Operator):
    """Fetch this job's result again (after a failed download or import)"""

    bl_idname = "oneshot_avatar.retry_job_result"
    bl_label = "Fetch Result Again"

    job_id: StringProperty(name="Job ID", options={"SKIP_SAVE"})

    def execute(self, context):
        record = find_job_record(self.job_id)
        if record is None or record.state != "succeeded":
            self.report({"ERROR"}, f"No finished job {self.job_id!r} in this file")
            return {"CANCELLED"}
        record.message = ""
        record.delivered = False
        job_monitor.ensure_running()
        return {"FINISHED"}


CLASSES = (
    ONESHOT_AVATAR_OT_show_report,
    ONESHOT_AVATAR_OT_test_connection,
    ONESHOT_AVATAR_OT_start_local_backend,
    ONESHOT_AVATAR_OT_stop_local_backend,
    ONESHOT_AVATAR_OT_reconstruct,
    ONESHOT_AVATAR_OT_cancel_job,
    ONESHOT_AVATAR_OT_remove_job,
    ONESHOT_AVATAR_OT_retry_job_result,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_post.append(_resume_jobs_after_load)
    # bpy.data may not be readable while add-ons register at start-up: look a moment later.
    bpy.app.timers.register(_resume_jobs_after_load, first_interval=1.0)


def unregister() -> None:
    if _resume_jobs_after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_resume_jobs_after_load)
    job_monitor.stop()
    for timer in (_watch_local_backend, _resume_jobs_after_load):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    Workers.shutdown()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
