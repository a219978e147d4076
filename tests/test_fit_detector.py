"""The ONNX whole-body keypoint detector: pre-processing (box, warp, normalisation), SimCC and
heatmap decoding, and the way back to photo pixels, with tiny models built here."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper

from oneshot_avatar.errors import BadFileError
from oneshot_avatar.fit.detector import OnnxKeypointDetector
from oneshot_avatar.fit.keypoints import COCO_BODY_NAMES, COCO_WHOLEBODY_NAMES

IN_W, IN_H = 192, 256


def _save(tmp_path, nodes, outputs, name, initializers=()):
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, IN_H, IN_W])],
        outputs, initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _int64(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def constant_simcc_model(tmp_path, k=133, peak_x=100, peak_y=60, value_x=0.8, value_y=0.6):
    """Ignores the image: every keypoint peaks at bin ``peak_x`` of ``simcc_x`` (2 bins per
    input pixel) and ``peak_y`` of ``simcc_y``."""
    sx = np.zeros((1, k, IN_W * 2), np.float32)
    sy = np.zeros((1, k, IN_H * 2), np.float32)
    sx[:, :, peak_x] = value_x
    sy[:, :, peak_y] = value_y
    nodes = [
        helper.make_node("Constant", [], ["simcc_x"], value=helper.make_tensor(
            "cx", TensorProto.FLOAT, sx.shape, sx.ravel().tolist())),
        helper.make_node("Constant", [], ["simcc_y"], value=helper.make_tensor(
            "cy", TensorProto.FLOAT, sy.shape, sy.ravel().tolist())),
    ]
    outputs = [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, list(sx.shape)),
               helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, list(sy.shape))]
    return _save(tmp_path, nodes, outputs, "constant_simcc")


def spot_simcc_model(tmp_path, k=17):
    """SimCC vectors that are the image's column / row brightness profiles (2 bins per pixel):
    every keypoint lands on the brightest spot of the network input."""
    nodes = []
    for axis_name, reduce_axes, length in (("x", [1, 2], IN_W), ("y", [1, 3], IN_H)):
        nodes += [
            helper.make_node("ReduceSum", ["input", f"axes_{axis_name}"], [f"p_{axis_name}"],
                             keepdims=0),  # [1, length]
            helper.make_node("Unsqueeze", [f"p_{axis_name}", "one"], [f"u_{axis_name}"]),
            helper.make_node("Tile", [f"u_{axis_name}", "tiles"], [f"t_{axis_name}"]),
            helper.make_node("Unsqueeze", [f"t_{axis_name}", "last"], [f"e_{axis_name}"]),
            helper.make_node("Concat", [f"e_{axis_name}", f"e_{axis_name}"],
                             [f"d_{axis_name}"], axis=-1),
            helper.make_node("Reshape", [f"d_{axis_name}", f"shape_{axis_name}"],
                             [f"simcc_{axis_name}"]),
        ]
    inits = [_int64("axes_x", [1, 2]), _int64("axes_y", [1, 3]), _int64("one", [1]),
             _int64("last", [3]), _int64("tiles", [1, k, 1]),
             _int64("shape_x", [1, k, 2 * IN_W]), _int64("shape_y", [1, k, 2 * IN_H])]
    outputs = [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, k, 2 * IN_W]),
               helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, k, 2 * IN_H])]
    return _save(tmp_path, nodes, outputs, "spot_simcc", inits)


def spot_heatmap_model(tmp_path, k=17):
    """Heatmaps at stride 4: channel-summed brightness, 4 x 4 average-pooled."""
    nodes = [
        helper.make_node("ReduceSum", ["input", "channels"], ["gray"], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["pooled"], kernel_shape=[4, 4],
                         strides=[4, 4]),
        helper.make_node("Tile", ["pooled", "tiles"], ["heatmaps"]),
    ]
    inits = [_int64("channels", [1]), _int64("tiles", [1, k, 1, 1])]
    outputs = [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT,
                                             [1, k, IN_H // 4, IN_W // 4])]
    return _save(tmp_path, nodes, outputs, "spot_heatmap", inits)


def _photo_with_spot(width=400, height=300, spot=(250.5, 120.5), sigma=2.0):
    """A round bright blob centred at ``spot`` (continuous pixel coordinates)."""
    x = np.arange(width) + 0.5
    y = np.arange(height) + 0.5
    blob = np.exp(-((x[None] - spot[0]) ** 2 + (y[:, None] - spot[1]) ** 2) / (2 * sigma**2))
    return np.repeat((255 * blob).round().astype(np.uint8)[..., None], 3, axis=2)


def test_constant_simcc_decodes_to_the_expected_photo_pixels(tmp_path):
    detector = OnnxKeypointDetector(constant_simcc_model(tmp_path))
    assert detector.name == "onnx:constant_simcc.onnx"
    assert detector.input_size == (IN_W, IN_H) and detector.kind == "simcc"
    image = np.zeros((500, 400, 3), np.uint8)
    kp = detector(image, (100.0, 50.0, 200.0, 350.0))
    assert kp.names == COCO_WHOLEBODY_NAMES and kp.source == "onnx:constant_simcc.onnx"
    assert kp.image_size == (400, 500)
    # Box 100 x 300 at centre (150, 200) -> x1.25 = 125 x 375 -> widened to the 3:4 input:
    # 281.25 x 375; input pixel = 0.6827 photo pixel-widths. Bin 100 / 2 = input x 50, bin 60 / 2
    # = input y 30 (pixel-centre index units) -> photo = (index + 0.5) / scale + box corner.
    scale = IN_H / 375.0
    expected = np.array([(50 + 0.5) / scale + 150 - 281.25 / 2,
                         (30 + 0.5) / scale + 200 - 375 / 2])
    np.testing.assert_allclose(kp.xy, np.broadcast_to(expected, (133, 2)), atol=1e-3)
    np.testing.assert_allclose(kp.conf, 0.6)  # the smaller of the two maxima


@pytest.mark.parametrize("box", [None, (150.0, 40.0, 330.0, 280.0), (240.0, 100.0, 270.0, 140.0),
                                 (245.0, 115.0, 256.0, 126.0)])
def test_simcc_finds_a_bright_spot_through_the_warp(tmp_path, box):
    detector = OnnxKeypointDetector(spot_simcc_model(tmp_path))
    spot = (250.5, 120.5)
    kp = detector(_photo_with_spot(spot=spot), box)
    assert kp.names == COCO_BODY_NAMES
    # One input pixel, in photo pixels, is the resolution of the decoding.
    x0, y0, x1, y1 = box if box is not None else (0, 0, 400, 300)
    w, h = (x1 - x0) * 1.25, (y1 - y0) * 1.25
    input_pixel = max(w / IN_W, h / IN_H)
    error = np.abs(kp.xy - np.array(spot)).max()
    # At high zoom this pins the half-pixel conventions of the warp and its inverse.
    assert error <= input_pixel + 0.1, (error, input_pixel)


def test_heatmap_output_finds_the_spot(tmp_path):
    detector = OnnxKeypointDetector(spot_heatmap_model(tmp_path))
    assert detector.kind == "heatmap"
    spot = (180.5, 200.5)
    kp = detector(_photo_with_spot(spot=spot, sigma=4.0), (100.0, 60.0, 300.0, 290.0))
    input_pixel = max(200 * 1.25 / IN_W, 230 * 1.25 / IN_H)
    # Stride 4 with the quarter-cell shift: within ~2.5 input pixels.
    assert np.abs(kp.xy - np.array(spot)).max() < 2.5 * input_pixel


def test_normalisation_and_channel_order(tmp_path):
    detector = OnnxKeypointDetector(constant_simcc_model(tmp_path))
    image = np.zeros((256, 192, 3), np.uint8)
    image[..., 0] = 200
    tensor, _ = detector.preprocess(image, (0.0, 0.0, 192.0, 256.0))
    assert tensor.shape == (1, 3, IN_H, IN_W) and tensor.dtype == np.float32
    centre = tensor[0, :, IN_H // 2, IN_W // 2]
    np.testing.assert_allclose(centre, [(200 - 123.675) / 58.395, -116.28 / 57.12,
                                        -103.53 / 57.375], rtol=1e-5)
    bgr = OnnxKeypointDetector(constant_simcc_model(tmp_path), rgb=False)
    tensor, _ = bgr.preprocess(image, (0.0, 0.0, 192.0, 256.0))
    assert tensor[0, 2, IN_H // 2, IN_W // 2] == pytest.approx((200 - 103.53) / 57.375)


def test_bad_model_files(tmp_path):
    with pytest.raises(BadFileError, match="does not exist"):
        OnnxKeypointDetector(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(BadFileError, match="ONNX"):
        OnnxKeypointDetector(junk)
    path = constant_simcc_model(tmp_path, k=5)
    with pytest.raises(BadFileError, match="5 keypoints"):
        OnnxKeypointDetector(path)(np.zeros((64, 64, 3), np.uint8))
