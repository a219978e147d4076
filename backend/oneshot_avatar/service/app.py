"""The HTTP API (FastAPI): versioned routes under ``/v1``, JSON errors that name the field,
bearer-token auth, request size limits, no CORS, Host checks on loopback.

Every error answer is ``{"error": {"status": N, "field": "photo" | null, "message": "..."}}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from oneshot_avatar import __version__
from oneshot_avatar.errors import UserError
from oneshot_avatar.reconstruct.inputs import PHOTO_FOV_DEGREES, PHOTO_FOV_RANGE
from oneshot_avatar.service import schemas
from oneshot_avatar.service.core import ARTIFACTS, TRACK_ARTIFACTS, Service
from oneshot_avatar.service.openapi import finish_schema
from oneshot_avatar.service.schemas import AVATAR_ID_PATTERN, JOB_ID_PATTERN
from oneshot_avatar.service.store import JOB_KINDS, JOB_STATES, new_avatar_id
from oneshot_avatar.service.uploads import check_image, check_json, check_zip_members, init_suffix
from oneshot_avatar.service.worker import Stopping

logger = logging.getLogger(__name__)
API_VERSION = 1
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# A request refused for its size is read and discarded up to this much beyond the limit, so that
# simple clients (which send the whole body before reading) get the 413 instead of a broken pipe.
DRAIN_BYTES = 64 * 1024 * 1024
MAX_SPEECH_UPLOAD = 256 * 1024 * 1024  # 10 minutes of 16-bit stereo at 96 kHz is ~220 MiB
ERRORS = {status: {"model": schemas.ErrorBody} for status in (401, 404, 409, 413, 422)}
JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="a job id, j_ + 16 hex digits")]
AvatarId = Annotated[str, PathParam(pattern=AVATAR_ID_PATTERN,
                                    description="an avatar id, a_ + 16 hex digits")]

# The artifact names a job can have (reconstruction and tracking), for the route's path check.
ARTIFACT_NAME_PATTERN = "^(" + "|".join(re.escape(n) for n in {**ARTIFACTS, **TRACK_ARTIFACTS}) + ")$"


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "field": field, "message": message}},
                        status_code=status, headers=headers)


class FieldError(HTTPException):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(status_code=status, detail=message)
        self.field = field


class Guard:
    """Outermost ASGI layer: Host check (loopback binds), no cross-origin browser requests, the
    bearer token (constant-time compare), and the request-size limit while the body streams."""

    def __init__(self, app, *, token: str | None, loopback: bool, max_body: int):
        self.app = app
        self.token = token.encode() if token else None
        self.loopback = loopback
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(headers)
        if refusal is not None:
            length = headers.get("content-length", "")
            if refusal.status_code == 413 and int(length) <= self.max_body + DRAIN_BYTES:
                await _drain(receive)  # so the client reads the 413 instead of a broken pipe
            return await refusal(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise FieldError(413, f"the request is larger than {self.max_body} bytes")
            return message

        await self.app(scope, limited_receive, send)

    def _refusal(self, headers: dict[str, str]):
        if self.loopback:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in LOOPBACK_HOSTS:
                return error_response(421, f"this server answers on loopback only, not for host "
                                      f"{host!r}", "host")
        if "origin" in headers:
            return error_response(403, "cross-origin browser requests are not accepted", "origin")
        if self.token is not None:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token):
                return error_response(401, "missing or wrong token: send 'Authorization: Bearer "
                                      "<token>' with the server's --token", "authorization",
                                      headers={"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return error_response(400, "bad Content-Length header", "content-length")
            if int(length) > self.max_body:
                return error_response(413, f"the request is larger than {self.max_body} bytes",
                                      "content-length")
        return None


async def _drain(receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


# Union branches appear in error locations under their model's name; they are not request keys.
_BRANCHES = {name for name, value in vars(schemas).items()
             if isinstance(value, type) and issubclass(value, BaseModel)}


def _field_of(loc: tuple) -> str | None:
    """``("body", "cameras", 0, "K")`` -> ``"cameras[0].K"``."""
    field = ""
    for index, part in enumerate(loc):
        if index == 0 and part in ("body", "query", "path", "header"):
            continue
        if isinstance(part, int):
            field += f"[{part}]"
        elif part not in _BRANCHES and "[" not in str(part) and "function-" not in str(part):
            field += ("." if field else "") + str(part)
    return field or None


def create_app(service: Service, *, token: str | None = None, loopback: bool = True) -> FastAPI:
    app = FastAPI(
        title="One-Shot Avatar",
        version=__version__,
        description="Photo -> animatable Gaussian avatar, and renders of it. Jobs persist on "
        "disk and resume after a restart; interactive renders go before training.",
        docs_url=None, redoc_url=None,
    )

    def openapi() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = finish_schema(
                schema, pose_input_required=not (service.config.keypoint_model or service.detector))
        return app.openapi_schema

    app.openapi = openapi
    app.add_middleware(Guard, token=token, loopback=loopback,
                       max_body=service.config.max_upload_bytes)

    # ---- errors

    @app.exception_handler(UserError)
    async def _user_error(request: Request, error: UserError):
        return error_response(422, error.message, error.field)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError):
        problems = error.errors()
        first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            field = "body"
        return error_response(422, f"{field or 'request'}: {first.get('msg')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException):
        headers = dict(getattr(error, "headers", None) or {})
        field = getattr(error, "field", None)
        message = str(error.detail)
        if error.status_code == 405:  # every method the path has (RFC 9110), not one route's
            allowed = _allowed_methods(app, request.url.path)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        elif error.status_code == 400 and field is None:
            field, message = "body", f"the request body could not be parsed ({message.lower()})"
        return error_response(error.status_code, message, field, headers=headers or None)

    @app.exception_handler(Stopping)
    async def _stopping(request: Request, error: Stopping):
        return error_response(503, "the server is shutting down; retry once it has restarted",
                              headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(error).__name__}; see the server's log")

    # ---- helpers

    def job_or_404(job_id: str):
        job = service.store.get_job(job_id)
        if job is None:
            raise FieldError(404, f"no job {job_id}", "job_id")
        return job

    def avatar_or_404(avatar_id: str):
        record = service.store.get_avatar(avatar_id)
        if record is None:
            raise FieldError(404, f"no avatar {avatar_id}", "avatar_id")
        return record

    # ---- health

    @app.get("/v1/health", response_model=schemas.Health, responses=ERRORS, tags=["service"])
    def health():
        info = service.body.info
        from oneshot_avatar.motion import builtin_names

        return {
            "status": "ok", "service": "oneshot-avatar", "version": __version__,
            "api_version": API_VERSION, "device": service.device_text(),
            "rasterizer": service.rasterizer(),
            "body_model": {"id": info.model_id, "kind": info.kind, "sha256": info.sha256,
                           "expression_names": list(service.body.expression_names)},
            "detector": service.detector,
            "plugins": service.plugins(), "presets": ["fast", "quality"],
            "motions": builtin_names(),
            "limits": {"max_upload_bytes": service.config.max_upload_bytes,
                       "max_render_frames": service.config.max_render_frames,
                       "max_render_pixels": service.config.max_render_pixels},
        }

    # ---- reconstructions

    @app.post("/v1/reconstructions", status_code=202, response_model=schemas.Job,
              responses=ERRORS, tags=["jobs"])
    def create_reconstruction(
        photo: Annotated[UploadFile, File(description="PNG, JPEG or WebP of one person")],
        mask: Annotated[UploadFile | None, File(description="person mask image (white = person)")] = None,
        keypoints: Annotated[UploadFile | None, File(description="OpenPose or COCO-WholeBody JSON")] = None,
        init: Annotated[UploadFile | None, File(description="initial SMPL-X parameters (.json/.npz)")] = None,
        preset: Annotated[str, Form(pattern="^(fast|quality)$")] = "fast",
        steps: Annotated[int | None, Form(ge=1, le=100_000)] = None,
        resolution: Annotated[int | None, Form(ge=64, le=2048)] = None,
        seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
        fov: Annotated[float | None, Form(
            ge=PHOTO_FOV_RANGE[0], le=PHOTO_FOV_RANGE[1], description="the photo's field of view "
            f"across its long side, degrees (default: EXIF, else {PHOTO_FOV_DEGREES:g})")] = None,
        name: Annotated[str, Form(max_length=100)] = "",
    ):
        from oneshot_avatar.fit import load_init, load_keypoints
        from oneshot_avatar.reconstruct.inputs import no_way_to_find_the_body
        from oneshot_avatar.subject import load_mask, load_photo

        job = service.new_job("reconstruct", name or Path(photo.filename or "avatar").stem[:100], {})
        inputs = service.store.job_dir(job.id) / "inputs"
        inputs.mkdir(parents=True)
        files: dict[str, str] = {}
        try:
            data = photo.file.read()
            files["photo"] = "photo" + check_image(data, "photo")
            (inputs / files["photo"]).write_bytes(data)
            loaded = _as_field(lambda: load_photo(inputs / files["photo"]), "photo")
            size = loaded.rgb.shape[1], loaded.rgb.shape[0]
            if mask is not None:
                data = mask.file.read()
                files["mask"] = "mask" + check_image(data, "mask")
                (inputs / files["mask"]).write_bytes(data)
                _as_field(lambda: load_mask(inputs / files["mask"], size), "mask")
            if keypoints is not None:
                data = keypoints.file.read()
                check_json(data, "keypoints")
                files["keypoints"] = "keypoints.json"
                (inputs / files["keypoints"]).write_bytes(data)
                _as_field(lambda: load_keypoints(inputs / "keypoints.json", size), "keypoints")
            if init is not None:
                data = init.file.read()
                files["init"] = "init" + init_suffix(data)
                (inputs / files["init"]).write_bytes(data)
                _as_field(lambda: load_init(inputs / files["init"], service.body), "init")
            if ("keypoints" not in files and "init" not in files
                    and not service.config.keypoint_model and not service.detector):
                raise no_way_to_find_the_body(
                    f"this server has no landmark detector ({service.detector_problem})",
                    asked_by="service")
        except BaseException:
            shutil.rmtree(inputs.parent, ignore_errors=True)
            raise
        job.request = {"files": files, "settings": {"preset": preset, "steps": steps,
                                                    "resolution": resolution, "seed": seed,
                                                    "fov": fov}}
        return service.submit(job).to_api()

    # ---- tracking a video

    @app.post("/v1/tracking", status_code=202, response_model=schemas.Job, responses=ERRORS,
              tags=["jobs"])
    def create_tracking(
        video: Annotated[UploadFile, File(description="a video of one person (MP4, MOV, MKV, "
                                                      "WebM, ...; at most 10 minutes)")],
        fps: Annotated[float | None, Form(ge=1, le=60, description="motion frame rate "
                                          "(default: the video's)")] = None,
        size: Annotated[int | None, Form(ge=64, le=2160, description="short side of the "
                                         "frames tracked (default 720)")] = None,
        max_frames: Annotated[int | None, Form(ge=1, le=36_000)] = None,
        avatar: Annotated[str | None, Form(pattern=AVATAR_ID_PATTERN,
                                           description="take the body shape from this "
                                           "avatar")] = None,
        preview: Annotated[bool, Form(description="also make preview.mp4")] = True,
        name: Annotated[str, Form(max_length=100)] = "",
    ):
        """A driving video -> a tracking job (``oneshot-avatar track``): its ``result`` is our
        motion ``.npz``; artifacts ``track.json`` (report), ``camera.json`` (the tracked
        camera) and ``preview.mp4``."""
        from oneshot_avatar.track.video import (
            check_length,
            output_rate,
            probe_video,
            working_size,
        )

        if avatar is not None and service.store.get_avatar(avatar) is None:
            raise FieldError(404, f"no avatar {avatar}", "avatar")
        job = service.new_job("track", name or Path(video.filename or "video").stem[:100], {})
        inputs = service.store.job_dir(job.id) / "inputs"
        inputs.mkdir(parents=True)
        try:
            target = inputs / "video"
            with target.open("wb") as handle:
                shutil.copyfileobj(video.file, handle, 1 << 20)
            if target.stat().st_size == 0:
                raise UserError("the video file is empty", field="video")

            def check():
                info = probe_video(target)
                rate = output_rate(info, fps)
                working_size(info, size)
                check_length(info, rate, max_frames)

            _as_field(check, "video")
        except BaseException:
            shutil.rmtree(inputs.parent, ignore_errors=True)
            raise
        job.request = {"files": {"video": "video"},
                       "settings": {"fps": fps, "size": size, "max_frames": max_frames,
                                    "avatar": avatar, "preview": preview}}
        return service.submit(job).to_api()

    # ---- jobs

    @app.get("/v1/jobs", response_model=schemas.JobList, responses=ERRORS, tags=["jobs"])
    def list_jobs(state: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_STATES) + ")$")] = None,
                  kind: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_KINDS) + ")$")] = None):
        jobs = service.store.list_jobs(states=(state,) if state else None, kind=kind)
        return {"jobs": [job.to_api() for job in jobs]}

    @app.get("/v1/jobs/{job_id}", response_model=schemas.Job, responses=ERRORS, tags=["jobs"])
    def get_job(job_id: JobId):
        return job_or_404(job_id).to_api()

    @app.post("/v1/jobs/{job_id}/cancel", response_model=schemas.Job, responses=ERRORS, tags=["jobs"])
    def cancel_job(job_id: JobId):
        job = job_or_404(job_id)
        if job.finished:
            raise FieldError(409, f"job {job_id} already {job.state}", "job_id")
        return service.cancel(job_id).to_api()

    @app.get("/v1/jobs/{job_id}/artifacts/{name}", responses=ERRORS, tags=["jobs"],
             response_class=FileResponse)
    def get_artifact(job_id: JobId,
                     name: Annotated[str, PathParam(pattern=ARTIFACT_NAME_PATTERN)]):
        job = job_or_404(job_id)
        path = service.artifact_path(job, name)
        if path is None or not path.is_file():
            raise FieldError(404, f"job {job_id} has no {name} (yet)", "name")
        media = ("application/json" if name.endswith(".json") else "video/mp4"
                 if name.endswith(".mp4") else "image/png")
        return FileResponse(path, media_type=media)

    @app.get("/v1/jobs/{job_id}/result", responses=ERRORS, tags=["jobs"],
             response_class=FileResponse)
    def get_result(job_id: JobId):
        job = job_or_404(job_id)
        path = service.result_path(job)
        if path is None or not path.is_file():
            raise FieldError(409 if not job.finished else 404,
                             f"job {job_id} is {job.state}; no result", "job_id")
        if job.kind == "reconstruct":
            return FileResponse(path, media_type="application/octet-stream",
                                filename=f"{job.name or 'avatar'}.avatar")
        if job.kind == "track":
            return FileResponse(path, media_type="application/octet-stream", filename="motion.npz")
        return FileResponse(path, media_type="application/zip", filename="frames.zip")

    # ---- avatars

    @app.get("/v1/avatars", response_model=schemas.AvatarList, responses=ERRORS, tags=["avatars"])
    def list_avatars():
        return {"avatars": [a.to_api() for a in service.store.list_avatars()]}

    @app.post("/v1/avatars", status_code=201, response_model=schemas.Avatar, responses=ERRORS,
              tags=["avatars"])
    def upload_avatar(package: Annotated[UploadFile, File(description="a .avatar package")],
                      name: Annotated[str, Form(max_length=100)] = ""):
        with tempfile.NamedTemporaryFile(dir=service.tmp_dir, suffix=".avatar", delete=False) as tmp:
            shutil.copyfileobj(package.file, tmp, 1 << 20)
        path = Path(tmp.name)
        try:
            with path.open("rb") as handle:
                if handle.read(4) != b"PK\x03\x04":
                    raise UserError("'package' is not an .avatar package (not a zip archive)",
                                    field="package")
            check_zip_members(path, "package")
            stem = Path(package.filename or "avatar").name.removesuffix(".avatar")[:100]
            record = _as_field(lambda: service.register_avatar(
                path, name=name or stem or "avatar", job_id=None, avatar_id=new_avatar_id()),
                "package")
        finally:
            path.unlink(missing_ok=True)
        return record.to_api()

    @app.get("/v1/avatars/{avatar_id}", response_model=schemas.Avatar, responses=ERRORS,
             tags=["avatars"])
    def get_avatar(avatar_id: AvatarId):
        return avatar_or_404(avatar_id).to_api()

    @app.get("/v1/avatars/{avatar_id}/package", responses=ERRORS, tags=["avatars"],
             response_class=FileResponse)
    def download_avatar(avatar_id: AvatarId):
        record = avatar_or_404(avatar_id)
        return FileResponse(service.store.avatar_path(avatar_id), media_type="application/octet-stream",
                            filename=f"{record.name}.avatar")

    @app.delete("/v1/avatars/{avatar_id}", status_code=204, responses=ERRORS, tags=["avatars"])
    def delete_avatar(avatar_id: AvatarId):
        avatar_or_404(avatar_id)
        service.store.delete_avatar(avatar_id)
        service.forget_avatar(avatar_id)
        return Response(status_code=204)

    # ---- motions

    @app.get("/v1/motions", response_model=schemas.MotionList, responses=ERRORS, tags=["motions"])
    def list_motions():
        from oneshot_avatar.motion import builtin_clip, builtin_names
        from oneshot_avatar.motion.builtin import builtin_summary

        motions = []
        for motion_name in builtin_names():
            clip = builtin_clip(motion_name, fps=30.0)
            motions.append({"name": motion_name, "frames": clip.num_frames, "fps": clip.fps,
                            "summary": builtin_summary(motion_name)})
        return {"motions": motions}

    @app.get("/v1/motions/{name}", response_model=schemas.MotionAnswer, responses=ERRORS,
             tags=["motions"])
    def get_motion(name: Annotated[str, PathParam(max_length=64)],
                   fps: Annotated[float, Query(ge=schemas.FPS_MIN, le=schemas.FPS_MAX,
                                               description="frames per second")] = 30.0):
        from oneshot_avatar.motion import builtin_clip, builtin_names

        if name not in builtin_names():
            raise FieldError(404, f"no built-in clip {name!r}; choose one of {builtin_names()}", "name")
        from oneshot_avatar.motion.rows import clip_to_json

        return clip_to_json(builtin_clip(name, fps=fps))

    # ---- speech

    @app.post("/v1/speech", responses={**ERRORS, 200: {"content": {"application/json": {},
                                                                   "application/octet-stream": {}}}},
              tags=["motions"])
    def speech_motion(
        audio: Annotated[UploadFile, File(description="speech: WAV, MP3, FLAC, OGG, M4A, ... "
                                                      "(any rate/channels, at most 10 minutes)")],
        transcript: Annotated[str | None, Form(max_length=100_000,
                                               description="the words spoken, aligned when given")] = None,
        style: Annotated[str, Form(pattern="^(calm|lively)$")] = "calm",
        seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
        fps: Annotated[float, Form(ge=1, le=240)] = 30.0,
        recognizer: Annotated[str, Form(pattern="^(auto|transcript|phonemes|loudness)$")] = "auto",
        language: Annotated[str, Form(pattern="^[A-Za-z-]{2,16}$")] = "en",
        format: Annotated[str, Form(pattern="^(json|npz)$")] = "json",
    ):
        """Speech audio -> lip-sync, face, head and gesture motion (``oneshot-avatar speak``):
        JSON as ``GET /v1/motions/{name}`` plus ``expression_names`` and ``report`` (the
        recognizer that ran and why, words, beats, nods, blinks), or our motion ``.npz``."""
        from oneshot_avatar.motion.io import save_motion
        from oneshot_avatar.motion.rows import clip_to_json
        from oneshot_avatar.speech import SpeechSettings, load_audio, speech_to_motion

        data = audio.file.read(MAX_SPEECH_UPLOAD + 1)
        if len(data) > MAX_SPEECH_UPLOAD:
            raise FieldError(413, f"the audio is larger than {MAX_SPEECH_UPLOAD >> 20} MiB; send "
                                  "at most 10 minutes of compressed or 16 kHz audio", "audio")
        if not data:
            raise FieldError(422, "the audio file is empty", "audio")
        if transcript is not None and not any(ch.isalnum() for ch in transcript):
            transcript = None
        settings = SpeechSettings(fps=fps, style=style, seed=seed, transcript=transcript,
                                  recognizer=recognizer, language=language)
        with tempfile.TemporaryDirectory(prefix="oneshot-speech-") as folder:
            path = Path(folder) / "audio"
            path.write_bytes(data)
            loaded = dataclasses.replace(load_audio(path),
                                         source=Path(audio.filename or "speech").name[:100])
            result = speech_to_motion(loaded, settings)
            clip = result.clip
            if format == "npz":
                save_motion(clip, Path(folder) / "speech.npz")
                return Response((Path(folder) / "speech.npz").read_bytes(),
                                media_type="application/octet-stream",
                                headers={"Content-Disposition": 'attachment; filename="speech.npz"'})
        report = dict(result.report)
        names = report.pop("expression_names")
        return {**clip_to_json(clip), "name": clip.name[:64], "expression_names": names,
                "report": report}

    # ---- rendering

    @app.post("/v1/render", responses={**ERRORS, 200: {"content": {"image/png": {},
                                                                   "application/zip": {}}}},
              response_class=Response, tags=["render"])
    async def render(request: schemas.RenderRequest):
        plan = await run_in_threadpool(_plan, request)
        media, result = await asyncio.wrap_future(service.render_now(plan))
        headers = {"X-Frames": str(plan.num_frames)}
        if media == "image/png":
            return Response(result, media_type=media, headers=headers)
        return FileResponse(result, media_type=media, headers=headers, filename="frames.zip",
                            background=BackgroundTask(Path(result).unlink, missing_ok=True))

    @app.post("/v1/render-jobs", status_code=202, response_model=schemas.Job, responses=ERRORS,
              tags=["render"])
    def create_render_job(request: schemas.RenderRequest):
        plan = _plan(request)
        job = service.new_job("render", f"{plan.num_frames} frames", {"render": request.model_dump(mode="json")})
        return service.submit(job).to_api()

    @app.post("/v1/render-scene", responses={**ERRORS, 200: {"content": {"application/x-npz": {}}}},
              response_class=Response, tags=["render"])
    async def render_scene(request: schemas.SceneRenderRequest):
        """Several avatars in one render, occluding each other, with alpha and a depth pass
        (the Blender render engine's request; answer format in ``service/scene.py``)."""
        from oneshot_avatar.service.scene import UnknownAvatar, npz_bytes, plan_scene
        from oneshot_avatar.service.scene import render_scene as render_scene_arrays

        def plan():
            try:
                return plan_scene(request,
                                  known_avatar=lambda a: service.store.get_avatar(a) is not None,
                                  max_frames=service.config.max_render_frames,
                                  max_pixels=service.config.max_render_pixels,
                                  num_expressions=len(service.body.expression_names))
            except UnknownAvatar as error:
                raise FieldError(404, str(error), error.field) from None

        scene_plan = await run_in_threadpool(plan)

        def work():
            arrays = render_scene_arrays(scene_plan, service.loaded_avatar, service.body,
                                         backend=service.config.backend,
                                         batch_frames=service.config.render_batch)
            return npz_bytes(arrays)

        data = await asyncio.wrap_future(service.worker.submit_interactive(work))
        return Response(data, media_type="application/x-npz",
                        headers={"X-Frames": str(scene_plan.num_frames)})

    def _plan(request: schemas.RenderRequest):
        try:
            return service.plan(request)
        except KeyError:
            raise FieldError(404, f"no avatar {request.avatar}", "avatar") from None

    return app


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return sorted(methods)


def _as_field(action, field: str):
    """Run ``action``; a user error from it is reported against the request field ``field``."""
    try:
        return action()
    except UserError as error:
        inner = error.field if error.field and error.field != field else None
        raise UserError(error.message, field=f"{field}.{inner}" if inner else field) from None
