"""The subject of a reconstruction: the photo (EXIF-oriented, RGB, alpha), the person mask
(from the alpha channel, a mask file, an ONNX matting model or GrabCut), and the square working
image cut from the photo by a :class:`CropBox`."""

from __future__ import annotations

from oneshot_avatar.subject.crop import CropBox, person_box
from oneshot_avatar.subject.matting import OnnxMatting, grabcut_mask, refine_segmentation
from oneshot_avatar.subject.photo import (
    MAX_PIXELS,
    MIN_PERSON_FRACTION,
    MIN_SIDE,
    Photo,
    check_person,
    load_mask,
    load_photo,
    mask_from_alpha,
)
from oneshot_avatar.subject.working import MASK_SOURCES, Subject, make_subject

__all__ = [
    "MASK_SOURCES", "MAX_PIXELS", "MIN_PERSON_FRACTION", "MIN_SIDE", "CropBox", "OnnxMatting",
    "Photo", "Subject", "check_person", "grabcut_mask", "load_mask", "load_photo",
    "make_subject", "mask_from_alpha", "person_box", "refine_segmentation",
]
