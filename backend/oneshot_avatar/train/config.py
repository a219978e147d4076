"""Training settings: one dataclass with documented defaults and two presets.

``fast`` is sized for a 2-core CPU (about a minute in all). ``quality_cpu`` is what the
reconstruction's quality preset trains with on every device (one view per step, 1,400 steps:
within 15 minutes on 2 cores); ``quality``, four views per step for 4,000 steps, was meant for
a GPU but gives a worse avatar there and on a CPU alike (see ``reconstruct.presets.preset``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from oneshot_avatar.errors import UserError

BACKGROUND_MODES: tuple[str, ...] = ("random", "black", "white", "grey")
BACKGROUND_COLORS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "grey": (0.5, 0.5, 0.5)}


@dataclass
class TrainConfig:
    """What to train, how long, and with which weights.

    Lengths are in optimisation steps; learning rates per parameter group (Adam). Local means
    are in units of the parent triangle (see ``oneshot_avatar.avatar.binding``), vertex offsets
    in metres.
    """

    # -- size of the problem
    resolution: int = 256  # longer image side at which every view is rendered, pixels
    steps: int = 300
    num_gaussians: int = 27_420  # initial count (>= number of triangles); used by the caller
    sh_degree: int = 1
    batch_views: int = 1  # views rendered per step
    label_probability: float = 0.5  # chance that a view of a step is a pseudo-label frame
    background: str = "random"  # "random" colour per view and step, or "black"/"white"/"grey"
    # Composite each target from the person's own colour at the mask's edge (train.foreground),
    # not from the image's edge pixels, which mix in the backdrop (a fringe on the avatar).
    foreground_edges: bool = True

    # -- Adam learning rates per group
    lr_means: float = 5e-3  # local_means (triangle units)
    lr_quats: float = 2e-3
    lr_scales: float = 1e-2  # log_scales
    lr_opacity: float = 5e-2  # opacity_logits
    lr_sh0: float = 2e-2
    lr_sh_rest: float = 1e-3
    lr_offsets: float = 1e-4  # vertex_offsets (metres)
    lr_final_factor: float = 0.1  # means and offsets decay exponentially to this factor

    # -- loss weights
    photo_l1: float = 0.8
    photo_dssim: float = 0.2
    photo_lpips: float = 0.1  # used only when the perceptual loss is a real LPIPS
    mask: float = 0.5
    label_l1: float = 0.2
    label_perceptual: float = 0.5
    reg_laplacian: float = 1000.0
    reg_offset: float = 10.0
    reg_normal: float = 0.01
    reg_position: float = 0.01
    reg_scale: float = 1.0
    position_tolerance: float = 1.0  # |normal offset| allowed without cost, triangle units
    scale_tolerance: float = 0.6  # largest local scale allowed without cost, triangle units

    # -- densification (see oneshot_avatar.avatar.densify)
    densify_from: int = 100
    densify_every: int = 50
    densify_until: int = 200
    densify_grad_threshold: float = 2e-4  # mean screen-space gradient (see train.densification)
    densify_split_scale: float = 0.35  # local scale above which a Gaussian is split, not copied
    max_gaussians: int = 33_000
    prune_opacity: float = 0.01

    # -- bookkeeping
    checkpoint_every: int = 50  # steps between checkpoints (when a checkpoint path is given)
    history_every: int = 10  # steps between entries of the loss history in the report

    @classmethod
    def fast(cls) -> TrainConfig:
        """A 2-core CPU: 256 px, 300 steps, one Gaussian per triangle (27,420 on the open
        body), SH degree 1, a little densification (at steps 100, 150, 200; to 33k at most)."""
        return cls()

    @classmethod
    def quality(cls) -> TrainConfig:
        """512 px, 4000 steps, 120k Gaussians densified up to 160k, SH degree 3, four views per
        step: first meant for a GPU, measured below :meth:`quality_cpu` on a GPU and a CPU
        alike; not a preset of the reconstruction."""
        return cls(
            resolution=512, steps=4000, num_gaussians=120_000, sh_degree=3, batch_views=4,
            lr_means=2e-3, lr_quats=1e-3, lr_scales=5e-3, lr_opacity=2.5e-2, lr_sh0=5e-3,
            lr_sh_rest=2.5e-4, lr_offsets=5e-5, lr_final_factor=0.05,
            densify_from=500, densify_every=250, densify_until=2500, max_gaussians=160_000,
            densify_split_scale=0.2, checkpoint_every=500, history_every=50,
        )  # fmt: skip

    @classmethod
    def quality_cpu(cls) -> TrainConfig:
        """The reconstruction's quality preset on every device, sized to finish within 15
        minutes on 2 CPU cores: 512 px, 120k Gaussians and SH degree 3, one view per step and
        1,400 steps (densified from step 200 every 100 until 1,000, to 150k at most). A step of
        one view costs about 0.45 s there, four views about 1.5 s."""
        return dataclasses.replace(
            cls.quality(), steps=1400, batch_views=1, densify_from=200, densify_every=100,
            densify_until=1000, max_gaussians=150_000, checkpoint_every=200, history_every=20,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict`'s output (missing keys keep their defaults); unknown keys
        and values of the wrong type or range raise :class:`UserError` naming the field."""
        if not isinstance(data, dict):
            raise UserError(f"expected a dict of training settings, got {type(data).__name__}",
                            field="train")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserError(f"unknown training setting(s) {unknown}; known: {sorted(known)}",
                            field=unknown[0])
        values: dict[str, Any] = {}
        kinds = {"int": int, "float": float, "str": str, "bool": bool}
        for name, value in data.items():
            values[name] = _coerce(name, value, kinds[str(known[name].type)])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first setting that is out of range."""
        positive_ints = ("resolution", "num_gaussians", "batch_views", "max_gaussians",
                         "densify_every", "checkpoint_every", "history_every")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise UserError(f"must be >= 1, got {getattr(self, name)}", field=name)
        if self.steps < 0:
            raise UserError(f"must be >= 0 (0 trains nothing), got {self.steps}", field="steps")
        if self.resolution < 16 or self.resolution > 4096:
            raise UserError(f"must be between 16 and 4096 pixels, got {self.resolution}",
                            field="resolution")
        if not 0 <= self.sh_degree <= 3:
            raise UserError(f"must be 0, 1, 2 or 3, got {self.sh_degree}", field="sh_degree")
        if not 0.0 <= self.label_probability <= 1.0:
            raise UserError(f"must be in [0, 1], got {self.label_probability}",
                            field="label_probability")
        if self.background not in BACKGROUND_MODES:
            raise UserError(f"must be one of {BACKGROUND_MODES}, got {self.background!r}",
                            field="background")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and (not math.isfinite(value) or value < 0):
                raise UserError(f"must be a finite number >= 0, got {value}", field=f.name)
        if not 0.0 < self.lr_final_factor <= 1.0:
            raise UserError(f"must be in (0, 1], got {self.lr_final_factor}",
                            field="lr_final_factor")
        if not 0.0 <= self.prune_opacity < 1.0:
            raise UserError(f"must be in [0, 1), got {self.prune_opacity}", field="prune_opacity")
        if self.densify_from < 0 or self.densify_until < 0:
            raise UserError("densify_from and densify_until must be >= 0", field="densify_from")
        if self.max_gaussians < self.num_gaussians:
            raise UserError(f"max_gaussians ({self.max_gaussians}) is below num_gaussians "
                            f"({self.num_gaussians})", field="max_gaussians")


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    raise UserError(f"expected {kind.__name__}, got {value!r}", field=name)


PRESETS = {"fast": TrainConfig.fast, "quality": TrainConfig.quality,
           "quality-cpu": TrainConfig.quality_cpu}


def preset(name: str) -> TrainConfig:
    """The preset called ``name`` ("fast" or "quality")."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}",
                        field="preset")
    return PRESETS[name]()
