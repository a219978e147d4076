"""The motion codec of the JSON API has two twins: the backend's ``oneshot_avatar/motion/rows.py``
(the service's answers and render requests) and the add-on's ``blender_addon/core/rows.py``
(numpy only). What one encodes the other decodes to the same motion, and both name the same
field when a row does not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from blender_addon.core import rows as addon_rows
from blender_addon.core.errors import FieldError
from blender_addon.core.motion import motion_from_json

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import builtin_clip
from oneshot_avatar.motion import rows as backend_rows

POSE_KEYS = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
             "left_hand_pose", "right_hand_pose")


def _full_pose(clip) -> np.ndarray:
    frames = clip.num_frames
    return np.concatenate([getattr(clip, key).reshape(frames, -1, 3) for key in POSE_KEYS], axis=1)


def test_the_twins_have_the_same_keys_and_widths():
    assert backend_rows.ROW_WIDTHS == addon_rows.ROW_WIDTHS
    assert backend_rows.ROW_KEYS == addon_rows.ROW_KEYS


@pytest.mark.parametrize("name", ["wave", "talk"])
def test_what_the_service_encodes_the_addon_decodes(name):
    clip = builtin_clip(name, fps=24.0)
    data = json.loads(json.dumps(backend_rows.clip_to_json(clip)))  # through the wire
    full, transl, expression = addon_rows.pose_from_rows(data["params"])
    assert full.shape == (clip.num_frames, 55, 3)
    np.testing.assert_array_equal(full, _full_pose(clip))
    np.testing.assert_array_equal(transl, clip.transl)
    np.testing.assert_array_equal(expression, clip.expression)
    motion = motion_from_json(data)  # the add-on's Motion from the same answer
    assert motion.fps == clip.fps and motion.expression_space == clip.expression_space
    np.testing.assert_array_equal(motion.full_pose, _full_pose(clip))


def test_what_the_addon_encodes_the_service_decodes():
    rng = np.random.default_rng(5)
    full = rng.normal(0.0, 0.4, (6, 55, 3))
    transl = rng.normal(0.0, 0.2, (6, 3))
    expression = rng.uniform(0.0, 1.0, (6, 52))
    data = json.loads(json.dumps(addon_rows.rows_from_pose(full, transl, expression)))
    clip = backend_rows.clip_from_rows(data, fps=30.0)
    assert clip.num_frames == 6 and clip.expression_space == "arkit52"
    np.testing.assert_allclose(_full_pose(clip), full, rtol=0, atol=1e-6)  # float32 on the way
    np.testing.assert_allclose(clip.transl, transl, rtol=0, atol=1e-6)
    np.testing.assert_allclose(clip.expression, expression, rtol=0, atol=1e-6)
    # and back again: the add-on reads the service's answer for that clip as it sent it
    again, _, _ = addon_rows.pose_from_rows(backend_rows.clip_rows(clip))
    np.testing.assert_allclose(again, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("change, key", [
    ({"body_pose": [[0.0] * 62] * 3}, "body_pose"),
    ({"left_hand_pose": [[0.0] * 45] * 2}, "left_hand_pose"),
])
def test_both_twins_refuse_a_row_that_does_not_fit_and_name_it(change, key):
    params = {"global_orient": [[0.0] * 3] * 3, **change}
    with pytest.raises(UserError) as backend:
        backend_rows.clip_from_rows(params, fps=30.0)
    with pytest.raises(FieldError) as addon:
        addon_rows.pose_from_rows(params)
    assert backend.value.field == f"params.{key}"
    assert addon.value.field == "params" and f"'{key}'" in addon.value.message
