"""Background work shared by the operators that talk to the backend: worker threads, the
modal :class:`BackgroundRequest` mixin, the job records saved in the .blend, and the job
monitor that polls unfinished jobs and brings their results into Blender.

Nothing here blocks the UI for long: HTTP runs in worker threads (``concurrent.futures``),
whose results are picked up on Blender's main thread by a modal operator's event timer
(while a request is being sent) or by the job monitor's ``bpy.app.timers`` timer (while the
backend works on a job). Worker threads never touch ``bpy``: they get plain values and return
plain values. Each job kind registers how its result is fetched and delivered
(``job_monitor.fetchers`` / ``deliverers``): reconstructions in ``service_ops``, renders in
``render_ops``. The job list's operators (cancel, remove, fetch the result again) work on any
kind of job and live here too.
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

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


# --------------------------------------------------------------------------------------------
# The monitor: polls unfinished jobs and delivers results, from a bpy.app.timers timer


class JobMonitor:
    """Runs :meth:`step` every :data:`MONITOR_TICK_S` seconds while any job needs it."""

    def __init__(self) -> None:
        self.futures: dict[tuple[str, str], Future] = {}
        self.next_poll: dict[str, float] = {}
        self.connection_problem = ""
        # Per job kind (registered by the operators' modules): ``fetchers[kind](config,
        # record)`` -> ``(fn, *args)`` run in a worker to fetch the result, then
        # ``deliverers[kind](record, result)`` on the main thread brings it into Blender.
        self.fetchers: dict[str, Callable[..., tuple]] = {}
        self.deliverers: dict[str, Callable[[Any, Any], None]] = {}
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


class _JobOperator:
    """An operator on one job of the list, named by ``job_id``."""

    job_id: StringProperty(name="Job ID", options={"SKIP_SAVE"})

    def record_or_report(self, *, finished: bool = False):
        """The job's record (only a succeeded one when ``finished``), or None after an error
        report."""
        record = find_job_record(self.job_id)
        if record is None or (finished and record.state != "succeeded"):
            self.report({"ERROR"}, f"No {'finished ' if finished else ''}job {self.job_id!r} in "
                                   "this file")
            return None
        return record


class ONESHOT_AVATAR_OT_cancel_job(_JobOperator, bpy.types.Operator):
    """Ask the backend to cancel this job"""

    bl_idname = "oneshot_avatar.cancel_job"
    bl_label = "Cancel Job"

    def execute(self, context):
        record = self.record_or_report()
        if record is None:
            return {"CANCELLED"}
        if not needs_polling(record.state):
            self.report({"WARNING"}, f"Job '{record.name}' is already {record.state}")
            return {"CANCELLED"}
        record.cancel_requested = True
        job_monitor.ensure_running()
        self.report({"INFO"}, f"Cancelling '{record.name}'")
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_remove_job(_JobOperator, bpy.types.Operator):
    """Remove this job from the list (the backend keeps its files)"""

    bl_idname = "oneshot_avatar.remove_job"
    bl_label = "Remove Job from List"

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


class ONESHOT_AVATAR_OT_retry_job_result(_JobOperator, bpy.types.Operator):
    """Fetch this job's result again (after a failed download or import)"""

    bl_idname = "oneshot_avatar.retry_job_result"
    bl_label = "Fetch Result Again"

    def execute(self, context):
        record = self.record_or_report(finished=True)
        if record is None:
            return {"CANCELLED"}
        record.message = ""
        record.delivered = False
        job_monitor.ensure_running()
        return {"FINISHED"}


CLASSES = (ONESHOT_AVATAR_OT_show_report, ONESHOT_AVATAR_OT_cancel_job,
           ONESHOT_AVATAR_OT_remove_job, ONESHOT_AVATAR_OT_retry_job_result)


def register() -> None:
    bpy.app.handlers.load_post.append(_resume_jobs_after_load)
    # bpy.data may not be readable while add-ons register at start-up: look a moment later.
    bpy.app.timers.register(_resume_jobs_after_load, first_interval=1.0)


def unregister() -> None:
    if _resume_jobs_after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_resume_jobs_after_load)
    job_monitor.stop()
    if bpy.app.timers.is_registered(_resume_jobs_after_load):
        bpy.app.timers.unregister(_resume_jobs_after_load)
    Workers.shutdown()
