"""The service behind the HTTP routes: the store, the GPU worker, the body model, loaded
avatars, and the jobs (reconstructions and long renders) with progress, cancel and recovery."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from oneshot_avatar.atomic import commit, is_no_space, output_error
from oneshot_avatar.errors import UserError
from oneshot_avatar.service.store import AvatarRecord, DataDirLock, Job, Store, new_job_id, now
from oneshot_avatar.service.worker import GpuWorker, Stopping

logger = logging.getLogger(__name__)

# Share of the whole job per reconstruction stage (for one progress bar); training dominates.
STAGE_WEIGHTS = {"subject": 0.02, "fit": 0.18, "labels": 0.05, "train": 0.70, "package": 0.05}
# A job that was running when the server died this many times is failed instead of resumed
# (it may be what brings the server down, e.g. by running out of memory).
MAX_ATTEMPTS = 3
ARTIFACTS = {  # API name -> file name in the job's out/ folder
    "report.json": "avatar.report.json",
    "preview.png": "avatar.preview.png",
    "turnaround.png": "avatar.turnaround.png",
    "labels.png": "avatar.labels.png",
    "landmarks.png": "avatar.landmarks.png",
    "regions.png": "avatar.regions.png",
}
TRACK_ARTIFACTS = {  # a tracking job's: API name -> file name in its out/ folder
    "track.json": "motion.track.json",
    "camera.json": "motion.camera.json",
    "preview.mp4": "motion.preview.mp4",
}


class Cancelled(Exception):
    pass


@dataclass
class ServiceConfig:
    data_dir: Path
    device: str = "auto"
    body_model: str | None = None
    keypoint_model: Path | None = None
    matting_model: Path | None = None
    vgg_weights: Path | None = None
    backend: str = "auto"  # rasterizer
    max_upload_bytes: int = 512 * 1024 * 1024
    max_render_frames: int = 2000
    max_render_pixels: int = 4096 * 4096
    render_batch: int = 8
    avatar_cache: int = 4
    encode_threads: int = min(16, os.cpu_count() or 1)


class Service:
    def __init__(self, config: ServiceConfig, *, log=print, data_lock: DataDirLock | None = None):
        """``data_lock``: the data folder's lock when the caller took it already (the command
        line does, before the slow imports)."""
        from oneshot_avatar.body import load_body_model
        from oneshot_avatar.devices import resolve_device

        self.config = config
        # before anything touches the folder
        self.data_lock = data_lock or DataDirLock(config.data_dir)
        self.store = Store(config.data_dir)
        self.tmp_dir = Path(config.data_dir) / "tmp"
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config.device)
        self.body = load_body_model(config.body_model, device=self.device,
                                    progress=lambda m: log(f"body model: {m}"))
        with torch.no_grad():
            self.rest_vertices = self.body().vertices[0].detach().cpu()
        self.encode_pool = ThreadPoolExecutor(max_workers=config.encode_threads,
                                              thread_name_prefix="oneshot-png")
        self._avatars: OrderedDict[str, object] = OrderedDict()  # touched on the worker only
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.worker = GpuWorker()
        from oneshot_avatar.detect import DETECTOR_NAME, mediapipe_problem

        # The embedded landmark detector: its name, or why it cannot run. Only the installed
        # version is checked here (importing mediapipe would add ~2.5 s to every start); a
        # mediapipe that is installed but cannot be imported fails the first job that needs
        # it, with the same message (HolisticDetector checks the import when it first runs).
        self.detector_problem = mediapipe_problem(import_check=False)
        self.detector = DETECTOR_NAME if self.detector_problem is None else None
        if self.detector_problem is not None:
            log(f"landmark detector: none ({self.detector_problem})")
        self._recover()

    # ---- description

    def rasterizer(self) -> str:
        from oneshot_avatar.render.rasterize import choose_backend

        return choose_backend(self.config.backend, self.rest_vertices.to(self.device))

    def device_text(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def plugins(self) -> dict[str, str | None]:
        from oneshot_avatar.train.perceptual import default_vgg16_weights, lpips_package_weights

        vgg = self.config.vgg_weights or default_vgg16_weights()
        return {
            "keypoint_model": str(self.config.keypoint_model) if self.config.keypoint_model else None,
            "matting_model": str(self.config.matting_model) if self.config.matting_model else None,
            "detector": self.detector,
            "keypoints_default": (self.detector if self.detector else
                                  "keypoints file or initial pose from the request"),
            "mask_default": ("photo alpha, else the detector's segmentation refined by GrabCut"
                             if self.detector else
                             "photo alpha, else GrabCut seeded by the body fit"),
            "labels": "mesh-reprojection",
            "perceptual": "lpips-vgg" if vgg and lpips_package_weights() else "ssim",
        }

    # ---- avatars

    def register_avatar(self, path: Path, *, name: str, job_id: str | None,
                        avatar_id: str) -> AvatarRecord:
        """Check a package at ``path`` (anywhere) and move it into the store under ``avatar_id``."""
        from oneshot_avatar.avatar import check_body_matches
        from oneshot_avatar.package.avatar_file import read_avatar_members

        meta, _, _ = read_avatar_members(path)
        check_body_matches(meta, self.body, what="avatar package")
        target = self.store.avatar_path(avatar_id)
        if path.parent == target.parent:
            os.replace(path, target)
        else:  # an upload (a private temporary file): the package gets the usual permissions
            commit(path, target)
        record = AvatarRecord(
            id=avatar_id, name=name, created=now(), gaussians=int(meta["gaussians"]["count"]),
            sh_degree=int(meta["gaussians"]["sh_degree"]), body_id=meta["body_model"]["id"],
            body_sha256=meta["body_model"]["sha256"], size_bytes=target.stat().st_size,
            job_id=job_id)
        return self.store.add_avatar(record)

    def loaded_avatar(self, avatar_id: str):
        """The avatar on the device (worker thread only; a small LRU cache)."""
        from oneshot_avatar.package import load_avatar

        if avatar_id in self._avatars:
            self._avatars.move_to_end(avatar_id)
            return self._avatars[avatar_id]
        avatar = load_avatar(self.store.avatar_path(avatar_id)).to(self.device)
        self._avatars[avatar_id] = avatar
        while len(self._avatars) > self.config.avatar_cache:
            self._avatars.popitem(last=False)
        return avatar

    def forget_avatar(self, avatar_id: str) -> None:
        self.worker.submit_interactive(lambda: self._avatars.pop(avatar_id, None))

    # ---- jobs

    def submit(self, job: Job) -> Job:
        self.store.add_job(job)
        self._enqueue(job.id)
        return job

    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            self._cancel[job_id] = threading.Event()
        self.worker.submit_job(lambda: self._run_job(job_id))

    def cancel(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise KeyError(job_id)
        if job.finished:
            return job
        with self._lock:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()
        if job.state == "queued":  # never started: cancelled at once (the queued run skips it)
            job = self.store.update_job(job_id, state="cancelled", log_line="cancelled before it started")
            self._remove_work(job)
        return job

    def new_job(self, kind: str, name: str, request: dict) -> Job:
        return Job(id=new_job_id(), kind=kind, state="queued", name=name, request=request)

    def _recover(self) -> None:
        """After a restart: jobs that were queued or running are resumed (reconstructions from
        their last checkpoint), unless they already brought the server down too often."""
        for job in reversed(self.store.list_jobs(states=("queued", "running"), limit=10_000)):
            if job.state == "running":
                attempts = job.attempts + 1
                if attempts >= MAX_ATTEMPTS:
                    self.store.update_job(
                        job.id, state="failed", attempts=attempts,
                        error={"message": f"the server stopped {attempts} times while running this "
                               "job; not resuming it again (see the server's log)", "field": None},
                        log_line="failed: too many interrupted attempts")
                    continue
                self.store.update_job(job.id, state="queued", attempts=attempts,
                                      log_line="server restarted; resuming")
            self._enqueue(job.id)

    def _run_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.state != "queued":
            return
        with self._lock:
            cancel = self._cancel.setdefault(job_id, threading.Event())
        job = self.store.update_job(job_id, state="running", log_line="started")
        try:
            if job.kind == "reconstruct":
                self._run_reconstruction(job, cancel)
            elif job.kind == "track":
                self._run_track_job(job, cancel)
            else:
                self._run_render_job(job, cancel)
        except Cancelled:  # the work is gone before anyone can see the job cancelled
            self._remove_work(job)
            self.store.update_job(job_id, state="cancelled", log_line="cancelled")
        except Stopping:
            self.store.update_job(job_id, state="queued",
                                  log_line="server stopping; the job resumes when it starts again")
        except UserError as error:
            self.store.update_job(job_id, state="failed",
                                  error={"message": error.message, "field": error.field},
                                  log_line=f"failed: {error}")
        except Exception as error:  # noqa: BLE001 -- a bug or a resource problem: keep serving, report it
            logger.error("job %s failed:\n%s", job_id, traceback.format_exc())
            message = f"internal error: {type(error).__name__}: {error}"
            if is_no_space(error):  # the disk is full: say so (what was there before is kept)
                full = output_error(error, self.store.job_dir(job_id) / "out")
                message = f"the server's disk is full: {full.message}"
            elif isinstance(error, torch.OutOfMemoryError):
                message = "out of GPU memory; try the fast preset or fewer Gaussians"
            self.store.update_job(job_id, state="failed", error={"message": message, "field": None},
                                  log_line=f"failed: {message}")
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)

    def _remove_work(self, job: Job) -> None:
        shutil.rmtree(self.store.job_dir(job.id) / "out", ignore_errors=True)
        shutil.rmtree(self.store.job_dir(job.id) / "render", ignore_errors=True)

    def _checkpoint(self, job_id: str, cancel: threading.Event) -> None:
        if cancel.is_set():
            raise Cancelled()
        self.worker.yield_point()  # interactive renders first; raises Stopping on shutdown
        if cancel.is_set():
            raise Cancelled()

    # ---- reconstruction

    def _run_reconstruction(self, job: Job, cancel: threading.Event) -> None:
        from oneshot_avatar.reconstruct.pipeline import ReconstructOptions, reconstruct

        folder = self.store.job_dir(job.id)
        inputs = {k: (folder / "inputs" / v if v else None)
                  for k, v in job.request.get("files", {}).items()}
        out = folder / "out" / "avatar.avatar"
        out.parent.mkdir(parents=True, exist_ok=True)
        avatar_id = "a_" + job.id[2:]
        if self.store.get_avatar(avatar_id) is None and not out.exists():
            settings = job.request.get("settings", {})
            last = {"stage": None, "time": 0.0}

            def progress(stage: str, fraction: float | None) -> None:
                self._checkpoint(job.id, cancel)
                moment = time.monotonic()
                if stage == last["stage"] and moment - last["time"] < 0.5 and fraction != 1.0:
                    return
                done = sum(w for s, w in STAGE_WEIGHTS.items()
                           if list(STAGE_WEIGHTS).index(s) < list(STAGE_WEIGHTS).index(stage))
                stage_fraction = 0.0 if fraction is None else float(fraction)
                line = f"stage {stage}" if stage != last["stage"] else None
                last.update(stage=stage, time=moment)
                self.store.update_job(job.id, stage=stage, stage_progress=stage_fraction,
                                      progress=min(done + STAGE_WEIGHTS[stage] * stage_fraction, 1.0),
                                      log_line=line)

            def log(message: str) -> None:
                self.store.update_job(job.id, log_line=message)

            options = ReconstructOptions(
                photo=inputs["photo"], out=out, mask=inputs.get("mask"),
                keypoints=inputs.get("keypoints"), init=inputs.get("init"),
                keypoint_model=self.config.keypoint_model, matting_model=self.config.matting_model,
                preset=settings.get("preset", "fast"), steps=settings.get("steps"),
                resolution=settings.get("resolution"), seed=int(settings.get("seed", 0)),
                fov_degrees=settings.get("fov"), body_model=self.config.body_model, device=str(self.device), body=self.body,
                resume=True, quiet=True, vgg_weights=self.config.vgg_weights, progress=progress,
            )
            reconstruct(options, log=log)
        # The package is complete (written atomically); move it into the store exactly once.
        if self.store.get_avatar(avatar_id) is None:
            self.register_avatar(out, name=job.name or "avatar", job_id=job.id, avatar_id=avatar_id)
        artifacts = [name for name, file in ARTIFACTS.items() if (folder / "out" / file).exists()]
        self.store.update_job(job.id, state="succeeded", stage="package", progress=1.0,
                              stage_progress=1.0, avatar_id=avatar_id, result="avatar",
                              artifacts=artifacts, log_line=f"avatar {avatar_id} ready")

    def artifact_path(self, job: Job, name: str) -> Path | None:
        file = (TRACK_ARTIFACTS if job.kind == "track" else ARTIFACTS).get(name)
        if file is None or name not in job.artifacts:
            return None
        return self.store.job_dir(job.id) / "out" / file

    def result_path(self, job: Job) -> Path | None:
        if job.state != "succeeded" or not job.result:
            return None
        if job.kind == "reconstruct":
            return self.store.avatar_path(job.avatar_id) if job.avatar_id else None
        return self.store.job_dir(job.id) / job.result

    # ---- rendering

    def plan(self, request):
        from oneshot_avatar.service.rendering import plan_render

        if self.store.get_avatar(request.avatar) is None:
            raise KeyError(request.avatar)
        return plan_render(request, max_frames=self.config.max_render_frames,
                           max_pixels=self.config.max_render_pixels,
                           num_expressions=len(self.body.expression_names))

    def render_now(self, plan):
        """Interactive: render on the worker (ahead of jobs); returns (media type, path or bytes)."""
        from oneshot_avatar.render.output import PngBytesSink, ZipSink
        from oneshot_avatar.service.rendering import render_plan

        def work():
            avatar = self.loaded_avatar(plan.avatar_id)
            if plan.format == "png":
                encoded = render_plan(plan, avatar, self.body, PngBytesSink(), batch_frames=1,
                                      backend=self.config.backend)
                return "image/png", encoded[0]
            path = self.tmp_dir / f"render-{new_job_id()}.zip"
            render_plan(plan, avatar, self.body, ZipSink(path, self.encode_pool),
                        batch_frames=self.config.render_batch, backend=self.config.backend)
            return "application/zip", path

        return self.worker.submit_interactive(work)

    def _run_render_job(self, job: Job, cancel: threading.Event) -> None:
        from oneshot_avatar.render.output import ZipSink
        from oneshot_avatar.service.rendering import render_plan
        from oneshot_avatar.service.schemas import RenderRequest

        request = RenderRequest.model_validate(job.request["render"])
        plan = self.plan(request)
        folder = self.store.job_dir(job.id) / "render"
        folder.mkdir(parents=True, exist_ok=True)
        avatar = self.loaded_avatar(plan.avatar_id)
        self.store.update_job(job.id, stage="render", log_line=f"rendering {plan.num_frames} frames "
                              f"at {plan.width}x{plan.height}")
        last = [0.0]

        def between(done: int) -> None:
            self._checkpoint(job.id, cancel)
            if time.monotonic() - last[0] > 0.5 or done == plan.num_frames:
                last[0] = time.monotonic()
                self.store.update_job(job.id, progress=done / plan.num_frames,
                                      stage_progress=done / plan.num_frames)

        # the zip appears under its name only once complete (a failure leaves nothing)
        render_plan(plan, avatar, self.body, ZipSink(folder / "frames.zip", self.encode_pool),
                    batch_frames=self.config.render_batch, backend=self.config.backend,
                    after_batch=between)
        self.store.update_job(job.id, state="succeeded", progress=1.0, stage_progress=1.0,
                              result="render/frames.zip", log_line=f"{plan.num_frames} frames ready")

    # ---- tracking a video

    def _run_track_job(self, job: Job, cancel: threading.Event) -> None:
        """``oneshot-avatar track`` on the uploaded video: progress per stage, cancellable
        between frames; outputs land in the job's out/ folder all at once (or not at all)."""
        import numpy as np

        from oneshot_avatar.track.pipeline import track_video

        folder = self.store.job_dir(job.id)
        settings = job.request.get("settings", {})
        video = folder / "inputs" / job.request["files"]["video"]
        out = folder / "out" / "motion.npz"
        betas = None
        if settings.get("avatar"):
            path = self.store.avatar_path(settings["avatar"])
            if path is None or not path.is_file():
                raise UserError(f"no avatar {settings['avatar']}", field="avatar")
            betas = np.asarray(self.loaded_avatar(settings["avatar"]).betas.cpu(), np.float32)
        last = {"stage": None, "time": 0.0}

        def progress(stage: str, fraction: float) -> None:
            self._checkpoint(job.id, cancel)
            moment = time.monotonic()
            if stage == last["stage"] and moment - last["time"] < 0.5:
                return
            line = f"stage {stage}" if stage != last["stage"] else None
            last.update(stage=stage, time=moment)
            self.store.update_job(job.id, stage=stage, progress=min(float(fraction), 1.0),
                                  stage_progress=min(float(fraction), 1.0), log_line=line)

        body = self.body if self.body.device.type == "cpu" else None
        if body is None:
            from oneshot_avatar.body import load_body_model

            body = load_body_model(self.config.body_model, device="cpu")
        result = track_video(video, out, body=body, avatar_betas=betas,
                             fps=settings.get("fps"), size=settings.get("size"),
                             max_frames=settings.get("max_frames"),
                             preview=bool(settings.get("preview", True)), quiet=True,
                             say=lambda message: self.store.update_job(job.id, log_line=message),
                             progress=progress)
        artifacts = [name for name, file in TRACK_ARTIFACTS.items()
                     if (folder / "out" / file).exists()]
        self.store.update_job(job.id, state="succeeded", stage="done", progress=1.0,
                              stage_progress=1.0, result="out/motion.npz", artifacts=artifacts,
                              log_line=f"motion ready: {result.clip.num_frames} frames at "
                                       f"{result.fps:g} fps")

    # ---- shutdown

    def close(self) -> None:
        self.worker.stop()
        self.encode_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        self.data_lock.release()
