"""Layer 2: phone -> viseme -> face units (the mouth shapes), as one documented table.

Visemes are Meta's 15 (Oculus Lipsync: ``sil PP FF TH DD kk CH SS nn RR aa E I O U``); the
Rhubarb Lip Sync shape each corresponds to is given for animators who know those (A closed,
B clenched teeth, C open, D wide open, E rounded, F puckered, G F/V, H L, X rest).

Each viseme sets:
    jaw        0..1 jaw opening; ``jaw_pose`` = JAW_OPEN_RADIANS * jaw about +X (open body and real
               SMPL-X alike). The open body's ``jawOpen`` unit is left at 0 so the jaw is not
               opened twice.
    units      ARKit face units of the open body (0..1), the lips' shape. ``...Left/Right`` pairs
               are written once with the stem (``mouthStretch`` = both sides).
    dominance  0..1, how strongly the viseme holds its shape against its neighbours in
               co-articulation (Cohen & Massaro): lip closures and labiodentals high, tongue
               consonants (t, d, k, g, n, l, h) low so the lips take the neighbouring vowel's
               shape.
    closed     the lips must meet (p, b, m): enforced after blending.

ARPAbet phone -> viseme (stress digits dropped; diphthongs glide between two visemes):

    P B M -> PP    F V -> FF     TH DH -> TH    T D -> DD     K G NG HH -> kk
    CH JH SH ZH -> CH             S Z -> SS      N L -> nn     R ER -> RR
    AA AH -> aa    AE EH -> E    IH IY Y -> I   AO -> O       UH UW W -> U
    AY: aa->I  AW: aa->U  EY: E->I  OW: O->U  OY: O->I       SIL -> sil
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oneshot_avatar.motion.face_units import ARKIT_FACE_UNIT_INDEX, ARKIT_FACE_UNITS

JAW_OPEN_RADIANS = 0.30  # jaw_pose rotation at jaw = 1 (about 17 degrees)


@dataclass(frozen=True)
class Viseme:
    name: str
    rhubarb: str
    jaw: float
    units: dict[str, float] = field(default_factory=dict)
    dominance: float = 0.5
    closed: bool = False


VISEMES: dict[str, Viseme] = {v.name: v for v in (
    Viseme("sil", "X", 0.0, {}, 0.9),
    Viseme("PP", "A", 0.0, {"mouthPress": 0.45, "mouthRollLower": 0.15, "mouthRollUpper": 0.10},
           1.0, closed=True),
    Viseme("FF", "G", 0.06, {"mouthRollLower": 0.55, "mouthUpperUp": 0.20, "mouthShrugUpper": 0.15},
           0.9),
    Viseme("TH", "B", 0.14, {"tongueOut": 0.35, "mouthUpperUp": 0.10}, 0.6),
    Viseme("DD", "B", 0.14, {"mouthStretch": 0.10, "mouthUpperUp": 0.10}, 0.3),
    Viseme("kk", "B", 0.18, {"mouthStretch": 0.08}, 0.2),
    Viseme("CH", "B", 0.10, {"mouthFunnel": 0.45, "mouthPucker": 0.25, "mouthUpperUp": 0.15},
           0.75),
    Viseme("SS", "B", 0.06, {"mouthStretch": 0.30, "mouthSmile": 0.15, "mouthUpperUp": 0.10},
           0.6),
    Viseme("nn", "H", 0.14, {"mouthStretch": 0.05}, 0.25),
    Viseme("RR", "E", 0.14, {"mouthPucker": 0.35, "mouthFunnel": 0.25}, 0.5),
    Viseme("aa", "D", 0.70, {"mouthLowerDown": 0.35, "mouthUpperUp": 0.10, "mouthStretch": 0.05},
           0.6),
    Viseme("E", "C", 0.45, {"mouthStretch": 0.30, "mouthSmile": 0.15, "mouthLowerDown": 0.25},
           0.55),
    Viseme("I", "B", 0.22, {"mouthSmile": 0.40, "mouthStretch": 0.35, "mouthLowerDown": 0.10},
           0.55),
    Viseme("O", "E", 0.50, {"mouthFunnel": 0.60, "mouthPucker": 0.20, "mouthLowerDown": 0.15},
           0.65),
    Viseme("U", "F", 0.18, {"mouthPucker": 0.70, "mouthFunnel": 0.35}, 0.75),
)}

PHONE_VISEMES: dict[str, tuple[str, ...]] = {
    "SIL": ("sil",),
    **dict.fromkeys(("P", "B", "M"), ("PP",)),
    **dict.fromkeys(("F", "V"), ("FF",)),
    **dict.fromkeys(("TH", "DH"), ("TH",)),
    **dict.fromkeys(("T", "D"), ("DD",)),
    **dict.fromkeys(("K", "G", "NG", "HH"), ("kk",)),
    **dict.fromkeys(("CH", "JH", "SH", "ZH"), ("CH",)),
    **dict.fromkeys(("S", "Z"), ("SS",)),
    **dict.fromkeys(("N", "L"), ("nn",)),
    **dict.fromkeys(("R", "ER"), ("RR",)),
    **dict.fromkeys(("AA", "AH"), ("aa",)),
    **dict.fromkeys(("AE", "EH"), ("E",)),
    **dict.fromkeys(("IH", "IY", "Y"), ("I",)),
    "AO": ("O",),
    **dict.fromkeys(("UH", "UW", "W"), ("U",)),
    "AY": ("aa", "I"), "AW": ("aa", "U"), "EY": ("E", "I"), "OW": ("O", "U"), "OY": ("O", "I"),
}
VOWELS = frozenset(("AA", "AH", "AE", "EH", "IH", "IY", "AO", "UH", "UW", "ER", "AY", "AW",
                    "EY", "OW", "OY"))
BILABIALS = frozenset(("P", "B", "M"))

# Face units the mouth layer writes (all others are left to the non-verbal layer).
MOUTH_UNITS: tuple[str, ...] = (
    "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper", "mouthUpperUpLeft",
    "mouthUpperUpRight", "mouthShrugUpper", "tongueOut", "mouthStretchLeft", "mouthStretchRight",
    "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthClose",
)
# Units that open the lips: zero while the lips are closed.
OPENING_UNITS: tuple[str, ...] = (
    "mouthUpperUpLeft", "mouthUpperUpRight", "tongueOut", "mouthFunnel", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthStretchLeft", "mouthStretchRight", "mouthPucker",
    "mouthSmileLeft", "mouthSmileRight", "mouthShrugUpper",
)


def visemes_for(phone: str) -> tuple[str, ...]:
    """The viseme(s) of an ARPAbet phone (unknown labels count as a neutral consonant)."""
    return PHONE_VISEMES.get(phone.upper(), ("kk",))


def viseme_vector(name: str) -> np.ndarray:
    """(53,) target: column 0 the jaw opening 0..1, columns 1..52 the ARKit face units."""
    viseme = VISEMES[name]
    out = np.zeros(1 + len(ARKIT_FACE_UNITS))
    out[0] = viseme.jaw
    for unit, value in viseme.units.items():
        names = [unit] if unit in ARKIT_FACE_UNIT_INDEX else [f"{unit}Left", f"{unit}Right"]
        for each in names:
            out[1 + ARKIT_FACE_UNIT_INDEX[each]] = value
    return out


def check_table() -> None:
    """Every phone maps to known visemes and every unit is an ARKit unit (used by the tests)."""
    for phone, names in PHONE_VISEMES.items():
        for name in names:
            if name not in VISEMES:
                raise ValueError(f"phone {phone} maps to unknown viseme {name}")
    for viseme in VISEMES.values():
        viseme_vector(viseme.name)
        for unit in viseme.units:
            names = [unit] if unit in ARKIT_FACE_UNIT_INDEX else [f"{unit}Left", f"{unit}Right"]
            if not all(n in MOUTH_UNITS for n in names):
                raise ValueError(f"viseme {viseme.name} writes {unit}, not a mouth unit")
