"""Motion from a driving video: landmarks per frame, one SMPL-X fit over the clip."""

from oneshot_avatar.track.fit import ClipFit, TrackFitConfig, fit_clip
from oneshot_avatar.track.pipeline import TrackResult, clip_from_fit, track_video
from oneshot_avatar.track.video import VideoInfo, probe_video

__all__ = ["ClipFit", "TrackFitConfig", "TrackResult", "VideoInfo", "clip_from_fit", "fit_clip",
           "probe_video", "track_video"]
