"""Motion from a driving video: landmarks per frame, one SMPL-X fit over the clip."""

from oneshot_avatar._lazy import lazy_exports

# submodule -> the names it exports; imported on first use (so the CLI answers at once).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".fit": ("ClipFit", "TrackFitConfig", "fit_clip"),
    ".pipeline": ("TrackResult", "clip_from_fit", "track_video"),
    ".video": ("VideoInfo", "probe_video"),
})
