"""Reconstruction presets: one dataclass per stage, bundled by name (``fast``, ``quality``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from oneshot_avatar.errors import UserError
from oneshot_avatar.fit import FitConfig
from oneshot_avatar.train import TrainConfig


@dataclass
class LabelConfig:
    """Pseudo-label frames: driving poses from the built-in clips and turnaround views."""

    clips: tuple[str, ...] = ("talk", "wave", "point", "shrug")
    frames_per_clip: int = 3
    azimuths: tuple[float, ...] = (45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)
    texture_resolution: int = 4
    # Fill each of the person's regions (hair, skin, clothes, shoes) from its own kind.
    regions: bool = True
    # Grow the body outward where the person mask says the person is bigger (hair, loose
    # clothes): the labels and the avatar carry that shape (oneshot_avatar.priors.outline).
    outline: bool = True


@dataclass
class Preset:
    """Everything that decides how long a reconstruction takes and how good it gets."""

    name: str
    resolution: int  # working image side, pixels
    fit: FitConfig
    labels: LabelConfig
    train: TrainConfig = field(default_factory=TrainConfig.fast)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "resolution": self.resolution,
            "fit": asdict(self.fit),
            "labels": asdict(self.labels),
            "train": self.train.to_dict(),
        }


def preset(name: str, *, steps: int | None = None, resolution: int | None = None) -> Preset:
    """The named preset, optionally with fewer/more training steps or another working size.
    ``quality`` trains with :meth:`TrainConfig.quality_cpu`'s schedule (one view per step,
    1,400 steps: within 15 minutes on 2 cores) on every device: :meth:`TrainConfig.quality`'s
    4,000 steps of four views gave the same avatar to 0.02 dB on a GPU and on a CPU, and it
    was the worse one (blue-stripes, oracle fit: input view 34.38 against 35.10 dB, ±45° 28.87
    against 29.30 dB)."""
    if name == "fast":
        chosen = Preset("fast", 256, FitConfig.fast(), LabelConfig(frames_per_clip=2, texture_resolution=4),
                        TrainConfig.fast())
    elif name == "quality":
        chosen = Preset("quality", 512, FitConfig.quality(),
                        LabelConfig(frames_per_clip=6, texture_resolution=6,
                                    azimuths=tuple(float(a) for a in range(30, 360, 30))),
                        TrainConfig.quality_cpu())
    else:
        raise UserError(f"unknown preset {name!r}: choose 'fast' (about a minute on a CPU) or "
                        "'quality' (512 px, more detail: about 10 minutes on a CPU)", field="preset")
    if resolution is not None:
        if resolution < 64 or resolution > 2048:
            raise UserError(f"--resolution must be between 64 and 2048 pixels, got {resolution}",
                            field="resolution")
        chosen.resolution = resolution
    chosen.train = replace(chosen.train, resolution=chosen.resolution)
    if steps is not None:
        if steps < 0:
            raise UserError(f"--steps must be 0 or more, got {steps}", field="steps")
        chosen.train = replace(chosen.train, steps=steps)
    return chosen
