"""``oneshot-avatar serve`` whose reconstructions use the tests' tiny preset: the fast preset's
fit and pseudo-labels cut down to seconds (as tests/test_reconstruct.py's ``_tiny_preset``),
and training checkpoints every ``$ONESHOT_AVATAR_TEST_CHECKPOINT_EVERY`` steps (default: the
preset's). For service tests that prove how jobs survive stops and crashes, not how good the
avatar is. Run as ``python tests/tiny_serve.py serve ...`` (``start_server(command=TINY)``)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

TINY = (sys.executable, str(Path(__file__).resolve()))


def tiny_preset(name, *, steps=None, resolution=None):
    from oneshot_avatar.fit import FitConfig
    from oneshot_avatar.reconstruct.presets import LabelConfig, preset

    chosen = preset(name, steps=steps, resolution=resolution)
    chosen.fit = FitConfig(orient_headings=(0.0, 180.0), orient_iterations=10, body_iterations=15,
                           pose_prior_weights=(30.0, 5.0), silhouette_iterations=2,
                           silhouette_resolution=64, silhouette_gaussians=512)
    chosen.labels = LabelConfig(clips=("talk",), frames_per_clip=1, azimuths=(180.0,),
                                texture_resolution=2)
    every = os.environ.get("ONESHOT_AVATAR_TEST_CHECKPOINT_EVERY")
    if every:
        chosen.train = replace(chosen.train, checkpoint_every=int(every))
    return chosen


if __name__ == "__main__":
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p != here]  # tests/ must not shadow anything
    from oneshot_avatar.cli import main
    from oneshot_avatar.reconstruct import pipeline

    pipeline.make_preset = tiny_preset
    sys.exit(main(sys.argv[1:]))
