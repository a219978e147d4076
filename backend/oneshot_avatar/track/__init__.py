"""Motion from a driving video: landmarks per frame, one SMPL-X fit over the clip."""

from oneshot_avatar._lazy import lazy_exports

# name -> the module it lives in; imported on first use (so the CLI answers at once).
_EXPORTS = {
    "ClipFit": "oneshot_avatar.track.fit",
    "TrackFitConfig": "oneshot_avatar.track.fit",
    "fit_clip": "oneshot_avatar.track.fit",
    "TrackResult": "oneshot_avatar.track.pipeline",
    "clip_from_fit": "oneshot_avatar.track.pipeline",
    "track_video": "oneshot_avatar.track.pipeline",
    "VideoInfo": "oneshot_avatar.track.video",
    "probe_video": "oneshot_avatar.track.video",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*_EXPORTS]
