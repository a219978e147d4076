"""The 52 ARKit-named face units of the open default body (its ``"arkit52"`` expression space).

Each coefficient is 0..1 (0 = neutral, 1 = the full shape). The order is fixed: it is the column
order of ``MotionClip.expression`` when ``expression_space == "arkit52"`` and of the open body's
expression blend shapes.
"""

from __future__ import annotations

ARKIT_FACE_UNITS: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)  # fmt: skip

ARKIT_FACE_UNIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_FACE_UNITS)}

assert len(ARKIT_FACE_UNITS) == 52 and len(ARKIT_FACE_UNIT_INDEX) == 52
