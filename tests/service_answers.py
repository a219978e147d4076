"""Answers of the service for the tests' fakes of it, built from the service's own pydantic
schemas (``oneshot_avatar.service.schemas``): each one is validated by the schema the real
route answers with, so a fake cannot drift from the API (a renamed, added or retyped field
fails here, not in a user's Blender).

The Blender-side tests (``tests/blender``, run in Blender's Python without pydantic) get them
as a JSON file written by :func:`write_answers`, named by ``$ONESHOT_AVATAR_TEST_SERVICE_ANSWERS``.
"""

from __future__ import annotations

import json
from pathlib import Path

from oneshot_avatar.service import schemas

ENV = "ONESHOT_AVATAR_TEST_SERVICE_ANSWERS"


def _build(model, answer: dict, fields: dict) -> dict:
    unknown = sorted(set(fields) - set(model.model_fields))
    if unknown:  # pydantic would drop them quietly
        raise TypeError(f"{model.__name__} has no field(s) {unknown}")
    return model.model_validate({**answer, **fields}).model_dump(mode="json")


def health(**fields) -> dict:
    """``GET /v1/health``."""
    answer = {"status": "ok", "service": "oneshot-avatar", "version": "0.1.0", "api_version": 1,
              "device": "cpu", "rasterizer": "torch", "detector": None,
              "body_model": {"id": "open-test", "kind": "open", "sha256": "0" * 64,
                             "expression_names": []},
              "plugins": {}, "presets": ["fast", "quality"], "motions": ["idle", "talk"],
              "limits": {"max_upload_bytes": 50_000_000, "max_render_frames": 3600,
                         "max_render_pixels": 16_777_216}}
    return _build(schemas.Health, answer, fields)


def job(**fields) -> dict:
    """``GET /v1/jobs/{id}`` (and the 202 answer that starts one)."""
    answer = {"id": "j_0123456789abcdef", "kind": "reconstruct", "state": "queued",
              "stage": None, "progress": 0.0, "stage_progress": 0.0, "name": "",
              "log": [], "error": None, "avatar_id": None, "result_url": None, "artifacts": [],
              "created": "2026-01-01T00:00:00.000+00:00",
              "updated": "2026-01-01T00:00:00.000+00:00"}
    return _build(schemas.Job, answer, fields)


def error(status: int, message: str, field: str | None = None) -> dict:
    """Any error answer: ``{"error": {"status", "field", "message"}}``."""
    return _build(schemas.ErrorBody, {}, {"error": {"status": status, "field": field,
                                                    "message": message}})


def motion(**fields) -> dict:
    """``GET /v1/motions/{name}`` (JSON rows)."""
    answer = {"name": "wave", "fps": 30.0, "params": {}, "expression_space": None}
    return _build(schemas.MotionAnswer, answer, fields)


def write_answers(path: Path) -> Path:
    """The answers above as JSON for the Blender-side fakes: one of each, plus the field names
    each may carry (a fake that sets another field is a fake that drifted)."""
    answers = {"health": health(), "job": job(), "error": error(404, "not found"),
               "motion": motion(),
               "fields": {"job": sorted(schemas.Job.model_fields),
                          "job_error": sorted(schemas.JobError.model_fields),
                          "motion": sorted(schemas.MotionAnswer.model_fields),
                          "pose": sorted(schemas.PoseParams.model_fields)}}
    path.write_text(json.dumps(answers, indent=1))
    return path
