"""The API's request and response bodies (pydantic models: they validate requests and make the
OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

AVATAR_ID_PATTERN = r"^a_[0-9a-f]{16}$"
JOB_ID_PATTERN = r"^j_[0-9a-f]{16}$"

# Bounds the server accepts, stated once: the schema shows them, and pydantic refuses values
# outside them with a 422 naming the field (before any work is done).
FPS_MIN, FPS_MAX = 1.0, 240.0  # built-in clips are resampled: below 1 fps a clip has 2 frames
SIDE_MIN, SIDE_MAX = 8, 8192  # pixels per image side
MAX_ROWS = 100_000  # frames one request may describe (the server's --max-render-frames also applies)
MAX_CAMERAS = 100_000
MAX_EXPRESSIONS = 400  # columns of an expression row (the body model decides the exact count)
Finite = Annotated[float, Field(allow_inf_nan=False)]
Side = Annotated[int, Field(ge=SIDE_MIN, le=SIDE_MAX)]


def _vector(n: int):
    return Annotated[list[Finite], Field(min_length=n, max_length=n)]


def _rows(width: int, description: str):
    return Field(None, min_length=1, max_length=MAX_ROWS,
                 description=f"{description}: one row of {width} numbers per frame")


class RequestModel(BaseModel):
    """Request bodies: unknown keys and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    kind: Literal["reconstruct", "render", "track"]
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

_FPS = Field(30.0, ge=FPS_MIN, le=FPS_MAX, description="frames per second")
FrameIndex = Annotated[int, Field(ge=0, le=FPS_MAX * 3600)]


class BuiltinMotion(RequestModel):
    """A built-in clip (``GET /v1/motions``), optionally a part of it."""

    name: str = Field(min_length=1, max_length=64)
    fps: float = _FPS
    frames: tuple[FrameIndex, FrameIndex] | None = Field(
        None, description="[start, stop): frames to render, start < stop <= the clip's frames at fps")


class PoseParams(RequestModel):
    """Axis-angle SMPL-X parameters, one row per frame (flat hands, not PCA). Missing keys are
    zeros; every key given has the same row count."""

    global_orient: list[_vector(3)] | None = _rows(3, "pelvis rotation")
    body_pose: list[_vector(63)] | None = _rows(63, "21 body joints x 3")
    jaw_pose: list[_vector(3)] | None = _rows(3, "jaw")
    leye_pose: list[_vector(3)] | None = _rows(3, "left eye")
    reye_pose: list[_vector(3)] | None = _rows(3, "right eye")
    left_hand_pose: list[_vector(45)] | None = _rows(45, "15 left-hand joints x 3")
    right_hand_pose: list[_vector(45)] | None = _rows(45, "15 right-hand joints x 3")
    transl: list[_vector(3)] | None = _rows(3, "translation, metres")
    expression: list[Annotated[list[Finite], Field(max_length=MAX_EXPRESSIONS)]] | None = Field(
        None, min_length=1, max_length=MAX_ROWS,
        description="one row per frame in the body model's expression space (its length: "
        "`GET /v1/health` body_model.expression_names)")


class MotionParams(RequestModel):
    """SMPL-X parameters for exactly the frames to render (``params``), as ``GET
    /v1/motions/{name}`` returns them."""

    params: PoseParams
    fps: float = Field(30.0, ge=0.01, le=10_000,
                       description="frames per second (stored with the clip; nothing is resampled)")
    expression_space: Literal["arkit52", "smplx-pca"] | None = None
    name: str = Field("request", max_length=64)


class MotionAnswer(BaseModel):
    """A built-in clip as per-frame SMPL-X parameters (``GET /v1/motions/{name}``)."""

    params: dict[str, list[list[float]]]
    fps: float
    expression_space: Literal["arkit52", "smplx-pca"] | None = None
    name: str


def _motion_kind(value: Any) -> str:
    has_params = isinstance(value, dict) and "params" in value or hasattr(value, "params")
    return "MotionParams" if has_params else "BuiltinMotion"


Motion = Annotated[Annotated[BuiltinMotion, Tag("BuiltinMotion")] | Annotated[MotionParams, Tag("MotionParams")],
                   Discriminator(_motion_kind)]


class OpenCVCamera(RequestModel):
    """OpenCV convention in the SMPL-X world (Y up, metres): pixels ``K`` (3x3, last row 0 0 1),
    ``world_to_cam`` (4x4 rigid, last row 0 0 0 1)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # a camera file's extra keys
    K: Annotated[list[_vector(3)], Field(min_length=3, max_length=3)]
    world_to_cam: Annotated[list[_vector(4)], Field(min_length=4, max_length=4)]
    width: Side
    height: Side
    near: float | None = Field(None, gt=0, description="metres")
    far: float | None = Field(None, gt=0, description="metres, beyond near")


class BlenderCameraSettings(RequestModel):
    lens_mm: float = Field(gt=0, le=100_000)
    sensor_width_mm: float = Field(36.0, gt=0, le=10_000)
    sensor_height_mm: float = Field(24.0, gt=0, le=10_000)
    sensor_fit: Literal["AUTO", "HORIZONTAL", "VERTICAL"] = "AUTO"
    shift_x: float = Field(0.0, ge=-100, le=100)
    shift_y: float = Field(0.0, ge=-100, le=100)
    clip_start: float = Field(0.1, gt=0)
    clip_end: float = Field(100.0, gt=0)
    resolution_x: int = Field(ge=1, le=65_536)
    resolution_y: int = Field(ge=1, le=65_536)
    resolution_percentage: int = Field(100, ge=1, le=32_767)
    pixel_aspect_x: float = Field(1.0, ge=1, le=200)
    pixel_aspect_y: float = Field(1.0, ge=1, le=200)
    matrix_world: Annotated[list[_vector(4)], Field(min_length=4, max_length=4)] = Field(
        description="4x4 camera object matrix in the Blender world where the rig's armature sits "
        "at the identity apart from +90° about X (Blender (x, y, z) = SMPL-X (x, -z, y))")


class BlenderCamera(RequestModel):
    blender: BlenderCameraSettings


class PresetCamera(RequestModel):
    """``front`` frames the whole body; ``orbit`` turns once around it over the frames."""

    preset: Literal["front", "orbit"]
    width: Side = 512
    height: Side = 512


def _camera_kind(value: Any) -> str | None:
    """Which camera ``value`` is; None (pydantic then answers 422) when it is no object at all,
    e.g. a number or a string where a camera belongs."""
    if isinstance(value, dict):
        keys = value
    elif isinstance(value, BaseModel):
        keys = type(value).model_fields
    else:
        return None
    return ("BlenderCamera" if "blender" in keys else "PresetCamera" if "preset" in keys
            else "OpenCVCamera")


CameraSpec = Annotated[Annotated[OpenCVCamera, Tag("OpenCVCamera")] | Annotated[BlenderCamera, Tag("BlenderCamera")]
                       | Annotated[PresetCamera, Tag("PresetCamera")], Discriminator(_camera_kind)]
Unit = Annotated[float, Field(ge=0, le=1)]


class RenderRequest(RequestModel):
    avatar: str = Field(pattern=AVATAR_ID_PATTERN)
    motion: Motion
    cameras: list[CameraSpec] = Field(
        min_length=1, max_length=MAX_CAMERAS,
        description="one camera for all frames, or one per rendered frame")
    size: tuple[Side, Side] | None = Field(None, description="[width, height]: resize the cameras")
    format: Literal["png", "zip"] = Field(
        "png", description="png: one frame, RGBA; zip: frame_00000.png, ... (0-based, in order)")
    background: tuple[Unit, Unit, Unit] | None = Field(
        None, description="RGB 0..1 behind the avatar; null keeps alpha (transparent)")


MAX_SCENE_AVATARS = 32


class SceneAvatar(RequestModel):
    """One avatar of a scene render: its pose per frame and where its rig stands."""

    avatar: str = Field(pattern=AVATAR_ID_PATTERN)
    params: PoseParams = Field(description="SMPL-X parameters, one row per rendered frame")
    expression_space: Literal["arkit52", "smplx-pca"] | None = None
    matrix_world: Annotated[list[_vector(4)], Field(min_length=4, max_length=4)] = Field(
        description="4x4 matrix of the rig's armature object in the scene's Blender world "
        "(armature space is the SMPL-X frame, Y up); rotation, translation and uniform scale")


class SceneRenderRequest(RequestModel):
    """Several avatars rendered together (they occlude each other), for Blender's render
    engine: the cameras are in the scene's Blender world (Z up) — a ``blender`` camera's
    ``matrix_world`` is the camera object's matrix as Blender has it; an OpenCV camera's
    ``world_to_cam`` maps Blender world points to the OpenCV camera."""

    avatars: list[SceneAvatar] = Field(
        min_length=1, max_length=MAX_SCENE_AVATARS,
        description="at least one (a scene without avatars is transparent: no request needed)")
    cameras: list[Annotated[Annotated[OpenCVCamera, Tag("OpenCVCamera")]
                            | Annotated[BlenderCamera, Tag("BlenderCamera")],
                            Discriminator(_camera_kind)]] = Field(
        min_length=1, max_length=MAX_CAMERAS,
        description="one camera for all frames, or one per frame")
    size: tuple[Side, Side] | None = Field(None, description="[width, height]: resize the cameras")
    dtype: Literal["float32", "float16"] = Field(
        "float32", description="precision of the returned arrays")
    crop: bool = Field(
        False, description="answer only the box around the drawn pixels of all frames: the "
        "arrays are [T, h, w] with `box` = [x0, y0, x1, y1] (pixels, top-left origin, end "
        "exclusive; [0, 0, 0, 0] when nothing is drawn) and `size` = [width, height]")
    depth: bool = Field(True, description="false: no depth pass in the answer (colour only)")
