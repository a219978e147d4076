"""The subject of a reconstruction: the working image cut from the photo, with its mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oneshot_avatar.subject.crop import CropBox
from oneshot_avatar.subject.photo import Photo

# or "onnx:<file name>", or "detector:<detector name>+grabcut" (a detector's segmentation
# refined by GrabCut)
MASK_SOURCES: tuple[str, ...] = ("alpha", "file", "grabcut", "none")


@dataclass
class Subject:
    """The square working image (side ``S = box.out_size``) and where it came from."""

    image: np.ndarray  # float32 [S, S, 3] in [0, 1]
    mask: np.ndarray | None  # float32 [S, S] in [0, 1], 1 = person
    box: CropBox  # photo pixels -> working-image pixels
    photo: Photo
    mask_source: str  # "alpha" | "file" | "onnx:<name>" | "detector:<name>" | "grabcut" | "none"
    # float32 [S, S]: 1 where the working image shows the photo, 0 on padding; None = all photo
    valid: np.ndarray | None = None


def make_subject(photo: Photo, box: CropBox, mask_full: np.ndarray | None = None,
                 mask_source: str = "none") -> Subject:
    """Cut the working image (and the mask, ``[H, W]`` in photo pixels) out of the photo.

    Where the box reaches past the photo the image repeats the photo's edge pixels and the mask
    is 0; ``Subject.valid`` marks those parts.
    """
    if not (mask_source in MASK_SOURCES or mask_source.startswith(("onnx:", "detector:"))):
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, 'onnx:<name>' or "
                         "'detector:<name>', "
                         f"got {mask_source!r}")
    if (mask_full is None) != (mask_source == "none"):
        raise ValueError(f"mask_source {mask_source!r} does not fit mask_full "
                         f"{'absent' if mask_full is None else 'given'}")
    height, width = photo.rgb.shape[:2]
    image = box.crop(photo.rgb).astype(np.float32) / 255.0
    mask = None
    if mask_full is not None:
        mask_full = np.asarray(mask_full, dtype=np.float32)
        if mask_full.shape != (height, width):
            raise ValueError(f"mask_full is {mask_full.shape}, the photo is {(height, width)}")
        mask = np.clip(box.crop(mask_full, pad="constant", fill=0.0), 0.0, 1.0)
    return Subject(image=np.ascontiguousarray(image), mask=mask, box=box, photo=photo,
                   mask_source=mask_source, valid=box.valid_mask((width, height)))
