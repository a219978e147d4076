"""One place in the add-on says which expression space a body uses
(``core.smplx_rig.expression_space``): the importer's slider ranges, the motion codec's
"does this clip fit the rig" test, and the expression_space sent with Render and written by
Motion Export all ask it. It answers as the backend does (its twin,
``body.smplx_layout.expression_space``), so a clip exported from Blender plays on the server."""

from __future__ import annotations

import numpy as np
import pytest
from blender_addon.core.motion import Motion, expressions_for_rig
from blender_addon.core.smplx_rig import expression_space

PCA_NAMES = [f"expr_{k:03d}" for k in range(10)]
ARKIT_NAMES = ["jawOpen", "mouthSmileLeft", "eyeBlinkLeft"]


@pytest.mark.parametrize(("names", "space"), [
    (PCA_NAMES, "smplx-pca"), (ARKIT_NAMES, "arkit52"), ([], None), ((), None),
    (iter(PCA_NAMES[:2]), "smplx-pca"),  # any iterable, e.g. a rig's IDPropertyArray
    (["expr_001", "expr_000"], "arkit52"),  # PCA components start at expr_000
])
def test_names_say_the_space(names, space):
    assert expression_space(names) == space


def test_agrees_with_the_backend():
    from oneshot_avatar.body.smplx_layout import expression_space as backend_space

    for names in (PCA_NAMES, ARKIT_NAMES, [], ["expr_001"], ["exprs_000"]):
        assert expression_space(names) == backend_space(names), names


def _motion(space: str, width: int) -> Motion:
    frames = 2
    return Motion(full_pose=np.zeros((frames, 55, 3)), transl=np.zeros((frames, 3)),
                  expression=np.full((frames, width), 0.5), fps=30.0, expression_space=space)


def test_a_clip_plays_on_a_rig_of_its_space_only():
    pca = expressions_for_rig(_motion("smplx-pca", 12), PCA_NAMES)
    assert pca is not None and pca.shape == (2, 10)  # extra PCA columns dropped
    assert expressions_for_rig(_motion("smplx-pca", 3), ARKIT_NAMES) is None
    arkit = expressions_for_rig(_motion("arkit52", 3), ARKIT_NAMES)
    assert arkit is not None and arkit.shape == (2, 3)
    assert expressions_for_rig(_motion("arkit52", 10), PCA_NAMES) is None
