"""One worker thread owns the GPU (or the CPU's torch work): a queue with two priorities.

Interactive work (a render a user waits for) always goes first. Long jobs (reconstructions,
render jobs) call :meth:`GpuWorker.yield_point` between their steps; it runs any interactive
work that arrived meanwhile, so a render request waits at most one training step.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger(__name__)


class Stopping(Exception):
    """The server is shutting down: the running job stops at its next step and is resumed
    when the server starts again."""


class GpuWorker:
    def __init__(self) -> None:
        self._interactive: deque[tuple[Callable[[], Any], Future]] = deque()
        self._jobs: deque[tuple[Callable[[], Any], Future]] = deque()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="oneshot-gpu-worker", daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def submit_interactive(self, work: Callable[[], Any]) -> Future:
        return self._submit(self._interactive, work)

    def submit_job(self, work: Callable[[], Any]) -> Future:
        return self._submit(self._jobs, work)

    def _submit(self, queue: deque, work: Callable[[], Any]) -> Future:
        future: Future = Future()
        with self._wake:
            if self._stopping.is_set():
                future.set_exception(Stopping("the server is shutting down"))
                return future
            queue.append((work, future))
            self._wake.notify()
        return future

    def yield_point(self) -> None:
        """Called by long work on the worker thread between steps: run waiting interactive
        work now; raise :class:`Stopping` when the server is shutting down."""
        if threading.current_thread() is not self._thread:
            return
        while True:
            with self._wake:
                if not self._interactive:
                    break
                item = self._interactive.popleft()
            self._run(*item)
        if self._stopping.is_set():
            raise Stopping("the server is shutting down")

    def _run(self, work: Callable[[], Any], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as error:  # noqa: BLE001 -- handed to whoever waits on the future
            future.set_exception(error)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._interactive and not self._jobs and not self._stopping.is_set():
                    self._wake.wait()
                if self._interactive:
                    item = self._interactive.popleft()
                elif self._jobs and not self._stopping.is_set():
                    item = self._jobs.popleft()
                else:
                    break
            self._run(*item)
        # Whatever is still queued is answered, so no request waits forever.
        with self._wake:
            left = list(self._interactive) + list(self._jobs)
            self._interactive.clear()
            self._jobs.clear()
        for _, future in left:
            if future.set_running_or_notify_cancel():
                future.set_exception(Stopping("the server is shutting down"))

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop taking work; the running job stops at its next yield point."""
        with self._wake:
            self._stopping.set()
            self._wake.notify_all()
        self._thread.join(timeout)
