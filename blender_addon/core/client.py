"""HTTP client for ``oneshot-avatar serve`` (API v1), standard library only (``urllib``).

Every call has a timeout (seconds, per socket operation), sends ``Authorization: Bearer
<token>`` when a token is set, and turns every failure into a :class:`ServiceError` whose
``str()`` is one sentence naming the problem and what to do:

- the backend's JSON errors ``{"error": {"status", "field", "message"}}`` keep their status,
  field and message;
- a refused connection / unknown host becomes :class:`BackendUnreachableError`;
- no answer in time becomes :class:`BackendTimeoutError`;
- 401/403 become :class:`AuthenticationError`;
- a server that does not speak the API (wrong URL) is named as such.

A backend started by the add-on (``oneshot-avatar serve`` as a child process on loopback) is
:class:`blender_addon.core.launcher.LocalBackend`.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import os
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8765"
API_VERSION = 1
SERVICE_NAME = "oneshot-avatar"
DEFAULT_TIMEOUT_S = 10.0  # small requests (health, job status, cancel)
UPLOAD_TIMEOUT_S = 60.0  # photo and package uploads
RENDER_TIMEOUT_S = 600.0  # a synchronous render waits for the frames
CHUNK_BYTES = 1 << 20
START_HINT = "start it with `oneshot-avatar serve` or set the URL in the add-on preferences"


# --------------------------------------------------------------------------------------------
# Errors


class ServiceError(Exception):
    """A failed request to the backend, or a problem with what the add-on was asked to send.

    ``status``: HTTP status (``None`` when no answer came); ``field``: the request field the
    backend (or the add-on) blames, e.g. ``"photo"``; ``message``: the backend's own message;
    ``hint``: what to do. ``str(error)`` joins them into one sentence for ``self.report``.
    """

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None,
                 url: str | None = None, hint: str | None = None):
        self.message = message
        self.status = status
        self.field = field
        self.url = url
        self.hint = hint
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        text = self.message
        if self.field and f"'{self.field}'" not in text:
            text = f"'{self.field}': {text}"
        if self.status is not None:
            text = f"{text} (HTTP {self.status})"
        if self.hint:
            text = f"{text}; {self.hint}"
        return text


class BackendUnreachableError(ServiceError):
    """Nothing answers at the backend URL (connection refused, unknown host, reset)."""


class BackendTimeoutError(ServiceError):
    """The backend accepted the connection but did not answer in time."""


class AuthenticationError(ServiceError):
    """The backend refused the token (401) or the request (403)."""


# --------------------------------------------------------------------------------------------
# Multipart encoding


@dataclass(frozen=True)
class UploadFile:
    """One file part of a multipart request: the form ``field``, the ``filename`` sent, bytes."""

    field: str
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"

    @classmethod
    def from_path(cls, field: str, path: str | os.PathLike) -> UploadFile:
        """Read ``path`` for form field ``field``; a missing/unreadable file is a
        :class:`ServiceError` naming the field."""
        path = Path(path)
        if not path.is_file():
            raise ServiceError(f"file not found: {str(path)!r}", field=field,
                               hint="pick an existing file")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ServiceError(f"cannot read {str(path)!r}: {error.strerror or error}",
                               field=field, hint="check the file's permissions") from error
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(field, path.name, data, content_type)


def _quote_header_value(value: str) -> str:
    return (value.replace("\\", "\\\\").replace('"', "%22").replace("\r", " ")
            .replace("\n", " "))


def encode_multipart(fields: Mapping[str, Any], files: Sequence[UploadFile],
                     boundary: str | None = None) -> tuple[bytes, str]:
    """``multipart/form-data`` body and its ``Content-Type`` header value.

    ``fields``: form fields (values sent as text; ``None`` values are left out);
    ``files``: the file parts."""
    boundary = boundary or f"oneshot-avatar-{secrets.token_hex(16)}"
    marker = f"--{boundary}".encode("ascii")
    parts: list[bytes] = []
    for name, value in fields.items():
        if value is None:
            continue
        parts += [marker, b"\r\n",
                  f'Content-Disposition: form-data; name="{_quote_header_value(name)}"\r\n\r\n'
                  .encode(), str(value).encode(), b"\r\n"]
    for upload in files:
        disposition = (f'Content-Disposition: form-data; name="{_quote_header_value(upload.field)}"'
                       f'; filename="{_quote_header_value(upload.filename)}"\r\n')
        parts += [marker, b"\r\n", disposition.encode(),
                  f"Content-Type: {upload.content_type}\r\n\r\n".encode(), upload.data, b"\r\n"]
    parts += [marker, b"--\r\n"]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --------------------------------------------------------------------------------------------
# The client


def normalize_base_url(url: str) -> str:
    """``url`` without a trailing slash; anything but ``http(s)://host[:port][/prefix]`` is a
    :class:`ServiceError` on field ``backend_url``."""
    text = (url or "").strip()
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ServiceError(f"{text!r} is not a backend URL", field="backend_url",
                           hint=f"give one like {DEFAULT_URL} in the add-on preferences")
    try:
        parsed.port  # noqa: B018 - validates the port number
    except ValueError as error:
        raise ServiceError(f"{text!r} has a bad port ({error})", field="backend_url",
                           hint=f"give one like {DEFAULT_URL}") from error
    if parsed.query or parsed.fragment:
        raise ServiceError(f"{text!r} has a query or fragment", field="backend_url",
                           hint=f"give only scheme, host, port and path, like {DEFAULT_URL}")
    return text.rstrip("/")


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _error_from_body(body: bytes) -> tuple[str | None, str | None]:
    """``(message, field)`` from the API's JSON error body, ``(None, None)`` when it is not."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        field = error.get("field")
        return error["message"], field if isinstance(field, str) else None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):  # a framework's own error
        return data["detail"], None
    return None, None


class ServiceClient:
    """Talks to one backend. ``base_url`` like ``http://127.0.0.1:8765``; ``token`` the
    server's ``--token`` (empty/None: none sent); ``timeout`` seconds for small requests."""

    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S):
        self.base_url = normalize_base_url(base_url)
        self.token = token or None
        self.timeout = float(timeout)
        handlers: list[urllib.request.BaseHandler] = []
        if _is_loopback(urllib.parse.urlsplit(self.base_url).hostname or ""):
            handlers.append(urllib.request.ProxyHandler({}))  # never send loopback via a proxy
        self._opener = urllib.request.build_opener(*handlers)

    # ---- plumbing

    def _url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def _open(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
              body: bytes | None = None, content_type: str | None = None,
              timeout: float | None = None):
        url = self._url(path, query)
        headers = {"Accept": "application/json, */*", "User-Agent": "oneshot-avatar-blender"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        wait = self.timeout if timeout is None else timeout
        try:
            return self._opener.open(request, timeout=wait)
        except urllib.error.HTTPError as error:
            try:
                body = error.read() if error.fp is not None else b""
            except (TimeoutError, OSError, http.client.HTTPException):
                body = b""
            finally:
                error.close()
            raise self._http_error(error.code, body, url) from None
        except urllib.error.URLError as error:
            raise self._upload_refusal(error.reason, body, method, path) or \
                self._connection_error(error.reason, url, wait) from error
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
            raise self._upload_refusal(error, body, method, path) or \
                self._connection_error(error, url, wait) from error

    def _upload_refusal(self, reason: object, body: bytes | None, method: str,
                        path: str) -> ServiceError | None:
        """Why the connection broke while a request body was being sent, when the server says.

        A server refuses a request (a wrong token: 401) before reading its body and closes the
        connection, so the client sees a broken pipe or a reset instead of the answer. Asking
        ``/v1/health`` (small, same token) then tells a refused token from a dead backend."""
        if not body or not isinstance(reason, (ConnectionError, http.client.HTTPException)):
            return None
        try:
            self._json("GET", "/v1/health", timeout=min(self.timeout, DEFAULT_TIMEOUT_S))
        except AuthenticationError as refusal:
            refusal.message = (f"{refusal.message} (the server closed the connection during "
                               f"the {len(body) / 1e6:.1f} MB upload of {method} {path})")
            refusal.args = (refusal._sentence(),)
            return refusal
        except ServiceError:
            return None
        return None

    def _http_error(self, status: int, body: bytes, url: str) -> ServiceError:
        message, field = _error_from_body(body)
        if message is None:
            snippet = body[:200].decode("utf-8", "replace").strip()
            message = (f"the server at {self.base_url} answered {method_path(url)} with "
                       f"something other than the oneshot-avatar API's JSON errors"
                       + (f": {snippet!r}" if snippet else ""))
            hint = "check the backend URL in the add-on preferences"
            if status in (401, 403):
                return AuthenticationError(message, status=status, url=url, hint=hint)
            return ServiceError(message, status=status, url=url, hint=hint)
        if status == 401:
            return AuthenticationError(
                message, status=status, field=field, url=url,
                hint="set the token in the add-on preferences to the one the server was started "
                     "with (`oneshot-avatar serve --token ...`)")
        if status == 403:
            return AuthenticationError(message, status=status, field=field, url=url,
                                       hint="check the token in the add-on preferences")
        if status == 404:
            hint = "it may have been deleted on the backend"
        elif status == 413:
            hint = "send a smaller file or raise the server's upload limit"
        elif status >= 500:
            hint = "see the backend's log for details"
        else:
            hint = None
        return ServiceError(message, status=status, field=field, url=url, hint=hint)

    def _connection_error(self, reason: object, url: str, timeout: float) -> ServiceError:
        if isinstance(reason, TimeoutError):
            return BackendTimeoutError(
                f"the backend at {self.base_url} did not answer {method_path(url)} within "
                f"{timeout:g} s", url=url,
                hint="it may be busy or stuck; check it is running, or try again")
        if isinstance(reason, ssl_error_types()):
            return BackendUnreachableError(
                f"secure connection to {self.base_url} failed ({reason})", url=url,
                hint="use http:// for a local backend or fix its certificate")
        if isinstance(reason, http.client.RemoteDisconnected):
            return BackendUnreachableError(
                f"the backend at {self.base_url} closed the connection without answering "
                f"{method_path(url)}: it stopped or crashed while working", url=url,
                hint="check its console; " + START_HINT)
        detail = getattr(reason, "strerror", None) or str(reason)
        return BackendUnreachableError(
            f"backend not reachable at {self.base_url} ({detail})", url=url, hint=START_HINT)

    def _read(self, response, url: str) -> bytes:
        try:
            with response:
                return response.read()
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
            raise self._connection_error(error, url, self.timeout) from error

    def _json(self, method: str, path: str, *, payload: Any = None,
              query: Mapping[str, Any] | None = None, body: bytes | None = None,
              content_type: str | None = None, timeout: float | None = None) -> Any:
        if payload is not None:
            body, content_type = json.dumps(payload).encode("utf-8"), "application/json"
        response = self._open(method, path, query=query, body=body, content_type=content_type,
                              timeout=timeout)
        url = response.geturl()
        data = self._read(response, url)
        if response.status == 204 or not data:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ServiceError(
                f"the server at {self.base_url} answered {method} {path} with something that is "
                f"not JSON ({data[:80]!r})", status=response.status, url=url,
                hint="check the backend URL points at `oneshot-avatar serve`") from error

    def _bytes(self, method: str, path: str, *, payload: Any = None,
               timeout: float | None = None) -> tuple[bytes, str]:
        body = content_type = None
        if payload is not None:
            body, content_type = json.dumps(payload).encode("utf-8"), "application/json"
        response = self._open(method, path, body=body, content_type=content_type,
                              timeout=timeout)
        kind = response.headers.get("Content-Type", "")
        return self._read(response, response.geturl()), kind

    def _download(self, path: str, destination: str | os.PathLike, *,
                  timeout: float | None = None) -> Path:
        """Stream ``path`` into ``destination`` atomically (a ``.part`` file renamed at the
        end; nothing is left behind on failure)."""
        destination = Path(destination)
        partial = destination.with_name(destination.name + ".part")
        wait = self.timeout if timeout is None else timeout
        response = self._open("GET", path, timeout=wait)
        url = response.geturl()
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with response, open(partial, "wb") as sink:
                while chunk := response.read(CHUNK_BYTES):
                    sink.write(chunk)
            os.replace(partial, destination)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
            partial.unlink(missing_ok=True)
            raise self._connection_error(error, url, wait) from error
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ServiceError(f"cannot write {str(destination)!r}: {error.strerror or error}",
                               field="destination",
                               hint="pick a folder you can write to") from error
        return destination

    # ---- API

    def health(self) -> dict:
        """``GET /v1/health``, checked to come from ``oneshot-avatar serve`` API v1."""
        data = self._json("GET", "/v1/health")
        if not isinstance(data, dict) or data.get("service") != SERVICE_NAME:
            raise ServiceError(f"the server at {self.base_url} is not `oneshot-avatar serve` "
                               f"(its /v1/health says {str(data)[:120]!r})",
                               hint="check the backend URL in the add-on preferences")
        if data.get("api_version") != API_VERSION:
            raise ServiceError(f"the backend speaks API version {data.get('api_version')!r}, "
                               f"this add-on speaks {API_VERSION}",
                               hint="install matching versions of the add-on and the backend")
        return data

    def create_reconstruction(self, photo: str | os.PathLike, *,
                              mask: str | os.PathLike | None = None,
                              keypoints: str | os.PathLike | None = None,
                              init: bytes | str | os.PathLike | None = None,
                              preset: str | None = None, steps: int | None = None,
                              resolution: int | None = None, seed: int | None = None,
                              name: str | None = None, fov: float | None = None) -> dict:
        """``POST /v1/reconstructions``: upload the photo (+ optional mask, keypoints JSON and
        ``init`` SMPL-X params: a path, or JSON bytes sent as ``init.json``) -> the Job.
        ``fov``: the photo camera's field of view in degrees across the photo's long side
        (None: the backend reads it from the photo's EXIF, else assumes 40)."""
        files = [UploadFile.from_path("photo", photo)]
        if mask:
            files.append(UploadFile.from_path("mask", mask))
        if keypoints:
            files.append(UploadFile.from_path("keypoints", keypoints))
        if isinstance(init, bytes):
            files.append(UploadFile("init", "init.json", init, "application/json"))
        elif init:
            files.append(UploadFile.from_path("init", init))
        fields = {"preset": preset, "steps": steps, "resolution": resolution, "seed": seed,
                  "name": name, "fov": fov}
        body, content_type = encode_multipart(fields, files)
        return self._json("POST", "/v1/reconstructions", body=body, content_type=content_type,
                          timeout=max(self.timeout, UPLOAD_TIMEOUT_S))

    def list_jobs(self) -> list[dict]:
        return self._json("GET", "/v1/jobs")["jobs"]

    def get_job(self, job_id: str) -> dict:
        return self._json("GET", f"/v1/jobs/{_path_part(job_id, 'job_id')}")

    def cancel_job(self, job_id: str) -> dict:
        return self._json("POST", f"/v1/jobs/{_path_part(job_id, 'job_id')}/cancel")

    def download_job_result(self, job_id: str, destination: str | os.PathLike) -> Path:
        """``GET /v1/jobs/{id}/result`` into ``destination`` (a reconstruction's ``.avatar``,
        a render job's zip of PNG frames)."""
        return self._download(f"/v1/jobs/{_path_part(job_id, 'job_id')}/result", destination,
                              timeout=max(self.timeout, UPLOAD_TIMEOUT_S))

    def download_artifact(self, job_id: str, name: str, destination: str | os.PathLike) -> Path:
        return self._download(f"/v1/jobs/{_path_part(job_id, 'job_id')}/artifacts/"
                              f"{_path_part(name, 'artifact')}", destination)

    def list_avatars(self) -> list[dict]:
        return self._json("GET", "/v1/avatars")["avatars"]

    def get_avatar(self, avatar_id: str) -> dict:
        return self._json("GET", f"/v1/avatars/{_path_part(avatar_id, 'avatar_id')}")

    def find_avatar(self, avatar_id: str) -> dict | None:
        """The avatar, or ``None`` when the backend does not have it (404)."""
        try:
            return self.get_avatar(avatar_id)
        except ServiceError as error:
            if error.status == 404:
                return None
            raise

    def upload_avatar(self, package: str | os.PathLike, name: str | None = None) -> dict:
        """``POST /v1/avatars`` with an ``.avatar`` file -> the Avatar (with its new id)."""
        body, content_type = encode_multipart({"name": name},
                                              [UploadFile.from_path("package", package)])
        return self._json("POST", "/v1/avatars", body=body, content_type=content_type,
                          timeout=max(self.timeout, UPLOAD_TIMEOUT_S))

    def download_avatar_package(self, avatar_id: str, destination: str | os.PathLike) -> Path:
        return self._download(f"/v1/avatars/{_path_part(avatar_id, 'avatar_id')}/package",
                              destination, timeout=max(self.timeout, UPLOAD_TIMEOUT_S))

    def delete_avatar(self, avatar_id: str) -> None:
        self._json("DELETE", f"/v1/avatars/{_path_part(avatar_id, 'avatar_id')}")

    def list_motions(self) -> list[dict]:
        return self._json("GET", "/v1/motions")["motions"]

    def get_motion(self, name: str, fps: float | None = None) -> dict:
        """A built-in clip as MotionJSON (per-frame parameter rows), resampled to ``fps``."""
        return self._json("GET", f"/v1/motions/{_path_part(name, 'motion')}",
                          query={"fps": fps})

    def render(self, request: Mapping[str, Any], *, timeout: float = RENDER_TIMEOUT_S) -> bytes:
        """``POST /v1/render``: PNG bytes (``format`` "png") or zip bytes (``format`` "zip").

        A render may take minutes (``timeout``), but a frozen backend must not hold Blender that
        long: while waiting, ``/v1/health`` is asked every :attr:`timeout` seconds, and when it
        does not answer either the render is given up (see :meth:`_while_alive`)."""
        data, kind = self._while_alive(
            lambda: self._bytes("POST", "/v1/render", payload=dict(request), timeout=timeout),
            "POST /v1/render")
        wanted = "image/png" if request.get("format") == "png" else "application/zip"
        if not kind.startswith(wanted):
            raise ServiceError(f"expected {wanted} from /v1/render, got {kind or 'no type'!r}",
                               hint="check the backend URL points at `oneshot-avatar serve`")
        return data

    def render_scene(self, request: Mapping[str, Any], *,
                     timeout: float = RENDER_TIMEOUT_S) -> bytes:
        """``POST /v1/render-scene``: several avatars with alpha and depth, as ``.npz`` bytes
        (decode with ``core.render_engine.decode_scene``); a frozen backend is given up as in
        :meth:`render`."""
        try:
            data, kind = self._while_alive(
                lambda: self._bytes("POST", "/v1/render-scene", payload=dict(request),
                                    timeout=timeout),
                "POST /v1/render-scene")
        except ServiceError as error:
            if error.status == 422 and error.field in ("crop", "depth"):
                # a backend older than this add-on: it does not know cropped answers
                raise ServiceError(error.message, status=error.status, field=error.field,
                                   url=error.url,
                                   hint="update the backend (`oneshot-avatar serve`) to this "
                                        "add-on's version") from None
            raise
        if not kind.startswith("application/x-npz"):
            raise ServiceError(f"expected application/x-npz from /v1/render-scene, got "
                               f"{kind or 'no type'!r}",
                               hint="update the backend (`oneshot-avatar serve`) to this "
                                    "add-on's version")
        return data

    def _while_alive(self, call, what: str):
        """``call()`` run in a helper thread, given up with :class:`BackendTimeoutError` as soon
        as the backend stops answering ``/v1/health`` within :attr:`timeout` seconds (so after
        at most about twice that). The abandoned call ends by itself (its own timeout, or the
        connection closing); its result is dropped."""
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["value"] = call()
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = error
            finally:
                done.set()

        threading.Thread(target=run, name=f"oneshot-avatar {what}", daemon=True).start()
        while not done.wait(self.timeout):
            try:
                self._json("GET", "/v1/health", timeout=self.timeout)
            except (BackendTimeoutError, BackendUnreachableError) as error:
                if done.is_set():
                    break
                raise BackendTimeoutError(
                    f"the backend at {self.base_url} stopped answering during {what}: "
                    f"/v1/health got no answer within {self.timeout:g} s ({error.message})",
                    hint="it may be frozen or overloaded; check its console or restart it, "
                         "then render again") from error
            except ServiceError:
                pass  # it answers (even if with an error): alive, keep waiting
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def create_render_job(self, request: Mapping[str, Any]) -> dict:
        """``POST /v1/render-jobs``: the same body as :meth:`render`, queued -> the Job."""
        return self._json("POST", "/v1/render-jobs", payload=dict(request),
                          timeout=max(self.timeout, UPLOAD_TIMEOUT_S))


def method_path(url: str) -> str:
    """The path of ``url`` (for messages: ``/v1/jobs/j_1``)."""
    return urllib.parse.urlsplit(url).path or "/"


def _path_part(value: str, field: str) -> str:
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ServiceError(f"{value!r} is not a valid id", field=field)
    return urllib.parse.quote(value, safe="")


def ssl_error_types() -> tuple[type[BaseException], ...]:
    try:
        import ssl
    except ImportError:  # Python built without ssl
        return ()
    return (ssl.SSLError, ssl.CertificateError)
