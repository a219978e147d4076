"""The API's request and response bodies (pydantic models: they validate requests and make the
OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AVATAR_ID_PATTERN = r"^a_[0-9a-f]{16}$"
JOB_ID_PATTERN = r"^j_[0-9a-f]{16}$"


class ErrorDetail(BaseModel):
    status: int
    field: str | None = Field(None, description="the request field that was wrong, when one was")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class BodyModelInfo(BaseModel):
    id: str
    kind: str
    sha256: str
    expression_names: list[str]


class Limits(BaseModel):
    max_upload_bytes: int
    max_render_frames: int
    max_render_pixels: int


class Health(BaseModel):
    status: Literal["ok"]
    service: Literal["oneshot-avatar"]
    version: str
    api_version: int
    device: str
    rasterizer: str
    detector: str | None = Field(None, description="the embedded landmark detector that finds "
                                 "the body in photos sent with no keypoints or init (null: none)")
    body_model: BodyModelInfo
    plugins: dict[str, str | None]
    presets: list[str]
    motions: list[str]
    limits: Limits


class JobError(BaseModel):
    message: str
    field: str | None = None


class Job(BaseModel):
    id: str
    kind: Literal["reconstruct", "render"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None
    progress: float = Field(description="the whole job, 0..1")
    stage_progress: float = Field(description="the current stage, 0..1")
    created: str
    updated: str
    name: str
    log: list[str]
    error: JobError | None
    avatar_id: str | None
    result_url: str | None
    artifacts: list[str]


class JobList(BaseModel):
    jobs: list[Job]


class AvatarBodyModel(BaseModel):
    id: str
    sha256: str


class Avatar(BaseModel):
    id: str
    name: str
    created: str
    gaussians: int
    sh_degree: int
    body_model: AvatarBodyModel
    size_bytes: int
    job_id: str | None


class AvatarList(BaseModel):
    avatars: list[Avatar]


class MotionSummary(BaseModel):
    name: str
    frames: int
    fps: float
    summary: str


class MotionList(BaseModel):
    motions: list[MotionSummary]


# ---- render requests

_FPS = Field(30.0, gt=0, le=1000, description="frames per second")


class BuiltinMotion(BaseModel):
    """A built-in clip (``GET /v1/motions``), optionally a part of it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    fps: float = _FPS
    frames: tuple[int, int] | None = Field(None, description="[start, stop): frames to render")


class MotionParams(BaseModel):
    """SMPL-X parameters for exactly the frames to render, one row per frame: ``global_orient``,
    ``jaw_pose``, ``leye_pose``, ``reye_pose``, ``transl`` 3 numbers; ``body_pose`` 63;
    ``left_hand_pose``, ``right_hand_pose`` 45 (axis-angle, flat hand); ``expression`` E (the
    body model's expression space). Missing keys are zeros; all keys have the same row count."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, list[list[float]]]
    fps: float = _FPS
    expression_space: Literal["arkit52", "smplx-pca"] | None = None
    name: str = Field("request", max_length=64)


class OpenCVCamera(BaseModel):
    """OpenCV convention in the SMPL-X world (Y up, metres): pixels ``K``, ``world_to_cam``."""

    model_config = ConfigDict(extra="ignore")
    K: list[list[float]]
    world_to_cam: list[list[float]]
    width: int
    height: int
    near: float | None = None
    far: float | None = None


class BlenderCameraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lens_mm: float
    sensor_width_mm: float = 36.0
    sensor_height_mm: float = 24.0
    sensor_fit: Literal["AUTO", "HORIZONTAL", "VERTICAL"] = "AUTO"
    shift_x: float = 0.0
    shift_y: float = 0.0
    clip_start: float = 0.1
    clip_end: float = 100.0
    resolution_x: int
    resolution_y: int
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    matrix_world: list[list[float]] = Field(
        description="4x4 camera object matrix in the Blender world where the rig's armature sits "
        "at the identity apart from +90° about X (Blender (x, y, z) = SMPL-X (x, -z, y))")


class BlenderCamera(BaseModel):
    model_config = ConfigDict(extra="forbid")
    blender: BlenderCameraSettings


class PresetCamera(BaseModel):
    """``front`` frames the whole body; ``orbit`` turns once around it over the frames."""

    model_config = ConfigDict(extra="forbid")
    preset: Literal["front", "orbit"]
    width: int = Field(512, ge=8, le=8192)
    height: int = Field(512, ge=8, le=8192)


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    avatar: str = Field(pattern=AVATAR_ID_PATTERN)
    motion: BuiltinMotion | MotionParams
    cameras: list[OpenCVCamera | BlenderCamera | PresetCamera] = Field(
        min_length=1, description="one camera for all frames, or one per rendered frame")
    size: tuple[int, int] | None = Field(None, description="[width, height]: resize the cameras")
    format: Literal["png", "zip"] = Field(
        "png", description="png: one frame, RGBA; zip: frame_00000.png, ... (0-based, in order)")
    background: tuple[float, float, float] | None = Field(
        None, description="RGB 0..1 behind the avatar; null keeps alpha (transparent)")
