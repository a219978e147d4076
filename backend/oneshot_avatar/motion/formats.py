"""The motion file formats' names, without numpy: the CLI lists them (``--layout`` choices) before
anything is read; the readers are in :mod:`oneshot_avatar.motion.io`."""

from __future__ import annotations

SCHEMA = "oneshot-motion/1"
FORMATS: dict[str, str] = {
    "oneshot": "One-Shot Avatar motion .npz (oneshot-motion/1)",
    "amass-smplx": "AMASS SMPL-X .npz",
    "amass-smplh": "AMASS SMPL+H .npz",
    "amass-smplx-yup": "AMASS-style SMPL-X .npz, already Y-up",
    "amass-smplh-yup": "AMASS-style SMPL+H .npz, already Y-up",
    "smpl": "Meshcapade .smpl (smplcodec)",
    "talkshow": "TalkSHOW .npy (T, 265), camera-style, 30 fps",
}
# Values for ``layout``: force a reader instead of detecting one.
LAYOUTS: tuple[str, ...] = ("oneshot", "amass", "amass-yup", "smpl", "talkshow")
