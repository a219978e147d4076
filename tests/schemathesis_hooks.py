"""Schemathesis hooks for the One-Shot Avatar API: real files for the multipart parts whose content
types the schema declares (random bytes are not a photo, a keypoints file or an avatar package, and
the server rightly refuses them), so schema-valid requests are accepted and the fuzzer gets past
the upload checks.

    SCHEMATHESIS_HOOKS=schemathesis_hooks ONESHOT_AVATAR_FUZZ_FILES=DIR st run URL/openapi.json

``DIR`` holds ``photo.png`` (RGBA: its alpha is the person mask, so it serves as ``mask`` too),
``keypoints.json``, ``init.json``, ``package.avatar``, ``speech.wav`` and ``video.mp4`` made with the server's body model
(``tests/test_service_fuzz.py`` writes them with :func:`write_fuzz_files`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

FILES_ENV = "ONESHOT_AVATAR_FUZZ_FILES"
# Media type in the schema's multipart encodings (oneshot_avatar.service.openapi) -> file.
MEDIA_FILES = {
    "image/png": "photo.png",
    "application/x-keypoints+json": "keypoints.json",
    "application/x-smplx+json": "init.json",
    "application/x-oneshot-avatar": "package.avatar",
    "audio/wav": "speech.wav",
    "video/mp4": "video.mp4",
}


def _register() -> None:
    import schemathesis
    from hypothesis import strategies as st

    folder = Path(os.environ[FILES_ENV])
    for media_type, name in MEDIA_FILES.items():
        schemathesis.openapi.media_type(media_type, st.just((folder / name).read_bytes()))


def _wire_reading(value, field_schema: dict):
    """What a server reads from a multipart text part that carried ``value``: its text, read as
    the field's type (a part is text; there are no arrays, objects or nulls on the wire)."""
    if isinstance(value, (bytes, bytearray)):
        return value
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) \
        else "" if value is None else str(value)
    kind = field_schema.get("type")
    try:
        return int(text) if kind == "integer" else float(text) if kind == "number" else text
    except ValueError:
        return text


def _multipart_case_is_valid_on_the_wire(case) -> bool:
    """A negative multipart case whose parts, as the server reads them, satisfy the schema (e.g. a
    text field "mutated" into an array, which travels as the array's text): not negative at all.
    Schemathesis corrects this for query parameters and urlencoded bodies, not for multipart."""
    import jsonschema_rs

    if case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return False
    raw = case.operation.schema.raw_schema
    body = case.operation.definition.raw["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in body:
        body = raw["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    properties = body.get("properties", {})
    wire = {name: _wire_reading(value, properties.get(name, {})) for name, value in case.body.items()}
    files = {name for name, value in wire.items() if isinstance(value, (bytes, bytearray))}
    body = {**body, "properties": {name: {} if name in files else field
                                   for name, field in properties.items()}}
    return jsonschema_rs.Draft202012Validator(body).is_valid(
        {name: "" if name in files else value for name, value in wire.items()})


def _register_filters() -> None:
    import schemathesis
    from schemathesis import GenerationMode

    @schemathesis.hook
    def filter_case(context, case) -> bool:
        mode = case.meta.generation.mode if case.meta is not None else None
        return not (mode == GenerationMode.NEGATIVE and _multipart_case_is_valid_on_the_wire(case))


def write_fuzz_files(folder: Path, body, package: Path) -> Path:
    """The files :data:`MEDIA_FILES` names, for ``body`` (a ``BodyModel``) in ``folder``."""
    import io
    import json
    import shutil

    import numpy as np
    from PIL import Image

    from oneshot_avatar.reconstruct.demo import write_coco_wholebody
    from oneshot_avatar.reconstruct.synthetic import make_subject

    folder.mkdir(parents=True, exist_ok=True)
    subject = make_subject(body, "red-check", size=128, texture_resolution=3)
    rgba = np.concatenate([subject.image, subject.mask[..., None]], axis=-1)
    photo = io.BytesIO()
    Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), mode="RGBA").save(photo, format="PNG")
    (folder / "photo.png").write_bytes(photo.getvalue())
    write_coco_wholebody(folder / "keypoints.json", body, subject.params, subject.camera)
    (folder / "init.json").write_text(json.dumps({"global_orient": [0.0, 0.0, 0.0]}))
    shutil.copyfile(package, folder / "package.avatar")
    _write_speech_like_wav(folder / "speech.wav")
    _write_small_video(folder / "video.mp4", subject.image)
    return folder


def _write_small_video(path: Path, image, frames: int = 4) -> None:
    """A short H.264 video of the synthetic subject's photo, shifting by a pixel per frame."""
    import imageio_ffmpeg
    import numpy as np

    rgb = (np.asarray(image)[..., :3] * 255 + 0.5).astype(np.uint8)
    height, width = rgb.shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=10, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=2,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for k in range(frames):
        writer.send(np.ascontiguousarray(np.roll(rgb, k, axis=1)))
    writer.close()


def _write_speech_like_wav(path: Path, seconds: float = 1.5, rate: int = 16000) -> None:
    """A short mono WAV of noise whose loudness rises and falls at a syllable rate (~4 Hz), with
    a little silence at both ends: audio the speech route accepts (not empty, not silent)."""
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) * ((t > 0.2) & (t < seconds - 0.2))
    signal = np.random.default_rng(0).normal(0.0, 0.3, t.shape) * envelope
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())


if os.environ.get(FILES_ENV):
    _register()
    _register_filters()
