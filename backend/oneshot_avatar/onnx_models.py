"""Opening ONNX plug-in models (matting, keypoint detection) with onnxruntime: one place for
the optional import, the execution providers and the errors of a file that is no model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from oneshot_avatar.errors import BadFileError, UserError


def import_onnxruntime(field: str, alternative: str):
    """onnxruntime, or a UserError naming the option that needs it and ``alternative``."""
    try:
        import onnxruntime
    except ImportError as error:
        raise UserError(f"ONNX models need onnxruntime: pip install 'oneshot-avatar[onnx]' "
                        f"(or onnxruntime-gpu for CUDA); {alternative}", field=field) from error
    return onnxruntime


def ort_errors() -> tuple[type[BaseException], ...]:
    """The exception types onnxruntime raises for bad models and failed runs."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidProtobuf", "InvalidGraph", "NoSuchFile",
             "NoModel", "RuntimeException", "NotImplemented", "ModelLoaded", "EPFail")
    found = tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))
    return found + (RuntimeError, OSError, ValueError)


def providers(ort, device: Any, what: str) -> list[Any]:
    """CUDA (then CPU) for a CUDA device when onnxruntime has it, else CPU (with a warning when
    CUDA was asked for)."""
    text = str(device)
    if text.startswith("cuda"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            index = int(text.split(":", 1)[1]) if ":" in text else 0
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        warnings.warn(f"onnxruntime has no CUDA provider here (install onnxruntime-gpu); running "
                      f"the {what} on the CPU", stacklevel=4)
    return ["CPUExecutionProvider"]


def open_session(path: Path, device: Any, *, what: str, field: str, alternative: str,
                 expected: str):
    """An ``InferenceSession`` for ``path``; a BadFileError saying what was ``expected`` when
    onnxruntime cannot load it."""
    ort = import_onnxruntime(field, alternative)
    try:
        return ort.InferenceSession(str(path), providers=providers(ort, device, what))
    except ort_errors() as error:
        raise BadFileError(f"not an ONNX model that onnxruntime can load ({error}): give "
                           f"{expected}", path=path) from error
