"""Reading the user's photo and mask files.

A photo is read with Pillow (PNG, JPEG, WebP and whatever else Pillow reads), turned upright by
its EXIF orientation and converted to 8-bit RGB; a real alpha channel (one with transparent
parts, see :func:`mask_from_alpha`) is kept as a float mask. Sizes are checked on the header
before any pixel is decoded, so an oversized file fails fast with our message, not with
Pillow's decompression-bomb error (Pillow's own limit is left as it is).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oneshot_avatar.errors import BadFileError, UserError

MIN_SIDE = 128  # px, the photo's short side
MAX_PIXELS = 50_000_000  # 50 megapixels
MIN_PERSON_FRACTION = 0.005  # a mask with fewer foreground pixels has no person in it
_MAX_FILL_FRACTION = 0.995  # a mask file with more is most likely inverted

_EXIF_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_EXIF_FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm, millimetres
_FULL_FRAME_HALF_DIAGONAL = math.hypot(36.0, 24.0) / 2  # mm, what a 35 mm equivalent refers to
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass
class Photo:
    """The photo as loaded, EXIF orientation applied."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    alpha: np.ndarray | None  # float32 [H, W] in [0, 1]; None without a real alpha channel
    path: Path
    sha256: str  # of the file's bytes
    # Field of view across the long side, degrees, from the camera's EXIF focal length (35 mm
    # equivalent); None when the file does not say.
    fov_degrees: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def load_photo(path: str | Path) -> Photo:
    """Read a photo file (PNG, JPEG, WebP, or another format Pillow reads).

    Raises ``BadFileError`` when the file is missing, empty, not an image or damaged, and
    ``UserError`` when its short side is under ``MIN_SIDE`` px or it has more than
    ``MAX_PIXELS`` pixels.
    """
    path = Path(path)
    data = _read_bytes(path, "photo")
    image = _open_image(data, path, "photo")
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _too_large(path, "photo", width * height, f"{width}x{height} px")
    if min(width, height) < MIN_SIDE:
        raise UserError(
            f"the photo is {width}x{height} px, smaller than the {MIN_SIDE} px needed on its "
            "short side: use a larger photo (the original file, not a thumbnail)",
            path=path, field="photo")
    image = _decode_upright(image, path, "photo")
    fov = exif_field_of_view(image)  # after decoding: a PNG's EXIF may follow its pixels
    rgb, alpha = _rgb_and_alpha(image)
    return Photo(rgb=rgb, alpha=mask_from_alpha(alpha), path=path,
                 sha256=hashlib.sha256(data).hexdigest(), fov_degrees=fov)


def field_of_view_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """The field of view across the long side (degrees) of a ``width x height`` image taken
    with a 35 mm equivalent focal length of ``focal_35mm`` millimetres: the equivalence is by the
    diagonal (a full-frame 36 x 24 mm sensor's), and the long side is its share of the
    diagonal."""
    return math.degrees(2 * math.atan(_full_frame_half_long_side(width, height) / focal_35mm))


def focal_35mm_from_field_of_view(fov_degrees: float, width: int, height: int) -> float:
    """The inverse of :func:`field_of_view_from_35mm`: the 35 mm equivalent focal length
    (millimetres) whose long-side field of view is ``fov_degrees``."""
    return _full_frame_half_long_side(width, height) / math.tan(math.radians(fov_degrees) / 2)


def _full_frame_half_long_side(width: int, height: int) -> float:
    """Half the long side (mm) of a ``width x height`` frame with a full-frame diagonal."""
    return _FULL_FRAME_HALF_DIAGONAL * max(width, height) / math.hypot(width, height)


def exif_with_focal_length(fov_degrees: float, width: int, height: int) -> bytes:
    """EXIF bytes (for Pillow's ``save(..., exif=)``, PNG or JPEG) that say what a camera with
    this long-side field of view writes: ``FocalLengthIn35mmFilm``, whole millimetres."""
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_EXIF_FOCAL_35MM] = round(
        focal_35mm_from_field_of_view(fov_degrees, width, height))
    return exif.tobytes()


def exif_field_of_view(image) -> float | None:
    """The long side's field of view of a Pillow image from its EXIF ``FocalLengthIn35mmFilm``
    (phones and most cameras write it), or None: no EXIF, no such field, or a value outside
    8-1200 mm (0 means "unknown" in EXIF)."""
    try:
        focal = image.getexif().get_ifd(_EXIF_IFD).get(_EXIF_FOCAL_35MM)
        focal = float(focal) if focal is not None else None
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, AttributeError):
        return None
    if focal is None or not 8.0 <= focal <= 1200.0:
        return None
    return field_of_view_from_35mm(focal, *image.size)


def load_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Read a person mask (any image Pillow reads) for a photo of ``size = (width, height)``.

    The mask is the image's alpha channel when it has transparent parts, else its
    grey level (the brightest channel of a colour image); 1 = person. Returns float32 ``[H, W]``
    in ``[0, 1]``. The mask must have the photo's size after both are turned upright by their
    EXIF orientation, and must mark a person.
    """
    path = Path(path)
    width, height = (int(v) for v in size)
    image = _open_image(_read_bytes(path, "mask"), path, "mask")
    mask_size = _upright_size(image)
    if mask_size != (width, height):
        hint = ""
        if mask_size == (height, width):
            hint = " (it is turned by 90 degrees: check the EXIF orientation of both files)"
        raise UserError(
            f"the mask is {mask_size[0]}x{mask_size[1]} px but the photo is {width}x{height} px"
            f"{hint}: give a mask made for this photo, of the same size", path=path, field="mask")
    image = _decode_upright(image, path, "mask")
    rgb, alpha = _rgb_and_alpha(image, keep_grey=True)
    mask = mask_from_alpha(alpha)
    if mask is None:
        mask = rgb.astype(np.float32).max(axis=2) / 255.0 if rgb.ndim == 3 else rgb
    mask = np.ascontiguousarray(np.clip(mask, 0.0, 1.0), dtype=np.float32)
    check_person(mask, "mask", path=path)
    fill = float((mask > 0.5).mean())
    if fill > _MAX_FILL_FRACTION:
        raise UserError(
            f"the mask marks {fill:.1%} of the photo as the person: the person must be white "
            "(or opaque) and the background black (or transparent); is the mask inverted?",
            path=path, field="mask")
    return mask


def mask_from_alpha(alpha: np.ndarray | None) -> np.ndarray | None:
    """The person mask from an alpha channel (uint8, or float in ``[0, 1]``), float32 ``[H, W]``.

    ``None`` when there is no alpha or it is (almost) fully opaque: fewer than
    ``MIN_PERSON_FRACTION`` of its pixels below 0.5. Such an alpha says nothing about the person
    (real photos carry a few stray transparent pixels)."""
    if alpha is None:
        return None
    alpha = np.asarray(alpha)
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be [H, W], got shape {alpha.shape}")
    if alpha.dtype == np.uint8:
        alpha = alpha.astype(np.float32) / 255.0
    alpha = np.clip(np.nan_to_num(alpha.astype(np.float32)), 0.0, 1.0)
    if float((alpha < 0.5).mean()) < MIN_PERSON_FRACTION:
        return None
    return np.ascontiguousarray(alpha)


def check_person(mask: np.ndarray, field: str, *, path: str | Path | None = None) -> None:
    """Raise ``UserError`` unless at least ``MIN_PERSON_FRACTION`` of the mask's pixels are the
    person (> 0.5), or when the mask holds NaN/inf."""
    mask = np.asarray(mask)
    if mask.size == 0:
        raise UserError("the mask is empty (0 pixels)", path=path, field=field)
    if not np.isfinite(mask).all():
        raise UserError("the mask holds NaN or infinite values: give values in [0, 1]",
                        path=path, field=field)
    fraction = float((mask > 0.5).mean())
    if fraction < MIN_PERSON_FRACTION:
        raise UserError(
            f"no person in the mask: {fraction:.2%} of its pixels are foreground (> 0.5), at "
            f"least {MIN_PERSON_FRACTION:.1%} are needed; the person must be white (or opaque) "
            "and the background black (or transparent), or leave the mask out",
            path=path, field=field)


# --------------------------------------------------------------------------------------------
# Pillow plumbing


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.exists():
        raise BadFileError(f"the {what} file does not exist: check the path", path=path)
    if path.is_dir():
        raise BadFileError(f"this is a folder, not a {what} image file", path=path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadFileError(f"cannot read the {what} file: {error.strerror or error}",
                           path=path) from error
    if not data:
        raise BadFileError(f"the {what} file is empty (0 bytes): give a PNG, JPEG or WebP image",
                           path=path)
    return data


def _open_image(data: bytes, path: Path, what: str):
    """A lazily opened Pillow image: the header is read, no pixels are decoded yet."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Between Pillow's limit and twice it Pillow only warns; our own size check follows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        raise _too_large(path, what, int(found.group(1)) if found else None) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise BadFileError(
            f"not an image file that can be read ({type(error).__name__}: {error}): give the "
            f"{what} as PNG, JPEG or WebP", path=path) from error


def _too_large(path: Path, what: str, pixels: int | None, dims: str = "") -> UserError:
    size = f"{pixels / 1e6:.1f} megapixels" if pixels else "too many pixels"
    if dims:
        size = f"{dims} = {size}"
    return UserError(
        f"the {what} is {size}, over the limit of {MAX_PIXELS // 1_000_000} megapixels: "
        "downscale it (for example to 4000 px on the long side) and try again",
        path=path, field=what)


def _upright_size(image) -> tuple[int, int]:
    """``(width, height)`` after EXIF orientation, from the header alone."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):
        orientation = 1
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def _decode_upright(image, path: Path, what: str):
    """Decode the pixels (the first frame of an animation) and apply the EXIF orientation."""
    from PIL import ImageOps

    try:
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise BadFileError(
            f"the {what} file is damaged or truncated ({error}): save it again as PNG or JPEG",
            path=path) from error
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as error:
        warnings.warn(f"{path}: unreadable EXIF orientation ({error}); using the image as stored",
                      stacklevel=3)
        return image


def _rgb_and_alpha(image, *, keep_grey: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """8-bit RGB ``[H, W, 3]`` (``[H, W]`` float32 in [0, 1] for grey images with ``keep_grey``)
    and the alpha channel as uint8 ``[H, W]`` or ``None``.

    16-bit and 32-bit integer grey (``I;16*``, ``I``) are read as 0..65535; float grey (``F``) as
    0..1 when its maximum is at most 1, else as 0..255.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        values = np.asarray(image).astype(np.float64)
        if mode == "F":
            top = 1.0 if np.nanmax(values, initial=0.0) <= 1.0 else 255.0
        else:
            top = 65535.0
        grey = np.clip(np.nan_to_num(values / top), 0.0, 1.0)
        if keep_grey:
            return grey.astype(np.float32), None
        grey8 = np.round(grey * 255.0).astype(np.uint8)
        return np.repeat(grey8[..., None], 3, axis=2), None
    has_alpha = mode in _ALPHA_MODES or (
        "transparency" in image.info and mode in ("1", "L", "P", "RGB"))
    if has_alpha:
        rgba = np.array(image.convert("RGBA"), dtype=np.uint8)
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.array(image.convert("RGB"), dtype=np.uint8), None
