"""The Blender add-on's rig: import time of a .avatar and the viewport deformation rate of the
driven point cloud (evaluated frames per second while scrubbing an animation).

Runs with Blender's Python (the bpy module), from the repository root:

    .venv-blender/bin/python benchmarks/addon.py --package /tmp/avatar150k.avatar

Make the 150k-Gaussian package first with the backend (main venv; Gaussians spread over the
open default body with random colours/scales/offsets, as in the add-on's tests):

    ONESHOT_AVATAR_CACHE=/tmp/oacache .venv/bin/python -c "import sys; sys.path.insert(0, \
'tests'); from addon_packages import build_test_package; from oneshot_avatar.body import \
load_body_model; build_test_package('/tmp/avatar150k.avatar', load_body_model(), 150000)"

Prints: the import time (reading + validating the package, building rig and splats; target
<= 3 s for 150k Gaussians, median of --imports runs in fresh scenes), then, for an animation
of --frames keyed frames, the evaluated frames per second of ``scene.frame_set`` (Armature
modifier + splat Geometry Nodes), the same with the evaluated positions read back to numpy,
and the Armature modifier alone (splat node group off). For packages with face offsets it also
prints the face object's size: Gaussians the face units move, shape keys and their memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _scrub(scene, splats, frames: int, read_back: bool) -> float:
    """Evaluated frames per second over ``frames`` consecutive frames."""
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    scene.frame_set(scene.frame_start)
    buffer = np.empty(3 * len(splats.data.vertices), np.float32)
    started = time.perf_counter()
    for frame in range(scene.frame_start, scene.frame_start + frames):
        scene.frame_set(frame)
        if read_back:
            splats.evaluated_get(depsgraph).data.vertices.foreach_get("co", buffer)
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", required=True, type=Path, help="a .avatar file")
    parser.add_argument("--imports", type=int, default=3, help="import runs (median reported)")
    parser.add_argument("--frames", type=int, default=60, help="animation frames to scrub")
    args = parser.parse_args()
    if not args.package.is_file():
        parser.error(f"--package {args.package} does not exist; see this script's docstring "
                     "for how to make one")
    sys.path.insert(0, str(REPO))  # the add-on package, without installing it

    import bpy
    from blender_addon import importer, motion_ops, splats
    from blender_addon.core.motion import Motion
    from blender_addon.core.package import read_avatar_package

    for module in (splats, importer, motion_ops):
        module.register()
    read_times, import_times = [], []
    for _ in range(max(1, args.imports)):
        bpy.ops.wm.read_homefile(use_empty=True)
        started = time.perf_counter()
        read_avatar_package(args.package)
        read_times.append(time.perf_counter() - started)
        bpy.ops.wm.read_homefile(use_empty=True)
        started = time.perf_counter()
        rig, splats_obj = importer.import_avatar_file(bpy.context, args.package)
        import_times.append(time.perf_counter() - started)
    count = len(splats_obj.data.vertices)
    print(f"gaussians: {count}")
    face = rig.get("oneshot_avatar_face")
    if face is not None:  # the face's Gaussians with one shape key per face unit
        points, keys = len(face.data.vertices), len(face.data.shape_keys.key_blocks)
        shape_mb = points * keys * 3 * 4 / 1e6
        print(f"face object: {points} Gaussians ({100 * points / count:.1f}%) x {keys} shape "
              f"keys = {shape_mb:.1f} MB of shape-key positions (all {count} Gaussians would "
              f"take {count * keys * 12 / 1e6:.1f} MB)")
    print(f"import: {statistics.median(import_times):.2f} s median of {len(import_times)} "
          f"(reading + validating the package alone: {statistics.median(read_times):.2f} s)")

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    t = np.arange(args.frames) / 30.0
    pose = np.zeros((args.frames, 55, 3))
    for joint, axis, amplitude in ((16, 2, 0.8), (17, 2, -0.8), (18, 1, 1.0), (19, 1, -1.0),
                                   (1, 0, 0.6), (2, 0, -0.6), (4, 0, 0.9), (5, 0, 0.9),
                                   (3, 1, 0.3), (15, 1, 0.5)):
        pose[:, joint, axis] = amplitude * np.sin(2 * np.pi * t + joint)
    transl = np.stack([0.2 * np.sin(t), np.zeros_like(t), 0.5 * t], -1)
    motion_ops.apply_motion(bpy.context, rig, Motion(fps=30.0, full_pose=pose, transl=transl,
                                                     expression=np.zeros((args.frames, 0))),
                            keep_placement=True)
    _scrub(scene, splats_obj, min(5, args.frames), False)  # warm-up
    with_splats = _scrub(scene, splats_obj, args.frames, False)
    with_read = _scrub(scene, splats_obj, args.frames, True)
    splats_obj.modifiers[splats.MODIFIER_NAME].show_viewport = False
    armature_only = _scrub(scene, splats_obj, args.frames, False)
    print(f"scrubbing {args.frames} frames: {with_splats:.1f} frames/s (Armature + splat "
          f"nodes), {with_read:.1f} frames/s with read-back of the {count} positions, "
          f"{armature_only:.1f} frames/s Armature modifier alone")


if __name__ == "__main__":
    main()
