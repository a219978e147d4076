"""MotionClip: validation, helpers, torch export, the ARKit unit list."""

from __future__ import annotations

import numpy as np
import pytest

from oneshot_avatar.body.smplx_layout import POSE_PARAM_JOINTS
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import ARKIT_FACE_UNITS, MotionClip


def _random_clip(num_frames: int = 5, fps: float = 30.0, seed: int = 0) -> MotionClip:
    rng = np.random.default_rng(seed)
    return MotionClip.from_full_pose(
        rng.normal(0, 0.3, (num_frames, 55, 3)), rng.normal(0, 0.5, (num_frames, 3)), fps,
        expression=rng.uniform(0, 1, (num_frames, 52)), expression_space="arkit52",
        betas=rng.normal(size=10), name="random", source="test")


def test_fields_are_float32_with_documented_shapes():
    clip = _random_clip(7)
    assert clip.num_frames == 7
    assert clip.duration == pytest.approx(6 / 30)
    expected = {"global_orient": (7, 3), "body_pose": (7, 21, 3), "jaw_pose": (7, 3),
                "leye_pose": (7, 3), "reye_pose": (7, 3), "left_hand_pose": (7, 15, 3),
                "right_hand_pose": (7, 15, 3), "transl": (7, 3), "expression": (7, 52)}
    for name, shape in expected.items():
        value = getattr(clip, name)
        assert value.shape == shape, name
        assert value.dtype == np.float32, name
    assert clip.betas.dtype == np.float32


def test_full_pose_round_trip_and_joint_order():
    clip = _random_clip()
    full = clip.full_pose()
    assert full.shape == (5, 55, 3)
    for param, (first, count) in POSE_PARAM_JOINTS.items():
        np.testing.assert_array_equal(full[:, first:first + count].reshape(5, -1),
                                      getattr(clip, param).reshape(5, -1), err_msg=param)
    again = MotionClip.from_full_pose(full, clip.transl, clip.fps, expression=clip.expression,
                                      expression_space="arkit52", betas=clip.betas,
                                      name=clip.name)
    assert again.equals(clip)


def test_expression_defaults_to_zero_columns():
    clip = MotionClip.rest(3)
    assert clip.expression.shape == (3, 0)
    assert clip.expression_space is None
    assert np.all(clip.full_pose() == 0) and np.all(clip.transl == 0)
    assert clip.source == "builtin:rest"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("body_pose", np.zeros((4, 20, 3)), "(T, 21, 3) = (4, 21, 3)"),
        ("left_hand_pose", np.zeros((4, 45)), "(T, 15, 3) = (4, 15, 3)"),
        ("transl", np.zeros((3, 3)), "(T, 3) = (4, 3)"),
        ("jaw_pose", np.zeros((4, 3, 1)), "(T, 3) = (4, 3)"),
    ],
)
def test_wrong_shapes_name_field_and_expected_shape(field, value, expected):
    clip = MotionClip.rest(4)
    with pytest.raises(UserError) as error:
        clip.replace(**{field: value})
    assert error.value.field == field
    assert expected in str(error.value)


def test_nan_and_bad_fps_are_refused():
    clip = MotionClip.rest(4)
    transl = np.zeros((4, 3))
    transl[2, 1] = np.nan
    with pytest.raises(UserError, match="NaN") as error:
        clip.replace(transl=transl)
    assert error.value.field == "transl"
    for fps in (0, -30, float("inf"), "fast"):
        with pytest.raises(UserError) as error:
            clip.replace(fps=fps)
        assert error.value.field == "fps"


def test_expression_space_rules():
    clip = MotionClip.rest(2)
    with pytest.raises(UserError) as error:  # columns without a space
        clip.replace(expression=np.zeros((2, 10)))
    assert error.value.field == "expression_space"
    with pytest.raises(UserError):  # arkit52 needs 52 columns
        clip.replace(expression=np.zeros((2, 10)), expression_space="arkit52")
    with pytest.raises(UserError, match="0..1"):  # arkit52 coefficients are 0..1
        clip.replace(expression=np.full((2, 52), 1.5), expression_space="arkit52")
    with pytest.raises(UserError):  # a space without columns
        clip.replace(expression_space="smplx-pca")
    with pytest.raises(UserError):
        clip.replace(expression=np.zeros((2, 101)), expression_space="smplx-pca")
    ok = clip.replace(expression=np.full((2, 10), -3.0), expression_space="smplx-pca")
    assert ok.num_expressions == 10


def test_slice_uses_python_semantics():
    clip = _random_clip(10)
    part = clip.slice(2, 5)
    assert part.num_frames == 3
    np.testing.assert_array_equal(part.body_pose, clip.body_pose[2:5])
    np.testing.assert_array_equal(part.expression, clip.expression[2:5])
    assert clip.slice(-2, None).num_frames == 2
    with pytest.raises(UserError):
        clip.slice(5, 5)


def test_copy_is_independent():
    clip = _random_clip()
    other = clip.copy()
    other.transl[0, 0] += 1.0
    assert not other.equals(clip)


def test_to_torch_names_shapes_and_flat():
    torch = pytest.importorskip("torch")
    clip = _random_clip(4)
    tensors = clip.to_torch("cpu", torch.float64)
    assert set(tensors) == {"global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
                            "left_hand_pose", "right_hand_pose", "transl", "expression"}
    assert tensors["body_pose"].shape == (4, 21, 3)
    assert tensors["left_hand_pose"].shape == (4, 15, 3)
    assert tensors["expression"].shape == (4, 52)
    assert tensors["transl"].dtype == torch.float64
    flat = clip.to_torch(flat=True)
    assert flat["body_pose"].shape == (4, 63) and flat["right_hand_pose"].shape == (4, 45)
    assert flat["body_pose"].dtype == torch.float32
    np.testing.assert_array_equal(flat["body_pose"].numpy(), clip.body_pose.reshape(4, 63))


def test_arkit_face_units():
    assert len(ARKIT_FACE_UNITS) == 52 and len(set(ARKIT_FACE_UNITS)) == 52
    assert ARKIT_FACE_UNITS[0] == "browDownLeft" and ARKIT_FACE_UNITS[-1] == "tongueOut"
    assert ARKIT_FACE_UNITS.index("jawOpen") == 24
    assert ARKIT_FACE_UNITS.index("eyeBlinkLeft") == 8
