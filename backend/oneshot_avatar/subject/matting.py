"""Person masks made from the photo: an ONNX matting/segmentation model (plug-in, the user
brings the file) and GrabCut seeded by a rough prior such as the fitted body's silhouette (the
classical fallback that needs no weights)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.onnx_models import open_session, ort_errors

DEFAULT_MAX_SIDE = 512  # long side of the model input when the model's size is dynamic
_STRIDE = 32  # dynamic input sizes are rounded to multiples of this
_RANGE_TOLERANCE = 0.05  # an output within [-tol, 1 + tol] is taken as an alpha matte


class OnnxMatting:
    """An ONNX matting or person-segmentation model run with onnxruntime.

    The model takes one float image ``[N, 3, H, W]`` (or ``[N, H, W, 3]``), RGB in ``[0, 1]``
    normalised as ``(x - mean) / std``. A fixed input size is used as it is; a dynamic one gets
    the photo with its long side at ``max_side``, both sides rounded to multiples of 32. The first
    output is read as an alpha matte ``[N, 1, h, w]`` (a sigmoid is applied when its values lie
    outside ``[0, 1]``: logits), or, with two or more channels, as segmentation logits whose
    softmax channel ``person_channel`` is the person. The result is resized to the photo.
    """

    def __init__(self, path: str | Path, device: Any = "cpu", *,
                 mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 std: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 max_side: int = DEFAULT_MAX_SIDE, person_channel: int = 1):
        path = Path(path)
        if not path.is_file():
            raise BadFileError("the matting model file does not exist: check the path", path=path)
        self.path = path
        self.name = f"onnx:{path.name}"
        self.mean = np.asarray(mean, np.float32).reshape(3)
        self.std = np.asarray(std, np.float32).reshape(3)
        if not (self.std > 0).all():
            raise UserError(f"must be positive, got {tuple(std)}", field="matting std")
        self.max_side = int(max_side)
        self.person_channel = int(person_channel)
        self.session = open_session(
            path, device, what="matting model", field="matting model",
            alternative="or give --mask FILE instead",
            expected="a matting or person-segmentation model exported to ONNX")
        self.providers: list[str] = list(self.session.get_providers())
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise BadFileError(
                f"the model has {len(inputs)} inputs ({names}); a matting model with a single "
                "image input [N, 3, H, W] is needed", path=path)
        self._input = inputs[0]
        shape = list(self._input.shape)
        if len(shape) != 4:
            raise BadFileError(f"the model's input {self._input.name} has shape {shape}; an image "
                               "input [N, 3, H, W] or [N, H, W, 3] is needed", path=path)
        dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
        if dims[1] == 3 or (dims[1] is None and dims[3] != 3):
            self._channels_last, height, width = False, dims[2], dims[3]
        elif dims[3] == 3:
            self._channels_last, height, width = True, dims[1], dims[2]
        else:
            raise BadFileError(f"the model's input {self._input.name} has shape {shape}: no axis "
                               "of 3 colour channels", path=path)
        self.fixed_size: tuple[int | None, int | None] = (height, width)
        types = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
        if self._input.type not in types:
            raise BadFileError(f"the model's input is {self._input.type}; a float image is needed",
                               path=path)
        self._dtype = types[self._input.type]

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the model input for a photo of ``height x width``."""
        fixed_h, fixed_w = self.fixed_size
        if fixed_h and fixed_w:
            return fixed_h, fixed_w
        if fixed_h:
            scale = fixed_h / height
        elif fixed_w:
            scale = fixed_w / width
        else:
            scale = self.max_side / max(height, width)
        h = fixed_h or max(_STRIDE, round(height * scale / _STRIDE) * _STRIDE)
        w = fixed_w or max(_STRIDE, round(width * scale / _STRIDE) * _STRIDE)
        return int(h), int(w)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Alpha of the person, float32 ``[H, W]`` in ``[0, 1]``, for ``rgb`` ``[H, W, 3]``
        (uint8, or float in ``[0, 1]``)."""
        import cv2

        image = _as_float_rgb(rgb)
        height, width = image.shape[:2]
        h, w = self.input_size(height, width)
        shrink = h * w < height * width
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink
                             else cv2.INTER_LINEAR)
        x = (resized - self.mean) / self.std
        x = (x[None] if self._channels_last else x.transpose(2, 0, 1)[None]).astype(self._dtype)
        try:
            output = self.session.run(None, {self._input.name: np.ascontiguousarray(x)})[0]
        except ort_errors() as error:
            raise BadFileError(f"the model failed on an input of shape {list(x.shape)} ({error}): "
                               "check that it is an image matting or segmentation model",
                               path=self.path) from error
        alpha = self._alpha_from_output(np.asarray(output))
        if alpha.shape != (height, width):
            alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(np.clip(alpha, 0.0, 1.0), dtype=np.float32)

    def _alpha_from_output(self, output: np.ndarray) -> np.ndarray:  # -> [h, w] in [0, 1]
        shape = list(output.shape)
        out = output.astype(np.float32)
        if not np.isfinite(out).all():
            raise BadFileError("the model's output holds NaN or infinite values: check that it is "
                               "a matting model and its mean/std normalisation", path=self.path)
        if out.ndim == 4:
            out = out[0]
        if out.ndim == 3:
            if out.shape[-1] < min(out.shape[:2]) and out.shape[0] > out.shape[-1]:
                out = np.moveaxis(out, -1, 0)  # [h, w, C] -> [C, h, w]
            if out.shape[0] == 1:
                out = out[0]
            else:
                if not 0 <= self.person_channel < out.shape[0]:
                    raise BadFileError(
                        f"the model's output {shape} has {out.shape[0]} channels, no channel "
                        f"{self.person_channel} for the person: pass the right person_channel",
                        path=self.path)
                out = out - out.max(axis=0, keepdims=True)
                exp = np.exp(out)
                return exp[self.person_channel] / exp.sum(axis=0)
        if out.ndim != 2 or min(out.shape) < 1:
            raise BadFileError(f"the model's first output has shape {shape}; an alpha matte "
                               "[N, 1, H, W] or segmentation logits [N, C, H, W] is needed",
                               path=self.path)
        if out.min() < -_RANGE_TOLERANCE or out.max() > 1.0 + _RANGE_TOLERANCE:
            out = 1.0 / (1.0 + np.exp(-out))
        return out


GRABCUT_SEED = 0  # OpenCV's random generator before each GrabCut (see grabcut_mask)


def grabcut_mask(rgb: np.ndarray, prior: np.ndarray, iterations: int = 5, *,
                 inner: float = 0.12, outer: float = 0.10, max_side: int = 800) -> np.ndarray:
    """Refine a rough person mask with GrabCut; float32 ``[H, W]`` of 0 and 1.

    ``rgb`` ``[H, W, 3]`` (uint8, or float in ``[0, 1]``); ``prior`` float ``[H, W]`` in
    ``[0, 1]``, e.g. the fitted body's silhouette. Sure foreground is the prior eroded by
    ``inner``, sure background everything farther than ``outer`` outside it (both fractions of
    the longer side of the prior's bounding box); the band between is probable foreground inside
    the prior and probable background outside. Photos larger than ``max_side`` are segmented at
    that size and the result is enlarged. Parts of the result that neither touch the sure
    foreground nor lie mostly inside the prior are dropped. When the prior leaves too little
    background or foreground to learn colours from, the prior itself (thresholded) is returned,
    with a warning.
    """
    import cv2

    image = np.round(_as_float_rgb(rgb) * 255.0).astype(np.uint8)
    height, width = image.shape[:2]
    prior = np.asarray(prior, dtype=np.float32)
    if prior.shape != (height, width):
        raise ValueError(f"prior is {prior.shape}, expected [H, W] = {(height, width)}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    inside = prior > 0.5
    if not inside.any():
        raise ValueError("the prior has no foreground (no pixel > 0.5) to start GrabCut from")
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_prior = cv2.resize(inside.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        result = _grabcut(small, small_prior > 0.5, iterations, inner, outer)
        if result is None:
            return inside.astype(np.float32)
        result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
        return result.astype(np.float32)
    result = _grabcut(image, inside, iterations, inner, outer)
    return inside.astype(np.float32) if result is None else result


def refine_segmentation(rgb: np.ndarray, soft: np.ndarray, points: np.ndarray | None = None, *,
                        iterations: int = 3, inner: float = 0.02, outer: float = 0.04,
                        max_side: int = 800) -> np.ndarray:
    """A detector's soft person segmentation ``[H, W]`` refined to the photo's edges with
    GrabCut; float32 ``[H, W]`` of 0 and 1.

    Trust is graded by the segmentation itself: sure foreground is ``soft > 0.5`` eroded by
    ``inner``, probable foreground the rest of ``soft > 0.5``, probable background the band
    ``outer`` around it, sure background everything farther (fractions of the longer side of
    the person's box). ``points`` ``[N, 2]`` (photo px; e.g. the detected feet, hands and head)
    mark small discs of probable foreground, so shoes, fingers and hair that the coarse
    segmentation missed can join. Parts not touching the sure foreground are dropped. When
    GrabCut has too little to learn from, the thresholded segmentation is returned.
    """
    import cv2

    image = np.round(_as_float_rgb(rgb) * 255.0).astype(np.uint8)
    height, width = image.shape[:2]
    soft = np.asarray(soft, dtype=np.float32)
    if soft.shape != (height, width):
        raise ValueError(f"soft is {soft.shape}, expected [H, W] = {(height, width)}")
    inside = soft > 0.5
    if not inside.any():
        raise ValueError("the segmentation has no foreground (no pixel > 0.5)")
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_soft = soft if scale == 1.0 else cv2.resize(soft, size, interpolation=cv2.INTER_AREA)
    fg = small_soft > 0.5
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if rows.size == 0:
        return inside.astype(np.float32)
    extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    r_in, r_out = max(1, round(inner * extent)), max(2, round(outer * extent))
    labels = np.full(fg.shape, cv2.GC_BGD, np.uint8)
    labels[cv2.dilate(fg.astype(np.uint8), _disk(r_out)) > 0] = cv2.GC_PR_BGD
    if points is not None:
        disc = np.zeros(fg.shape, np.uint8)
        for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2) * scale:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(disc, (round(float(x)), round(float(y))), r_out, 1, thickness=-1)
        labels[(disc > 0) & ~fg] = cv2.GC_PR_FGD
    labels[fg] = cv2.GC_PR_FGD
    sure = cv2.erode(fg.astype(np.uint8), _disk(r_in)) > 0
    labels[sure] = cv2.GC_FGD
    if sure.sum() < 32 or (labels == cv2.GC_BGD).sum() + (labels == cv2.GC_PR_BGD).sum() < 32:
        return inside.astype(np.float32)
    person = _run_grabcut(small, labels, iterations)
    count, components = cv2.connectedComponents(person.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(components[sure & person])] = True
    keep[0] = False
    result = keep[components].astype(np.float32)
    if scale < 1.0:
        result = (cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
                  ).astype(np.float32)
    return result


def _grabcut(image: np.ndarray, inside: np.ndarray, iterations: int, inner: float,
             outer: float) -> np.ndarray | None:
    import cv2

    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        warnings.warn("GrabCut: the prior vanished at the working size; using it as the mask",
                      stacklevel=3)
        return None
    extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    r_in = max(1, round(inner * extent))
    r_out = max(2, round(outer * extent))
    sure_fg = cv2.erode(inside.astype(np.uint8), _disk(r_in)) > 0
    near = cv2.dilate(inside.astype(np.uint8), _disk(r_out)) > 0
    labels = np.full(inside.shape, cv2.GC_BGD, np.uint8)
    labels[near & ~inside] = cv2.GC_PR_BGD
    labels[inside] = cv2.GC_PR_FGD
    labels[sure_fg] = cv2.GC_FGD
    foreground = int(inside.sum())
    background = int((~inside).sum())
    if foreground < 32 or background < 32:
        warnings.warn(f"GrabCut: the prior leaves {foreground} foreground and {background} "
                      "background pixels, too few to learn colours; using it as the mask",
                      stacklevel=3)
        return None
    person = _run_grabcut(image, labels, iterations)
    # Drop specks: keep the parts that touch the sure foreground or lie mostly inside the prior.
    count, components = cv2.connectedComponents(person.astype(np.uint8), connectivity=8)
    area = np.bincount(components.ravel(), minlength=count)
    within = np.bincount(components[inside], minlength=count)
    keep = within >= 0.5 * area
    keep[np.unique(components[sure_fg & person])] = True
    keep[0] = False
    return keep[components].astype(np.float32)


def _run_grabcut(rgb: np.ndarray, labels: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut from ``labels`` (OpenCV's GC_* per pixel; updated in place) on a uint8 RGB image:
    the pixels it calls (probably) foreground, as a bool mask."""
    import cv2

    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means on OpenCV's global random generator, so the
    # result depended on whatever used it before (measured on a shared photo: IoU 0.88 or 0.97
    # by call order). A fixed seed makes the same photo give the same mask every time.
    cv2.setRNGSeed(GRABCUT_SEED)
    cv2.grabCut(rgb[..., ::-1].copy(), labels, None, bgd_model, fgd_model, iterations,
                cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _disk(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _as_float_rgb(rgb: np.ndarray) -> np.ndarray:
    """float32 ``[H, W, 3]`` in ``[0, 1]`` from uint8 or float RGB."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"rgb must be [H, W, 3], got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / 255.0
    return np.clip(rgb.astype(np.float32), 0.0, 1.0)


