"""``--keypoint-model FILE.onnx``: a top-down whole-body keypoint detector (RTMPose / RTMW /
DWPose-style ONNX exports, or any model with the same inputs and outputs). No weights ship with
the product; the user points at a model file.

Pre-processing: the person box (the mask's bounding box, else the whole image) is enlarged
1.25x about its centre and widened or heightened to the model's input aspect ratio, then cut
out and resized with one affine warp (``cv2.warpAffine``, bilinear, black outside) to the
input size read from the model (``[1, 3, H, W]``; 256 x 192 when dynamic). Channels RGB (or BGR
with ``rgb=False``), ``(pixel - mean) / std`` with ImageNet's mean
``(123.675, 116.28, 103.53)`` and std ``(58.395, 57.12, 57.375)``, NCHW float32.

Outputs:

* SimCC (two outputs ``[1, K, Wx]`` and ``[1, K, Hy]``; named ``*x*`` / ``*y*`` or in that
  order): location = argmax / split ratio (``Wx / W``, ``Hy / H``, 2 for the common exports),
  in input-pixel index units (pixel centres at whole numbers), as mmpose decodes them;
  confidence = the smaller of the two maxima (mmpose's ``get_simcc_maximum``), clipped to
  [0, 1].
* Heatmaps (one output ``[1, K, h, w]``): argmax with the usual quarter-pixel shift towards the
  larger neighbour, times the stride ``W / w``; confidence = the peak value clipped to [0, 1].

Locations go back to photo pixels through the inverse of the warp. ``K`` = 133 gives the
COCO-WholeBody names, 17 the COCO body names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.fit.keypoints import COCO_BODY_NAMES, COCO_WHOLEBODY_NAMES, Keypoints
from oneshot_avatar.onnx_models import open_session

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
BOX_PADDING = 1.25
DEFAULT_INPUT_SIZE = (192, 256)  # (W, H) when the model's input size is dynamic
NAMES_BY_COUNT = {133: COCO_WHOLEBODY_NAMES, 17: COCO_BODY_NAMES}


def expanded_box(box: tuple[float, float, float, float], aspect: float,
                 padding: float = BOX_PADDING) -> tuple[float, float, float, float]:
    """``(cx, cy, w, h)``: ``box (x0, y0, x1, y1)`` enlarged by ``padding`` about its centre and
    widened or heightened to ``w / h == aspect``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    w, h = max(x1 - x0, 1.0) * padding, max(y1 - y0, 1.0) * padding
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return cx, cy, w, h


def box_to_input_matrix(box: tuple[float, float, float, float], width: int,
                        height: int) -> np.ndarray:  # [2, 3]
    """The affine map in pixel-index units (centres at whole numbers, as ``cv2.warpAffine``
    uses) from the photo to the ``width x height`` input, sending the box ``(cx, cy, w, h)``
    onto the whole input."""
    cx, cy, w, h = box
    sx, sy = width / w, height / h
    # continuous: input = s * (photo - (c - size / 2)); index = continuous - 0.5
    return np.array([[sx, 0.0, sx * (0.5 - (cx - 0.5 * w)) - 0.5],
                     [0.0, sy, sy * (0.5 - (cy - 0.5 * h)) - 0.5]], dtype=np.float64)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, input_size: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``[K, Wx]``, ``[K, Hy]`` -> locations ``[K, 2]`` (input-pixel index units) and
    confidences ``[K]``."""
    width, height = input_size
    ratio_x = simcc_x.shape[-1] / width
    ratio_y = simcc_y.shape[-1] / height
    x = np.argmax(simcc_x, axis=-1) / ratio_x
    y = np.argmax(simcc_y, axis=-1) / ratio_y
    conf = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    return np.stack([x, y], axis=-1), np.clip(conf, 0.0, 1.0)


def decode_heatmaps(heatmaps: np.ndarray, input_size: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``[K, h, w]`` -> locations ``[K, 2]`` (input-pixel index units) and confidences."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    index = flat.argmax(axis=-1)
    py, px = np.divmod(index, w)
    xy = np.stack([px, py], axis=-1).astype(np.float64)
    for i in range(k):
        x, y = px[i], py[i]
        if 0 < x < w - 1:
            xy[i, 0] += 0.25 * np.sign(heatmaps[i, y, x + 1] - heatmaps[i, y, x - 1])
        if 0 < y < h - 1:
            xy[i, 1] += 0.25 * np.sign(heatmaps[i, y + 1, x] - heatmaps[i, y - 1, x])
    xy *= np.array([input_size[0] / w, input_size[1] / h])
    return xy, np.clip(flat.max(axis=-1), 0.0, 1.0)


class OnnxKeypointDetector:
    """A whole-body keypoint detector from an ONNX file (see the module docstring)."""

    def __init__(self, path: str | Path, device: str = "cpu", *,
                 mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD, rgb: bool = True,
                 padding: float = BOX_PADDING):
        path = Path(path)
        if not path.is_file():
            raise BadFileError("keypoint model file does not exist", path=path)
        self.session = open_session(
            path, device, what="keypoint model", field="keypoint_model",
            alternative="or give --keypoints FILE instead",
            expected="a whole-body keypoint detector exported to ONNX")
        self.path = path
        self.name = f"onnx:{path.name}"
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.rgb = rgb
        self.padding = padding
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise BadFileError(f"expected one image input [1, 3, H, W], found "
                               f"{[(i.name, i.shape) for i in inputs]}", path=path)
        self.input_name = inputs[0].name
        _, _, h, w = inputs[0].shape
        self.input_size = (w if isinstance(w, int) else DEFAULT_INPUT_SIZE[0],
                           h if isinstance(h, int) else DEFAULT_INPUT_SIZE[1])
        outputs = self.session.get_outputs()
        self.output_names = [o.name for o in outputs]
        ranks = [len(o.shape) for o in outputs]
        if len(outputs) >= 2 and ranks[:2] == [3, 3]:
            self.kind = "simcc"
            names = [n.lower() for n in self.output_names[:2]]
            if "y" in names[0] and "x" in names[1] and "x" not in names[0]:
                self.output_names[:2] = self.output_names[1::-1]
        elif ranks and ranks[0] == 4:
            self.kind = "heatmap"
        else:
            raise BadFileError(
                "unrecognised outputs "
                f"{[(o.name, o.shape) for o in outputs]}; expected SimCC vectors (simcc_x "
                "[1, K, Wx], simcc_y [1, K, Hy]) or heatmaps [1, K, h, w]", path=path)

    def preprocess(self, rgb: np.ndarray, box: tuple[float, float, float, float] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The network input ``[1, 3, H, W]`` and the photo -> input matrix ``[2, 3]``."""
        import cv2

        height, width = rgb.shape[:2]
        if box is None:
            box = (0.0, 0.0, float(width), float(height))
        in_w, in_h = self.input_size
        matrix = box_to_input_matrix(expanded_box(box, in_w / in_h, self.padding), in_w, in_h)
        crop = cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (in_w, in_h),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(0, 0, 0))
        if not self.rgb:
            crop = crop[..., ::-1]
        tensor = (crop.astype(np.float32) - self.mean) / self.std
        return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None]), matrix

    def __call__(self, rgb: np.ndarray, box: tuple[float, float, float, float] | None = None
                 ) -> Keypoints:
        """Keypoints of the person in ``box`` ``(x0, y0, x1, y1)`` (photo pixels; None = the
        whole image) of ``rgb`` (uint8 ``[H, W, 3]``), in photo pixels."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UserError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}",
                            field="image")
        tensor, matrix = self.preprocess(rgb, box)
        outputs = self.session.run(self.output_names, {self.input_name: tensor})
        if self.kind == "simcc":
            xy, conf = decode_simcc(outputs[0][0], outputs[1][0], self.input_size)
        else:
            xy, conf = decode_heatmaps(outputs[0][0], self.input_size)
        count = xy.shape[0]
        if count not in NAMES_BY_COUNT:
            raise BadFileError(f"the model gives {count} keypoints; supported are 133 "
                               "(COCO-WholeBody) and 17 (COCO body)", path=self.path)
        inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
        photo_index = xy @ inverse[:, :2].T + inverse[:, 2]
        photo = photo_index + 0.5  # index units -> continuous pixel coordinates
        height, width = rgb.shape[:2]
        return Keypoints(xy=photo.astype(np.float32), conf=conf.astype(np.float32),
                         names=NAMES_BY_COUNT[count], source=self.name,
                         image_size=(width, height))
