"""Pseudo-labels: the photographed person in other poses and from other views, for training.

The embedded default, :class:`MeshReprojectionLabeler`, needs no weights: it projects the photo
onto the fitted body mesh, fills what the photo does not show, and renders the textured mesh.
"""

from oneshot_avatar.priors.labels import (
    DRIVING_CLIPS,
    TURNAROUND_AZIMUTHS,
    Labeler,
    LabelSet,
    driving_frames,
    driving_poses,
    turnaround_cameras,
)
from oneshot_avatar.priors.reprojection import MeshReprojectionLabeler

__all__ = [
    "DRIVING_CLIPS",
    "TURNAROUND_AZIMUTHS",
    "LabelSet",
    "Labeler",
    "MeshReprojectionLabeler",
    "driving_frames",
    "driving_poses",
    "turnaround_cameras",
]
