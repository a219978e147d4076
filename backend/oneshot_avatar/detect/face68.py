"""MediaPipe's 478-point face mesh -> the 68 points of the iBUG / 300-W layout (plus OpenPose's
two pupils), so the detector's face speaks the shared keypoint vocabulary (``face_0`` ...
``face_69``) and can be compared with COCO-WholeBody face annotations.

The table was made here by reading the face mesh's topology (canonical face model indices): for
each iBUG point the mesh vertex at the same anatomical place. "Right" is the person's right
(the left of the image for a frontal face), as in iBUG and MediaPipe's own ``FACEMESH_RIGHT_*``.

=========  ===========================================  ===========================================
iBUG       where                                        MediaPipe mesh indices
=========  ===========================================  ===========================================
0-16       jaw line, right ear level -> chin (8) ->     127 234 93 132 58 172 136 149 152 378 365
           left ear level                               397 288 361 323 454 356
17-21      right brow, outer -> inner (upper edge)      70 63 105 66 107
22-26      left brow, inner -> outer                    336 296 334 293 300
27-30      nose bridge, between the eyes -> tip         168 197 5 4
31-35      nostrils, right -> subnasale (33) -> left    98 97 2 326 327
36-41      right eye: outer corner, upper outer, upper  33 160 158 133 153 144
           inner, inner corner, lower inner, lower
           outer
42-47      left eye: inner corner, upper inner, upper   362 385 387 263 373 380
           outer, outer corner, lower outer, lower
           inner
48-59      outer lips: right corner, upper (51 = top    61 40 37 0 267 270 291 321 314 17 84 91
           centre), left corner (54), lower (57 =
           bottom centre)
60-67      inner lips: right corner, upper, left        78 82 13 312 308 317 14 87
           corner (64), lower
68, 69     right, left pupil (iris centres; need the    468 473
           refined 478-point mesh)
=========  ===========================================  ===========================================
"""

from __future__ import annotations

import numpy as np

MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 136, 149, 152, 378, 365, 397, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107,  # right brow
    336, 296, 334, 293, 300,  # left brow
    168, 197, 5, 4,  # nose bridge
    98, 97, 2, 326, 327,  # nostrils
    33, 160, 158, 133, 153, 144,  # right eye
    362, 385, 387, 263, 373, 380,  # left eye
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,  # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips
)
MEDIAPIPE_PUPILS: tuple[int, int] = (468, 473)  # OpenPose face_68 (right), face_69 (left)
MEDIAPIPE_TO_FACE70: tuple[int, ...] = MEDIAPIPE_TO_IBUG68 + MEDIAPIPE_PUPILS


def face70_from_mesh(face: np.ndarray) -> np.ndarray:  # [478, >=2] -> [70, 2]
    """The iBUG 68 points and the two pupils (``face_0`` ... ``face_69``) of a 478-point face
    mesh, in the mesh's own pixel coordinates."""
    face = np.asarray(face)
    if face.ndim != 2 or face.shape[0] != 478:
        raise ValueError(f"expected the 478-point face mesh [478, 2 or 3], got {face.shape}")
    return face[list(MEDIAPIPE_TO_FACE70), :2].astype(np.float32)
