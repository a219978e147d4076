"""The OpenAPI schema, finished in one place for every route (so routes added later get the same):
the error answers any request can get, 404 wherever an id is in the path, the links from a
created resource to what can be done with it (so clients and fuzzers can follow them), and what
multipart file fields accept."""

from __future__ import annotations

from typing import Any

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

# Answers any route can give, before or besides its own work.
COMMON_ERRORS = {
    "400": "the request could not be parsed (a bad Content-Length, a body that is not JSON or "
           "multipart as declared)",
    "401": "missing or wrong token (servers started with a token)",
    "403": "a cross-origin browser request (there is no CORS)",
    "413": "the request body is larger than the server's --max-upload-mb",
    "421": "a loopback server asked for another Host (DNS rebinding)",
    "422": "a field is out of bounds or not what the route accepts; `error.field` names it",
    "503": "the server is shutting down; retry after it restarts",
}
PATH_ID_ERROR = ("404", "no such resource (the id in the path names none)")

# (method, path, status) of the answer that creates something -> the operations it links to,
# with their parameters taken from that answer.
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/v1/avatars", "201"): {
        "GetAvatar": ("get", "/v1/avatars/{avatar_id}", {"avatar_id": "$response.body#/id"}),
        "DownloadAvatar": ("get", "/v1/avatars/{avatar_id}/package",
                           {"avatar_id": "$response.body#/id"}),
        "DeleteAvatar": ("delete", "/v1/avatars/{avatar_id}", {"avatar_id": "$response.body#/id"}),
    },
    **{(method, path, "202"): {
        "GetJob": ("get", "/v1/jobs/{job_id}", {"job_id": "$response.body#/id"}),
        "CancelJob": ("post", "/v1/jobs/{job_id}/cancel", {"job_id": "$response.body#/id"}),
        "GetJobResult": ("get", "/v1/jobs/{job_id}/result", {"job_id": "$response.body#/id"}),
        "GetJobArtifact": ("get", "/v1/jobs/{job_id}/artifacts/{name}",
                           {"job_id": "$response.body#/id"}),
    } for method, path in (("post", "/v1/reconstructions"), ("post", "/v1/render-jobs"),
                           ("post", "/v1/tracking"))},
    ("get", "/v1/jobs/{job_id}", "200"): {
        "CancelJob": ("post", "/v1/jobs/{job_id}/cancel", {"job_id": "$response.body#/id"}),
        "GetJobResult": ("get", "/v1/jobs/{job_id}/result", {"job_id": "$response.body#/id"}),
    },
}

IMAGE_TYPES = "image/png, image/jpeg, image/webp"
# Multipart file fields and what they hold. The server goes by the content, not by a part's declared
# type, and refuses other content with a 422 naming the field: keypoints = OpenPose or
# COCO-WholeBody JSON, init = SMPL-X parameters as JSON or .npz, package = a .avatar (zip) made with
# this server's body model, audio = any sound file ffmpeg decodes.
FILE_PARTS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/v1/reconstructions"): {
        "photo": IMAGE_TYPES,
        "mask": IMAGE_TYPES,
        "keypoints": "application/x-keypoints+json",
        "init": "application/x-smplx+json, application/x-smplx+npz",
    },
    ("post", "/v1/avatars"): {"package": "application/x-oneshot-avatar"},
    ("post", "/v1/speech"): {"audio": "audio/wav, audio/mpeg, audio/flac, audio/ogg, audio/mp4"},
    ("post", "/v1/tracking"): {"video": "video/mp4, video/quicktime, video/x-matroska, video/webm"},
}


def finish_schema(schema: dict[str, Any], *, pose_input_required: bool) -> dict[str, Any]:
    """Add the common errors, links and multipart encodings to ``schema`` (FastAPI's), in place.
    ``pose_input_required``: the server has no keypoint detector, so a reconstruction needs
    ``keypoints`` or ``init``."""
    operation_ids = {(method, path): operation.get("operationId")
                     for path, item in schema.get("paths", {}).items()
                     for method, operation in item.items() if isinstance(operation, dict)}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            errors = dict(COMMON_ERRORS)
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                errors[PATH_ID_ERROR[0]] = PATH_ID_ERROR[1]
            for status, description in errors.items():
                answer = responses.setdefault(status, {"description": description})
                answer.setdefault("content", {"application/json": {"schema": ERROR_REF}})
                if answer.get("description") in (None, "", "Successful Response"):
                    answer["description"] = description
            for status, answer in responses.items():
                links = LINKS.get((method, path, status))
                if links:
                    answer["links"] = {
                        name: {"operationId": operation_ids[(target_method, target_path)],
                               "parameters": parameters,
                               "description": f"{target_method.upper()} {target_path}"}
                        for name, (target_method, target_path, parameters) in links.items()
                        if (target_method, target_path) in operation_ids}
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if form is not None:
                _form_fields_not_nullable(schema, form)
                parts = FILE_PARTS.get((method, path), {})
                form["encoding"] = {name: {"contentType": types} for name, types in parts.items()}
                if path == "/v1/reconstructions" and pose_input_required:
                    _require_pose_input(schema, form)
    return schema


def _form_schema(schema: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    body = form["schema"]
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body


def _form_fields_not_nullable(schema: dict[str, Any], form: dict[str, Any]) -> None:
    """A multipart field is text or a file: an optional one is left out, never sent as ``null``
    (FastAPI writes ``anyOf [T, null]`` for optional fields)."""
    for field in _form_schema(schema, form).get("properties", {}).values():
        choices = [c for c in field.get("anyOf", []) if c.get("type") != "null"]
        if len(choices) == 1:
            del field["anyOf"]
            field.update(choices[0])
            if field.get("default", 0) is None:
                del field["default"]


def _require_pose_input(schema: dict[str, Any], form: dict[str, Any]) -> None:
    """State in the schema that a reconstruction needs ``keypoints`` or ``init`` (no detector)."""
    body = _form_schema(schema, form)
    body["anyOf"] = [{"required": ["keypoints"]}, {"required": ["init"]}]
    body["description"] = ("This server has no keypoint detector: send `keypoints` or `init` "
                           "with the photo.")
