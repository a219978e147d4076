"""``NAME.landmarks.png``: the photo around the person with what the fit saw and what it made.

Drawn over the photo (cut by the working box, at ``PREVIEW_SIZE`` px):

- the detected keypoints (the landmark detector's, or those of the keypoints file): filled
  dots, green for body and feet, orange for hands, cyan for the face (the 478-point face mesh
  as small dots when the detector gave it), on a skeleton of thin lines;
- the fitted body's landmarks (the same names, projected from the fitted SMPL-X body): magenta
  rings, with a thin line to the detected point they answer;
- the fitted body's silhouette outline: yellow;
- the detector's notes in the top-left corner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

PREVIEW_SIZE = 768
_BODY_EDGES = (
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_hip", "right_hip"), ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_ankle", "left_heel"), ("left_ankle", "left_big_toe"), ("right_ankle", "right_heel"),
    ("right_ankle", "right_big_toe"), ("nose", "left_eye"), ("nose", "right_eye"),
    ("left_eye", "left_ear"), ("right_eye", "right_ear"),
)
_COLOURS = {"body": (40, 220, 60), "hand": (255, 150, 0), "face": (0, 220, 255)}
_FITTED = (255, 0, 255)
_OUTLINE = (255, 240, 0)


def _group(name: str) -> str:
    return "hand" if "_hand_" in name else "face" if name.startswith("face_") else "body"


def fitted_keypoints(body, fit, names: tuple[str, ...] | list[str],
                     source: str | None = None) -> dict[str, np.ndarray]:
    """Working-image pixels of the fitted body's landmark for each of ``names`` it has, placed
    as the fit placed them for keypoints from ``source``."""
    from oneshot_avatar.fit.targets import keypoint_targets

    targets = keypoint_targets(body, source)
    wanted = [n for n in names if n in targets]
    if not wanted:
        return {}
    with torch.no_grad():
        out = body(**fit.params)
        rotations = out.joint_transforms[0, :, :3, :3]
        points = torch.stack([targets[n].position(out.joints[0], out.vertices[0], rotations)
                              for n in wanted])
        xy, _ = fit.camera.project(points.to(fit.camera.K))
    return {n: xy[i].detach().cpu().numpy() for i, n in enumerate(wanted)}


def write_landmarks_preview(path: Path, body, fit, subject, photo_landmarks, keypoints) -> Path:
    """Write the preview (see the module docstring). ``photo_landmarks``: the detector's
    :class:`~oneshot_avatar.fit.Landmarks` in photo pixels (or None); ``keypoints``: the
    keypoints the fit used, in working-image pixels (or None)."""
    import cv2
    from PIL import Image

    from oneshot_avatar.fit.silhouette import render_silhouette
    from oneshot_avatar.subject.crop import CropBox

    box = subject.box
    view = CropBox(x0=box.x0, y0=box.y0, size=box.size, out_size=PREVIEW_SIZE)
    canvas = np.ascontiguousarray(view.crop(subject.photo.rgb)[..., :3]).astype(np.uint8)
    canvas = (canvas.astype(np.float32) * 0.75).astype(np.uint8)  # dim, so marks stand out
    zoom = PREVIEW_SIZE / box.out_size

    def pt(xy: np.ndarray) -> tuple[int, int]:  # fixed point, 2 fractional bits (shift=2)
        return round(float(float(xy[0]) * 4)), round(float(float(xy[1]) * 4))

    line = {"lineType": cv2.LINE_AA, "shift": 2}

    # the fitted silhouette's outline
    with torch.no_grad():
        alpha = render_silhouette(body, fit.params, fit.camera, box.out_size).cpu().numpy()
    alpha = cv2.resize(alpha.astype(np.float32), (PREVIEW_SIZE, PREVIEW_SIZE),
                       interpolation=cv2.INTER_LINEAR)
    contours, _ = cv2.findContours((alpha > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, _OUTLINE, 2, lineType=cv2.LINE_AA)

    # the detected points (working-image keypoints are the ones the fit used)
    detected: dict[str, tuple[np.ndarray, float]] = {}
    if keypoints is not None:
        for name, xy, conf in zip(keypoints.names, keypoints.xy, keypoints.conf):
            if conf > 0:
                detected[name] = (np.asarray(xy) * zoom, float(conf))
    if photo_landmarks is not None and photo_landmarks.face is not None:
        for xy in view.to_crop(photo_landmarks.face[:, :2].astype(np.float64)):
            cv2.circle(canvas, pt(xy), 4, (0, 150, 180), -1, **line)
    for a, b in _BODY_EDGES:
        if a in detected and b in detected:
            cv2.line(canvas, pt(detected[a][0]), pt(detected[b][0]), (40, 160, 60), 1, **line)
    for name, (xy, conf) in detected.items():
        radius = 3 if _group(name) != "body" else 5
        cv2.circle(canvas, pt(xy), radius * 4, _COLOURS[_group(name)], -1, **line)

    # the fitted body's landmarks
    fitted = fitted_keypoints(body, fit, list(detected) if detected else [
        n for n, _ in _BODY_EDGES], None if keypoints is None else keypoints.source)
    for name, xy in fitted.items():
        xy = xy * zoom
        if name in detected:
            cv2.line(canvas, pt(xy), pt(detected[name][0]), _FITTED, 1, **line)
        cv2.circle(canvas, pt(xy), 24 if _group(name) == "body" else 14, _FITTED, 1, **line)

    notes = list(photo_landmarks.notes) if photo_landmarks is not None else []
    legend = ["detected: dots (green body, orange hands, cyan face)",
              "fitted body: magenta rings, yellow outline"] + notes
    import textwrap

    lines = [part for text in legend for part in textwrap.wrap(text, 100)]
    band = 8 + 16 * len(lines)
    canvas[:band] = (canvas[:band].astype(np.float32) * 0.35).astype(np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(canvas, text, (8, 18 + 16 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
    path = Path(path)
    Image.fromarray(canvas).save(path)
    return path
