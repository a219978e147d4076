"""The subject: loading photos and masks, ONNX matting, GrabCut, the crop box, the working image."""

from __future__ import annotations

import hashlib
import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.subject import (
    MAX_PIXELS,
    CropBox,
    OnnxMatting,
    Photo,
    check_person,
    grabcut_mask,
    load_mask,
    load_photo,
    make_subject,
    mask_from_alpha,
    person_box,
)
from shared_files import SHARED_DATA

# --------------------------------------------------------------------------------------------
# Test images


def quadrants(width: int = 200, height: int = 160) -> np.ndarray:
    """uint8 [H, W, 3]: red top-left, green top-right, blue bottom-left, white bottom-right."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w] = (220, 20, 20)
    image[:h, w:] = (20, 220, 20)
    image[h:, :w] = (20, 20, 220)
    image[h:, w:] = (230, 230, 230)
    return image


def save(array: np.ndarray, path: Path, *, mode: str | None = None, orientation: int | None = None,
         **options) -> Path:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    image.save(path, **options)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` (a few bytes of pixel data, never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def figure_scene(size: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A coloured stick figure (skin head, red shirt, blue trousers) on a textured green-brown
    background: float32 rgb [S, S, 3] and its true mask uint8 [S, S]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    background = np.stack([0.35 + 0.15 * np.sin(xx / 3.0), 0.55 + 0.1 * np.cos(yy / 4.0),
                           0.3 + 0.1 * np.sin((xx + yy) / 5.0)], axis=-1)
    background += rng.normal(0.0, 0.04, background.shape)
    truth = np.zeros((size, size), np.uint8)
    s = size / 160
    cv2.circle(truth, (round(80 * s), round(30 * s)), round(14 * s), 1, -1)
    cv2.rectangle(truth, (round(60 * s), round(45 * s)), (round(100 * s), round(100 * s)), 1, -1)
    cv2.rectangle(truth, (round(62 * s), round(100 * s)), (round(76 * s), round(150 * s)), 1, -1)
    cv2.rectangle(truth, (round(84 * s), round(100 * s)), (round(98 * s), round(150 * s)), 1, -1)
    cv2.line(truth, (round(60 * s), round(50 * s)), (round(35 * s), round(95 * s)), 1, round(9 * s))
    cv2.line(truth, (round(100 * s), round(50 * s)), (round(125 * s), round(95 * s)), 1,
             round(9 * s))
    colours = np.empty((size, size, 3), np.float32)
    colours[:] = (0.85, 0.2, 0.25)
    colours[yy < 45 * s] = (0.95, 0.8, 0.65)
    colours[yy >= 100 * s] = (0.15, 0.2, 0.6)
    image = background
    inside = truth > 0
    image[inside] = colours[inside] + rng.normal(0.0, 0.03, (int(inside.sum()), 3))
    return np.clip(image, 0.0, 1.0).astype(np.float32), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / (a | b).sum())


def shared_image(name: str) -> Path:
    path = SHARED_DATA / "images" / name
    if not path.exists():
        pytest.skip(f"real test image {path} is absent (tests expect ../shared/data beside "
                    "the repository)")
    return path


# --------------------------------------------------------------------------------------------
# load_photo


@pytest.mark.parametrize("suffix, options, tolerance", [
    (".png", {}, 0), (".jpg", {"quality": 95}, 12), (".webp", {"lossless": True}, 0),
    (".webp", {"quality": 90}, 16),
])
def test_load_photo_formats(tmp_path, suffix, options, tolerance):
    array = quadrants()
    path = save(array, tmp_path / f"photo{suffix}", **options)
    photo = load_photo(path)
    assert isinstance(photo, Photo)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (160, 200, 3)
    assert photo.size == (200, 160)
    assert photo.alpha is None
    assert photo.path == path
    assert photo.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # Compare away from the quadrant borders (lossy codecs smear them).
    for y, x in [(40, 50), (40, 150), (120, 50), (120, 150)]:
        assert np.abs(photo.rgb[y, x].astype(int) - array[y, x]).max() <= tolerance


@pytest.mark.parametrize("suffix, orientation, turns", [
    (".jpg", 6, -1),  # stored image turned 90 degrees clockwise for display
    (".png", 8, 1),   # ... counter-clockwise
    (".webp", 3, 2),  # ... by 180 degrees
])
def test_load_photo_applies_exif_orientation(tmp_path, suffix, orientation, turns):
    stored = quadrants(200, 160)
    path = save(stored, tmp_path / f"turned{suffix}", orientation=orientation,
                **({"quality": 95} if suffix == ".jpg" else {"lossless": True}
                   if suffix == ".webp" else {}))
    photo = load_photo(path)
    expected = np.rot90(stored, k=turns)
    assert photo.rgb.shape == expected.shape
    tolerance = 12 if suffix == ".jpg" else 0
    h, w = expected.shape[:2]
    for y, x in [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4),
                 (3 * h // 4, 3 * w // 4)]:
        assert np.abs(photo.rgb[y, x].astype(int) - expected[y, x]).max() <= tolerance


def test_load_photo_modes(tmp_path):
    rgb = quadrants()
    grey = rgb.mean(axis=2).astype(np.uint8)
    # Greyscale: three equal channels.
    photo = load_photo(save(grey, tmp_path / "grey.png"))
    assert photo.rgb.shape == (160, 200, 3) and (photo.rgb == grey[..., None]).all()
    # 16-bit greyscale is scaled down, not clipped.
    grey16 = (np.linspace(0, 65535, 200)[None, :] * np.ones((160, 1))).astype(np.uint16)
    photo = load_photo(save(grey16, tmp_path / "grey16.png"))
    assert photo.rgb.dtype == np.uint8
    np.testing.assert_allclose(photo.rgb[0, :, 0], grey16[0] / 257.0, atol=0.6)
    # Palette without transparency.
    Image.fromarray(rgb).quantize(colors=4).save(tmp_path / "palette.png")
    photo = load_photo(tmp_path / "palette.png")
    assert photo.alpha is None and (photo.rgb == rgb).all()
    # Bilevel.
    bilevel = np.where(grey > 100, 255, 0).astype(np.uint8)
    photo = load_photo(save(bilevel, tmp_path / "bilevel.png", mode="1"))
    assert set(np.unique(photo.rgb)) <= {0, 255}
    # CMYK JPEG.
    photo = load_photo(save(rgb, tmp_path / "cmyk.jpg", mode="CMYK", quality=95))
    assert np.abs(photo.rgb[40, 50].astype(int) - rgb[40, 50]).max() <= 16


def test_load_photo_alpha(tmp_path):
    rgb = quadrants()
    alpha = np.zeros((160, 200), np.uint8)
    alpha[30:140, 60:140] = 255
    alpha[30:140, 60] = 128
    photo = load_photo(save(np.dstack([rgb, alpha]), tmp_path / "cutout.png"))
    assert photo.alpha is not None and photo.alpha.dtype == np.float32
    np.testing.assert_allclose(photo.alpha, alpha / 255.0, atol=1e-6)
    assert (photo.rgb[35, 100] == rgb[35, 100]).all()
    # Grey + alpha, and a palette with a transparent index, keep their alpha too.
    photo = load_photo(save(np.dstack([rgb[..., 0], alpha]), tmp_path / "la.png"))
    assert photo.alpha is not None and (photo.alpha > 0.5).sum() == (alpha >= 128).sum()
    palette = Image.fromarray(np.dstack([rgb, alpha])).quantize(
        colors=8, method=Image.Quantize.FASTOCTREE)
    palette.save(tmp_path / "pa.png")
    assert load_photo(tmp_path / "pa.png").alpha is not None
    # Fully opaque alpha, or a few stray transparent pixels, are no mask.
    opaque = np.dstack([rgb, np.full((160, 200), 255, np.uint8)])
    assert load_photo(save(opaque, tmp_path / "opaque.png")).alpha is None
    opaque[10:13, 10:13, 3] = 0
    assert load_photo(save(opaque, tmp_path / "stray.png")).alpha is None


@pytest.mark.parametrize("content", [b"", b"hello, this is not an image\n", b"\x89PNG\r\n\x1a\n"])
def test_load_photo_not_an_image(tmp_path, content):
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(BadFileError) as info:
        load_photo(path)
    assert str(path) in str(info.value)
    assert "PNG, JPEG or WebP" in str(info.value)


def test_load_photo_missing_folder_truncated(tmp_path):
    with pytest.raises(UserError, match="does not exist") as info:
        load_photo(tmp_path / "nowhere.jpg")
    assert "nowhere.jpg" in str(info.value)
    with pytest.raises(BadFileError, match="folder"):
        load_photo(tmp_path)
    data = save(quadrants(), tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadFileError, match="damaged or truncated"):
        load_photo(tmp_path / "cut.png")


def test_load_photo_size_limits(tmp_path):
    with pytest.raises(UserError, match="128 px") as info:
        load_photo(save(quadrants(300, 127), tmp_path / "small.png"))
    assert "300x127" in str(info.value) and info.value.field == "photo"
    assert load_photo(save(quadrants(128, 128), tmp_path / "edge.png")).size == (128, 128)
    # Over 50 MP: refused from the header, before decoding (these files hold no real pixels).
    # 100 MP makes Pillow warn, 400 MP makes it raise its own decompression-bomb error.
    for width, height in [(8000, 7000), (10000, 10000), (20000, 20000), (70000, 70000)]:
        path = png_header_only(tmp_path / f"huge_{width}.png", width, height)
        start = time.perf_counter()
        with pytest.raises(UserError, match="50 megapixels") as info, warnings.catch_warnings():
            warnings.simplefilter("error")
            load_photo(path)
        assert time.perf_counter() - start < 1.0
        assert f"{width * height / 1e6:.1f} megapixels" in str(info.value)
        assert "downscale" in str(info.value) and not isinstance(info.value, BadFileError)
    assert MAX_PIXELS == 50_000_000


# --------------------------------------------------------------------------------------------
# masks


def test_load_mask_grey_and_alpha(tmp_path):
    mask = np.zeros((160, 200), np.uint8)
    mask[20:150, 70:130] = 255
    mask[20:150, 70] = 128
    loaded = load_mask(save(mask, tmp_path / "mask.png"), (200, 160))
    assert loaded.dtype == np.float32 and loaded.shape == (160, 200)
    np.testing.assert_allclose(loaded, mask / 255.0, atol=1e-6)
    # A colour mask (person drawn red on black) uses the brightest channel.
    colour = np.zeros((160, 200, 3), np.uint8)
    colour[mask == 255] = (255, 0, 0)
    assert (load_mask(save(colour, tmp_path / "red.png"), (200, 160))[mask == 255] == 1).all()
    # A cut-out (transparent background, white everywhere) uses the alpha.
    cutout = np.dstack([np.full((160, 200, 3), 255, np.uint8), mask])
    np.testing.assert_allclose(load_mask(save(cutout, tmp_path / "cutout.png"), (200, 160)),
                               mask / 255.0, atol=1e-6)
    # 16-bit masks are scaled by 65535.
    mask16 = mask.astype(np.uint16) * 257
    np.testing.assert_allclose(load_mask(save(mask16, tmp_path / "mask16.png"), (200, 160)),
                               mask / 255.0, atol=1e-6)


def test_load_mask_size_must_match_photo(tmp_path):
    mask = np.zeros((160, 200), np.uint8)
    mask[20:150, 70:130] = 255
    path = save(mask, tmp_path / "mask.png")
    with pytest.raises(UserError) as info:
        load_mask(path, (200, 170))
    message = str(info.value)
    assert "200x160" in message and "200x170" in message and str(path) in message
    with pytest.raises(UserError, match="turned by 90 degrees"):
        load_mask(path, (160, 200))
    # A mask whose EXIF orientation makes it upright at the photo's size is accepted, turned.
    turned = save(mask, tmp_path / "turned.png", orientation=6)
    loaded = load_mask(turned, (160, 200))
    np.testing.assert_allclose(loaded, np.rot90(mask, k=-1) / 255.0)


def test_load_mask_without_person_or_inverted(tmp_path):
    empty = save(np.zeros((160, 200), np.uint8), tmp_path / "black.png")
    with pytest.raises(UserError, match="no person in the mask") as info:
        load_mask(empty, (200, 160))
    assert info.value.field == "mask" and str(empty) in str(info.value)
    white = save(np.full((160, 200), 255, np.uint8), tmp_path / "white.png")
    with pytest.raises(UserError, match="inverted"):
        load_mask(white, (200, 160))
    (tmp_path / "text.png").write_text("not a mask")
    with pytest.raises(BadFileError, match="PNG, JPEG or WebP"):
        load_mask(tmp_path / "text.png", (200, 160))


def test_check_person_and_mask_from_alpha():
    mask = np.zeros((100, 100), np.float32)
    mask[:4, :10] = 1.0  # 0.4 % of the pixels
    with pytest.raises(UserError, match="0.40%") as info:
        check_person(mask, "prior")
    assert info.value.field == "prior"
    mask[:6, :10] = 1.0  # 0.6 %
    check_person(mask, "prior")
    mask[50, 50] = np.nan
    with pytest.raises(UserError, match="NaN"):
        check_person(mask, "prior")

    assert mask_from_alpha(None) is None
    assert mask_from_alpha(np.full((20, 30), 255, np.uint8)) is None
    alpha = np.zeros((20, 30), np.uint8)
    alpha[5:15, 10:20] = 255
    result = mask_from_alpha(alpha)
    assert result.dtype == np.float32 and result.max() == 1.0 and result.sum() == 100
    np.testing.assert_array_equal(mask_from_alpha(alpha / 255.0), result)


# --------------------------------------------------------------------------------------------
# ONNX matting


def _channel_mean_model(path: Path, *, height=None, width=None, output: str = "logits",
                        channels_last: bool = False) -> Path:
    """A tiny ONNX model: the person is where the channel mean of the input exceeds 0.5.

    ``output``: ``"logits"`` 20 * (mean - 0.5) [N,1,H,W]; ``"alpha"`` the mean itself;
    ``"two-class"`` logits [N,2,H/2,W/2] (background, person) at half resolution."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["N", height or "H", width or "W"]
    shape = [dims[0], dims[1], dims[2], 3] if channels_last else [dims[0], 3, dims[1], dims[2]]
    nodes, inits = [], [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
                        helper.make_tensor("gain", TensorProto.FLOAT, [], [20.0])]
    source = "image"
    if channels_last:
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
        source = "nchw"
    nodes.append(helper.make_node("ReduceMean", [source], ["mean"], axes=[1], keepdims=1))
    if output == "alpha":
        nodes.append(helper.make_node("Identity", ["mean"], ["out"]))
    else:
        nodes += [helper.make_node("Sub", ["mean", "half"], ["centred"]),
                  helper.make_node("Mul", ["centred", "gain"], ["logit"])]
        if output == "logits":
            nodes.append(helper.make_node("Identity", ["logit"], ["out"]))
        else:
            nodes += [helper.make_node("Neg", ["logit"], ["negative"]),
                      helper.make_node("Concat", ["negative", "logit"], ["both"], axis=1),
                      helper.make_node("AveragePool", ["both"], ["out"], kernel_shape=[2, 2],
                                       strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "channel_mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "C", "h", "w"])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _bright_person(height: int = 150, width: int = 110,
                   level: int = 230) -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((height, width), np.uint8)
    cv2.ellipse(truth, (width // 2, height // 2), (width // 5, height // 3), 0, 0, 360, 1, -1)
    rgb = np.full((height, width, 3), 25, np.uint8)
    rgb[truth > 0] = level
    return rgb, truth


@pytest.mark.parametrize("kind", [
    {"output": "logits"}, {"output": "alpha"}, {"output": "two-class"},
    {"output": "logits", "height": 64, "width": 64}, {"output": "alpha", "channels_last": True},
])
def test_onnx_matting_finds_the_bright_person(tmp_path, kind):
    model = OnnxMatting(_channel_mean_model(tmp_path / "matte.onnx", **kind))
    assert model.name == "onnx:matte.onnx" and model.providers == ["CPUExecutionProvider"]
    rgb, truth = _bright_person()
    alpha = model(rgb)
    assert alpha.dtype == np.float32 and alpha.shape == truth.shape
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert iou(alpha, truth) > 0.9
    # float input in [0, 1] gives the same answer as uint8
    np.testing.assert_allclose(model(rgb / 255.0), alpha, atol=1e-5)


def test_onnx_matting_input_size_and_normalisation(tmp_path):
    dynamic = OnnxMatting(_channel_mean_model(tmp_path / "dyn.onnx"))
    assert dynamic.input_size(200, 300) == (352, 512)  # long side 512, multiples of 32
    assert dynamic.input_size(1920, 1080) == (512, 288)
    assert dynamic.input_size(100, 100) == (512, 512)
    fixed = OnnxMatting(_channel_mean_model(tmp_path / "fixed.onnx", height=64, width=96))
    assert fixed.input_size(1000, 300) == (64, 96)
    # mean/std are applied: a grey-ish person (0.6) is above 0.5 raw, below it as (x-0.5)/0.5.
    rgb, truth = _bright_person(level=153)
    assert iou(dynamic(rgb), truth) > 0.9
    normalised = OnnxMatting(tmp_path / "dyn.onnx", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert normalised(rgb).max() < 0.5


def test_onnx_matting_bad_files(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "text.onnx").write_text("this is not a model")
    with pytest.raises(BadFileError, match="not an ONNX model") as info:
        OnnxMatting(tmp_path / "text.onnx")
    assert "text.onnx" in str(info.value)
    with pytest.raises(BadFileError, match="does not exist"):
        OnnxMatting(tmp_path / "missing.onnx")
    # Two inputs (a recurrent matting model, say) are refused with their names.
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "two",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (tmp_path / "two.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(BadFileError, match="2 inputs") as info:
        OnnxMatting(tmp_path / "two.onnx")
    assert "a [1, 3, 8, 8], b [1, 3, 8, 8]" in str(info.value)
    onnx.checker.check_model(model)


def test_onnx_matting_cuda_request_without_cuda(tmp_path):
    import onnxruntime

    path = _channel_mean_model(tmp_path / "m.onnx")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        model = OnnxMatting(path, device=torch.device("cuda:0"))
        assert model.providers[0] == "CUDAExecutionProvider"
    else:
        with pytest.warns(UserWarning, match="CPU"):
            model = OnnxMatting(path, device="cuda")
        assert model.providers == ["CPUExecutionProvider"]
    rgb, truth = _bright_person()
    assert iou(model(rgb), truth) > 0.9


# --------------------------------------------------------------------------------------------
# GrabCut


@pytest.mark.parametrize("grow, shift", [(9, (4, -3)), (13, (0, 0)), (5, (-6, 5))])
def test_grabcut_improves_a_rough_prior(grow, shift):
    rgb, truth = figure_scene()
    prior = cv2.dilate(truth, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    prior = cv2.warpAffine(prior, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]),
                           truth.shape[::-1]).astype(np.float32)
    mask = grabcut_mask(rgb, prior)
    assert mask.dtype == np.float32 and mask.shape == truth.shape
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert iou(mask, truth) > 0.9
    assert iou(mask, truth) > iou(prior, truth) + 0.05


def test_grabcut_large_photo_and_degenerate_priors():
    rgb, truth = figure_scene(size=320, seed=1)
    prior = cv2.dilate(truth, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    prior = np.roll(prior, 6, axis=1).astype(np.float32)
    # Segmented at 160 px and enlarged back.
    mask = grabcut_mask((rgb * 255).astype(np.uint8), prior, max_side=160)
    assert mask.shape == truth.shape and iou(mask, truth) > 0.9
    with pytest.raises(ValueError, match="no foreground"):
        grabcut_mask(rgb, np.zeros_like(prior))
    with pytest.raises(ValueError, match="prior is"):
        grabcut_mask(rgb, prior[:10])
    with pytest.warns(UserWarning, match="too few"):
        everything = grabcut_mask(rgb, np.ones_like(prior))
    assert (everything == 1).all()


# --------------------------------------------------------------------------------------------
# CropBox


def test_crop_box_maps_points_of_every_type():
    box = CropBox(x0=-10.0, y0=20.0, size=200.0, out_size=100)
    assert box.scale == 0.5 and box.bounds == (-10.0, 20.0, 190.0, 220.0)
    assert box.to_crop((90.0, 120.0)) == (50.0, 50.0)
    assert box.from_crop([50.0, 50.0]) == [90.0, 120.0]
    assert box.to_crop([(-10, 20), (190, 220)]) == [(0.0, 0.0), (100.0, 100.0)]
    points = np.array([[0.0, 0.0], [-10.0, 20.0]], np.float32)
    mapped = box.to_crop(points)
    assert mapped.dtype == np.float32
    np.testing.assert_allclose(mapped, [[5.0, -10.0], [0.0, 0.0]])
    assert box.to_crop(np.array([[4, 6]])).dtype == np.float64
    tensor = torch.tensor([[[90.0, 120.0]]], dtype=torch.float64, requires_grad=True)
    out = box.to_crop(tensor)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1, 2) and out.dtype == torch.float64
    out.sum().backward()
    assert torch.allclose(tensor.grad, torch.full_like(tensor, 0.5))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        box.to_crop(np.zeros((4, 3)))


@settings(max_examples=60, deadline=None)
@given(x0=st.floats(-500, 500), y0=st.floats(-500, 500), size=st.floats(1, 5000),
       out_size=st.integers(1, 1024),
       points=st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)), min_size=1,
                       max_size=8))
def test_crop_box_round_trip(x0, y0, size, out_size, points):
    box = CropBox(x0=x0, y0=y0, size=size, out_size=out_size)
    xy = np.array(points, np.float64)
    np.testing.assert_allclose(box.from_crop(box.to_crop(xy)), xy, atol=1e-6 * (1 + size))
    inside = box.to_crop(np.array([[x0, y0], [x0 + size, y0 + size]]))
    np.testing.assert_allclose(inside, [[0, 0], [out_size, out_size]], atol=1e-6 * out_size)
    assert CropBox.from_dict(box.to_dict()) == box


def _blob(height: int, width: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    """A Gaussian spot at ``centre`` in this module's pixel convention (centres at +0.5)."""
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2)).astype(
        np.float32)


def _centroid(image: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]] + 0.5
    return np.array([(image * xx).sum(), (image * yy).sum()]) / image.sum()


@pytest.mark.parametrize("box", [
    CropBox(40, 30, 160, 64),        # whole pixels, shrink x2.5 (area)
    CropBox(70, 60, 32, 96),         # whole pixels, enlarge x3 (linear)
    CropBox(37.3, 28.6, 151.7, 64),  # fractional, shrink
    CropBox(61.25, 52.5, 48.5, 97),  # fractional, enlarge
])
def test_crop_resamples_with_the_same_map_as_to_crop(box):
    centre = (85.37, 77.81)
    photo = _blob(240, 260, centre, sigma=min(6.0, box.size / 12))
    cropped = box.crop(photo)
    assert cropped.shape == (box.out_size, box.out_size) and cropped.dtype == np.float32
    expected = box.to_crop(np.array(centre))
    np.testing.assert_allclose(_centroid(cropped), expected, atol=0.05 * max(1, box.scale))
    # Brightness is kept (area averaging and interpolation preserve a smooth spot's peak scale).
    assert abs(cropped.max() - 1.0) < 0.15


def test_crop_exact_cases_and_dtypes():
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(CropBox(10, 5, 40, 40).crop(photo), photo[5:45, 10:50])
    halves = CropBox(10, 6, 40, 20).crop(photo.astype(np.float32))
    blocks = photo[6:46, 10:50].astype(np.float32).reshape(20, 2, 20, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(halves, blocks, atol=1e-4)
    single = CropBox(10, 5, 40, 20).crop(photo[..., :1])
    assert single.shape == (20, 20, 1) and single.dtype == np.uint8
    nearest = CropBox(0, 0, 20, 40).crop(photo[..., 0], "nearest")
    np.testing.assert_array_equal(nearest, np.repeat(np.repeat(photo[:20, :20, 0], 2, 0), 2, 1))
    booleans = CropBox(0, 0, 20, 20).crop(photo[..., 0] > 128)
    assert booleans.dtype == np.float32
    with pytest.raises(ValueError, match="interpolation"):
        CropBox(0, 0, 20, 20).crop(photo, "cubic")


def test_crop_outside_the_photo_pads():
    photo = np.zeros((40, 50, 3), np.uint8)
    photo[:, :25] = (200, 0, 0)
    photo[:, 25:] = (0, 0, 200)
    box = CropBox(-20, -10, 60, 60)
    edge = box.crop(photo)
    assert (edge[:, :45] == (200, 0, 0)).all()       # left padding repeats the left edge
    assert (edge[:, 45:] == (0, 0, 200)).all()
    constant = box.crop(photo, pad="constant", fill=7)
    assert (constant[:10] == 7).all() and (constant[:, :20] == 7).all()
    assert (constant[50:] == 7).all() and (constant[10:50, 20:45] == (200, 0, 0)).all()
    valid = box.valid_mask((50, 40))
    assert valid.shape == (60, 60) and valid.dtype == np.float32
    assert valid.sum() == 40 * 40 and valid[10:50, 20:60].min() == 1.0
    # A box entirely outside the photo still crops (all padding).
    far = CropBox(500, 500, 10, 10)
    assert (far.crop(photo) == (0, 0, 200)).all() and far.valid_mask((50, 40)).max() == 0
    # Fractional box half-outside: valid falls off smoothly at the photo's edge.
    frac = CropBox(-5.5, 0, 20, 10).valid_mask((50, 40))
    assert frac[:, 0].max() == 0 and frac[:, -1].min() == 1 and 0 < frac[0, 2] < 1


def test_crop_box_validation_and_dict():
    box = CropBox(x0=1.5, y0=-2, size=33.25, out_size=256)
    data = box.to_dict()
    assert data == {"x0": 1.5, "y0": -2.0, "size": 33.25, "out_size": 256}
    assert CropBox.from_dict(data) == box
    with pytest.raises(UserError, match="size") as info:
        CropBox.from_dict({"x0": 0, "y0": 0, "out_size": 8})
    assert info.value.field == "crop"
    with pytest.raises(UserError, match="positive") as info:
        CropBox(0, 0, -4, 8)
    assert info.value.field == "crop.size"
    with pytest.raises(UserError, match="finite"):
        CropBox(float("nan"), 0, 4, 8)
    with pytest.raises(UserError, match="positive integer"):
        CropBox(0, 0, 4, 8.5)


# --------------------------------------------------------------------------------------------
# person_box


def test_person_box_around_the_mask():
    mask = np.zeros((300, 400), np.float32)
    mask[50:250, 180:240] = 1.0  # 60 wide, 200 tall, centre (210, 150)
    box = person_box((400, 300), 256, mask=mask, margin=0.1)
    assert box.out_size == 256 and box.size == 240
    assert all(float(v).is_integer() for v in (box.x0, box.y0, box.size))
    x0, y0, x1, y1 = box.bounds
    assert (x0 + x1) / 2 == 210 and (y0 + y1) / 2 == 150
    assert x0 <= 180 and x1 >= 240 and y0 <= 30 and y1 >= 270
    # A taller margin widens it; the box may reach past the photo.
    wide = person_box((400, 300), 256, mask=mask, margin=0.3)
    assert wide.size == 320 and wide.bounds[1] < 0


def test_person_box_from_keypoints_and_fallbacks():
    points = np.array([[100, 100], [140, 260], [120, 180], [5, 5]], np.float32)
    conf = np.array([0.9, 0.8, 0.7, 0.05])  # the last one is not confident enough
    box = person_box((300, 300), 128, points=points, conf=conf, margin=0.1)
    x0, y0, x1, y1 = box.bounds
    assert (x0 + x1) / 2 == pytest.approx(120, abs=0.5)
    assert (y0 + y1) / 2 == pytest.approx(180, abs=0.5)
    assert box.size == 160 * 1.4  # extent 160, margin 0.1 + skeleton 0.1 each side
    # An empty mask falls back to the keypoints; nothing usable gives the centre square.
    assert person_box((300, 300), 128, mask=np.zeros((300, 300)), points=points,
                      conf=conf) == person_box((300, 300), 128, points=points, conf=conf)
    centre = person_box((400, 300), 128, points=points[:1])
    assert centre == CropBox(50, 0, 300, 128)
    assert person_box((300, 500), 64) == CropBox(0, 100, 300, 64)
    with pytest.raises(ValueError, match="mask"):
        person_box((300, 500), 64, mask=np.ones((300, 500)))


# --------------------------------------------------------------------------------------------
# make_subject


def test_make_subject(tmp_path):
    rgb = quadrants(200, 160)
    photo = load_photo(save(rgb, tmp_path / "p.png"))
    mask = np.zeros((160, 200), np.float32)
    mask[30:150, 80:120] = 1.0
    box = person_box(photo.size, 64, mask=mask)
    subject = make_subject(photo, box, mask, "file")
    assert subject.image.shape == (64, 64, 3) and subject.image.dtype == np.float32
    assert 0.0 <= subject.image.min() and subject.image.max() <= 1.0
    np.testing.assert_allclose(subject.image, box.crop(rgb).astype(np.float32) / 255.0)
    assert subject.mask.shape == (64, 64) and subject.mask.dtype == np.float32
    # The person sits in the middle of the working image.
    np.testing.assert_allclose(_centroid(subject.mask), box.to_crop(np.array([100.0, 90.0])),
                               atol=0.5)
    assert subject.box is box and subject.photo is photo and subject.mask_source == "file"
    # The box reaches above and below the photo: padding is not valid, and not the person.
    assert subject.valid.min() == 0.0 and subject.mask[subject.valid == 0].max() == 0.0
    bare = make_subject(photo, box)
    assert bare.mask is None and bare.mask_source == "none"
    assert make_subject(photo, box, mask, "onnx:modnet.onnx").mask_source == "onnx:modnet.onnx"
    with pytest.raises(ValueError, match="mask_source"):
        make_subject(photo, box, mask, "magic")
    with pytest.raises(ValueError, match="mask_full"):
        make_subject(photo, box, None, "alpha")


# --------------------------------------------------------------------------------------------
# Real photos


def test_real_photo_mask_crop_and_grabcut():
    photo = load_photo(shared_image("pifu_ryota.png"))
    # Its RGBA alpha is opaque but for 45 stray pixels: not a person mask.
    assert photo.size == (512, 512) and photo.alpha is None
    truth = load_mask(shared_image("pifu_ryota_mask.png"), photo.size)
    assert 0.1 < truth.mean() < 0.2
    box = person_box(photo.size, 128, mask=truth)
    subject = make_subject(photo, box, truth, "file")
    rows = np.flatnonzero(subject.mask.max(axis=1) > 0.5)
    assert rows[0] < 0.15 * 128 and rows[-1] > 0.85 * 128  # head to feet, with a margin
    # GrabCut from a shifted, swollen silhouette recovers the person on the dark background.
    prior = cv2.dilate((truth > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8))
    prior = np.roll(prior, (8, -6), axis=(0, 1)).astype(np.float32)
    refined = grabcut_mask(photo.rgb, prior, max_side=256)
    # 0.880 measured at 256 px (0.957 at 384, 0.995 at 512, the prior 0.717). The bound was 0.9
    # while GrabCut's k-means start came from OpenCV's global generator: 2 of 6 states gave 0.97.
    assert iou(refined, truth) > 0.85 and iou(refined, truth) > iou(prior, truth) + 0.1
    # The same photo gives the same mask whatever ran before (the generator is seeded).
    cv2.setRNGSeed(12345)
    cv2.randu(np.zeros((4, 4), np.float32), 0, 1)
    assert np.array_equal(grabcut_mask(photo.rgb, prior, max_side=256), refined)


def test_real_jpeg_photo():
    photo = load_photo(shared_image("coco_000000000785.jpg"))
    assert photo.size == (640, 425) and photo.alpha is None
    box = person_box(photo.size, 96)
    assert box == CropBox(107, 0, 425, 96)
    subject = make_subject(photo, box)
    assert subject.image.shape == (96, 96, 3) and subject.valid.min() == 1.0
