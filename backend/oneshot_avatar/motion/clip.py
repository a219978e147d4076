"""``MotionClip``: SMPL-X parameters per frame, held in numpy (no torch needed to hold one).

Frames: every pose is axis-angle (radians) relative to SMPL-X's canonical rest pose (arms out
horizontally, palms down, fingers straight). World: SMPL-X canonical, metres, +Y up, the rest body
faces +Z and its left is +X. SMPL-X rotates the whole body about the rest pelvis joint and then
adds ``transl``, so ``transl`` is *not* the pelvis position (that is ``J0 + transl``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from oneshot_avatar.body.smplx_layout import NUM_JOINTS, POSE_PARAM_JOINTS
from oneshot_avatar.errors import UserError

if TYPE_CHECKING:
    import torch

ExpressionSpace = Literal["arkit52", "smplx-pca"]
EXPRESSION_SPACES: tuple[str, ...] = ("arkit52", "smplx-pca")
MAX_SMPLX_EXPRESSIONS = 100  # SMPL-X ships at most 100 expression components

# Per-frame pose fields and their per-frame shapes, in SMPL-X joint order.
POSE_FIELDS: dict[str, tuple[int, ...]] = {
    "global_orient": (3,),
    "body_pose": (21, 3),
    "jaw_pose": (3,),
    "leye_pose": (3,),
    "reye_pose": (3,),
    "left_hand_pose": (15, 3),
    "right_hand_pose": (15, 3),
}
# Every per-frame float field (leading dimension T), with its per-frame shape; "E" = any width.
FRAME_FIELDS: dict[str, tuple[int | str, ...]] = {
    **POSE_FIELDS,
    "transl": (3,),
    "expression": ("E",),
}


def _shape_text(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@dataclass(eq=False)
class MotionClip:
    """A motion: SMPL-X parameters for ``T`` frames at ``fps`` frames per second.

    Arrays (all float32, all finite; ``T >= 1``):
        global_orient   (T, 3)      pelvis rotation in the Y-up world, axis-angle.
        body_pose       (T, 21, 3)  joints 1..21 (left_hip .. right_wrist), axis-angle.
        jaw_pose, leye_pose, reye_pose (T, 3) joints 22, 23, 24.
        left_hand_pose, right_hand_pose (T, 15, 3) joints 25..39 and 40..54, full axis-angle
                        relative to the FLAT hand (not PCA, no mean hand added).
        transl          (T, 3)      metres, added after the root rotation about the rest pelvis.
        expression      (T, E)      E may be 0; see ``expression_space``.
    Other fields:
        expression_space  "arkit52" (the open body's 52 ARKit-named face units, each 0..1, E = 52),
                          "smplx-pca" (real SMPL-X expression PCA coefficients, 1 <= E <= 100),
                          or None exactly when E == 0.
        betas             source body shape, (B,) or None; informational only (the avatar's own
                          shape is used for playback).
        name              a short name for listings.
        source            the file it came from, or "builtin:NAME".

    ``__post_init__`` converts array-likes to float32 and raises :class:`UserError` naming the
    field and the expected shape when something does not fit.
    """

    fps: float
    global_orient: np.ndarray
    body_pose: np.ndarray
    jaw_pose: np.ndarray
    leye_pose: np.ndarray
    reye_pose: np.ndarray
    left_hand_pose: np.ndarray
    right_hand_pose: np.ndarray
    transl: np.ndarray
    expression: np.ndarray = field(default=None)  # type: ignore[assignment]  # None -> (T, 0)
    expression_space: ExpressionSpace | None = None
    betas: np.ndarray | None = None
    name: str = "motion"
    source: str = ""

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        self.fps = self._check_fps(self.fps)
        for name in FRAME_FIELDS:
            if name == "expression" and getattr(self, name) is None:
                continue
            setattr(self, name, self._as_float32(name, getattr(self, name)))
        num_frames = self._check_frame_count()
        if self.expression is None:
            self.expression = np.zeros((num_frames, 0), dtype=np.float32)
        for name, per_frame in FRAME_FIELDS.items():
            self._check_shape(name, per_frame, num_frames)
        self._check_expression_space()
        if self.betas is not None:
            self.betas = self._as_float32("betas", self.betas)
            if self.betas.ndim != 1:
                self._fail("betas", f"expected shape (B,), got {self.betas.shape}")
        self.name = str(self.name)
        self.source = str(self.source)

    def _fail(self, field_name: str, message: str) -> None:
        raise UserError(message, path=self.source or None, field=field_name)

    def _check_fps(self, fps: Any) -> float:
        try:
            value = float(fps)
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value) or value <= 0:
            self._fail("fps", f"frame rate must be a positive number of frames per second, "
                              f"got {fps!r}")
        return value

    def _as_float32(self, name: str, value: Any) -> np.ndarray:
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as error:
            self._fail(name, f"expected an array of numbers, got {type(value).__name__} ({error})")
        if not np.all(np.isfinite(array)):
            bad = np.argwhere(~np.isfinite(array))[0]
            self._fail(name, f"contains NaN or infinite values (first at index "
                             f"{tuple(int(i) for i in bad)}); fix or re-export the motion")
        return array

    def _check_frame_count(self) -> int:
        if self.global_orient.ndim < 1 or self.global_orient.shape[0] < 1:
            self._fail("global_orient", f"expected shape (T, 3) with T >= 1 frames, got "
                                        f"{self.global_orient.shape}")
        return int(self.global_orient.shape[0])

    def _check_shape(self, name: str, per_frame: tuple[int | str, ...], num_frames: int) -> None:
        array: np.ndarray = getattr(self, name)
        expected = (num_frames, *per_frame)
        ok = array.ndim == len(expected) and all(
            want == "E" or have == want for have, want in zip(array.shape, expected, strict=True)
        )
        if not ok:
            self._fail(name, f"expected shape {_shape_text(('T', *per_frame))} = "
                             f"{_shape_text(expected)}, got {array.shape}")

    def _check_expression_space(self) -> None:
        width = self.expression.shape[1]
        space = self.expression_space
        if width == 0:
            if space is not None:
                self._fail("expression_space", f"is {space!r} but the clip has no expression "
                                                "columns; use None")
            return
        if space not in EXPRESSION_SPACES:
            self._fail("expression_space", f"expected one of {', '.join(EXPRESSION_SPACES)} for "
                                           f"a clip with {width} expression columns, got {space!r}")
        if space == "arkit52":
            if width != 52:
                self._fail("expression", f"'arkit52' expressions need shape (T, 52), got "
                                         f"{self.expression.shape}")
            low, high = float(self.expression.min()), float(self.expression.max())
            if low < -1e-6 or high > 1 + 1e-6:
                self._fail("expression", f"'arkit52' face-unit coefficients must lie in 0..1, "
                                         f"got values in {low:.3g}..{high:.3g}")
        elif width > MAX_SMPLX_EXPRESSIONS:
            self._fail("expression", f"'smplx-pca' expressions have at most "
                                     f"{MAX_SMPLX_EXPRESSIONS} columns, got {width}")

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.global_orient.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame: ``(T - 1) / fps`` (0 for one frame)."""
        return (self.num_frames - 1) / self.fps

    @property
    def num_expressions(self) -> int:
        """Expression width ``E`` (0 when the clip has no expression)."""
        return int(self.expression.shape[1])

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes: Any) -> MotionClip:
        """A copy with some fields changed (validated again); unchanged arrays are shared."""
        return dataclasses.replace(self, **changes)

    def copy(self) -> MotionClip:
        """A deep copy (arrays copied)."""
        changes = {name: getattr(self, name).copy() for name in FRAME_FIELDS}
        if self.betas is not None:
            changes["betas"] = self.betas.copy()
        return self.replace(**changes)

    def slice(self, start: int, stop: int) -> MotionClip:
        """Frames ``start`` (inclusive) to ``stop`` (exclusive), with Python's slice semantics
        (negative indices count from the end). The result must have at least one frame."""
        frames = range(self.num_frames)[start:stop]
        if len(frames) == 0:
            raise UserError(f"frames {start}..{stop} select nothing from a clip of "
                            f"{self.num_frames} frames", path=self.source or None, field="slice")
        sl = slice(frames.start, frames.stop)
        return self.replace(**{name: getattr(self, name)[sl].copy() for name in FRAME_FIELDS})

    def full_pose(self) -> np.ndarray:
        """All 55 joint rotations, ``(T, 55, 3)`` axis-angle in SMPL-X joint order."""
        pose = np.zeros((self.num_frames, NUM_JOINTS, 3), dtype=np.float32)
        for name, (first, count) in POSE_PARAM_JOINTS.items():
            pose[:, first:first + count] = getattr(self, name).reshape(self.num_frames, count, 3)
        return pose

    @classmethod
    def from_full_pose(
        cls,
        full_pose: np.ndarray,  # (T, 55, 3) axis-angle, SMPL-X joint order
        transl: np.ndarray,  # (T, 3) metres
        fps: float,
        *,
        expression: np.ndarray | None = None,  # (T, E)
        expression_space: ExpressionSpace | None = None,
        betas: np.ndarray | None = None,
        name: str = "motion",
        source: str = "",
    ) -> MotionClip:
        """Build a clip from a ``(T, 55, 3)`` full pose (hands relative to the flat hand)."""
        full_pose = np.asarray(full_pose, dtype=np.float32)
        if full_pose.ndim != 3 or full_pose.shape[1:] != (NUM_JOINTS, 3):
            raise UserError(f"expected shape (T, {NUM_JOINTS}, 3), got {full_pose.shape}",
                            path=source or None, field="full_pose")
        poses = {
            param: (full_pose[:, first] if count == 1 else full_pose[:, first:first + count])
            for param, (first, count) in POSE_PARAM_JOINTS.items()
        }
        return cls(fps=fps, transl=transl, expression=expression,
                   expression_space=expression_space, betas=betas, name=name, source=source,
                   **{k: v.copy() for k, v in poses.items()})

    @classmethod
    def rest(cls, num_frames: int = 1, fps: float = 30.0, *, name: str = "rest") -> MotionClip:
        """``num_frames`` frames of SMPL-X's rest pose (T-pose, zero translation)."""
        if int(num_frames) < 1:
            raise UserError(f"a clip needs at least one frame, got {num_frames}",
                            field="num_frames")
        pose = np.zeros((int(num_frames), NUM_JOINTS, 3), dtype=np.float32)
        return cls.from_full_pose(pose, np.zeros((int(num_frames), 3), np.float32), fps,
                                  name=name, source=f"builtin:{name}")

    def to_torch(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 *, flat: bool = False) -> dict[str, torch.Tensor]:
        """The per-frame parameters as tensors named as ``smplx.SMPLX.forward`` expects.

        Keys and shapes: ``global_orient (T,3)``, ``body_pose (T,21,3)``, ``jaw_pose``,
        ``leye_pose``, ``reye_pose (T,3)``, ``left_hand_pose``, ``right_hand_pose (T,15,3)``,
        ``transl (T,3)``, ``expression (T,E)``. With ``flat=True`` the joint axes are merged:
        ``body_pose (T,63)``, hands ``(T,45)`` (``smplx`` accepts either, it reshapes).
        Hands are full axis-angle relative to the flat hand: build the model with
        ``use_pca=False, flat_hand_mean=True``. ``expression`` has this clip's width E; pad or cut
        it to the model's expression count (and mind ``expression_space``). ``betas`` is not
        included: playback uses the avatar's shape. ``dtype`` defaults to float32.
        """
        import torch  # local: holding a clip must not need torch

        dtype = dtype or torch.float32
        out = {}
        for name in FRAME_FIELDS:
            array = getattr(self, name)
            if flat and name in POSE_FIELDS:
                array = array.reshape(self.num_frames, -1)
            out[name] = torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)
        return out

    def equals(self, other: MotionClip, *, atol: float = 0.0) -> bool:
        """True when all fields match: arrays within ``atol``, ``fps``, ``expression_space`` and
        ``name`` exactly. ``source`` is ignored (it names where a clip was last read from)."""
        if not isinstance(other, MotionClip):
            return False
        if (self.fps, self.expression_space, self.name) != (other.fps, other.expression_space,
                                                           other.name):
            return False
        if (self.betas is None) != (other.betas is None):
            return False
        pairs = [(getattr(self, n), getattr(other, n)) for n in FRAME_FIELDS]
        if self.betas is not None:
            pairs.append((self.betas, other.betas))
        return all(a.shape == b.shape and np.allclose(a, b, rtol=0.0, atol=atol) for a, b in pairs)

    def __repr__(self) -> str:
        space = self.expression_space or "none"
        return (f"MotionClip(name={self.name!r}, frames={self.num_frames}, fps={self.fps:g}, "
                f"duration={self.duration:.3f}s, expression={space}[{self.num_expressions}], "
                f"source={self.source!r})")
