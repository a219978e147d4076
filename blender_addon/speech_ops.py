"""Add Speech: an audio file -> lip-sync, face, head and gesture keys on the avatar rig from the
current frame, at the scene's frame rate, plus the sound as a strip starting at the same frame
so playback is in sync. The motion comes from the backend (``POST /v1/speech``); the keys are
ordinary F-curve keys (joint quaternions, root location, expression properties on the ``root``
bone), so they stay editable. Existing keys outside the speech's frames are kept.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from .core.motion import MotionError, motion_from_json
from .core.speech import AUDIO_EXTENSIONS, SpeechInputError, read_transcript, request_speech_motion
from .motion_ops import apply_motion, scene_fps
from .rigs import NeedsRig, rig_or_report

SOUND_CHANNEL = 1


def _service_client(context):
    from . import preferences

    return preferences.service_client(context)


def _strips(editor):
    """The sequencer's strip collection (``strips`` in Blender 4.4+, ``sequences`` before)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def add_sound_strip(scene, audio: Path, frame: int):
    """A sound strip of ``audio`` starting at ``frame`` on a free channel from 1."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = _strips(editor)
    channel = SOUND_CHANNEL
    while any(s.channel == channel and s.frame_final_start <= frame < s.frame_final_end
              for s in strips):
        channel += 1
    strip = strips.new_sound(name=audio.stem, filepath=str(audio), channel=channel,
                             frame_start=int(frame))
    return strip


def add_speech(context, rig, audio: str, *, transcript: str | None = None, style: str = "calm",
               seed: int = 0, start_frame: int | None = None) -> dict:
    """Key the speech motion of ``audio`` on ``rig`` from ``start_frame`` (default: the current
    frame) and add its sound strip there. Returns ``{"motion", "strip", "report"}``."""
    scene = context.scene
    start = scene.frame_current if start_frame is None else int(start_frame)
    audio_path = Path(bpy.path.abspath(audio))
    data = request_speech_motion(_service_client(context), audio_path, fps=scene_fps(scene),
                                 style=style, seed=seed, transcript=transcript)
    motion = motion_from_json(data)
    motion = apply_motion(context, rig, motion, start_frame=start, set_frame_range=False)
    strip = add_sound_strip(scene, audio_path, start)
    scene.frame_end = max(scene.frame_end, start + motion.num_frames - 1)
    scene.sync_mode = "AUDIO_SYNC"
    return {"motion": motion, "strip": strip, "report": data.get("report", {})}


class ONESHOT_AVATAR_OT_add_speech(NeedsRig, bpy.types.Operator, ImportHelper):
    """Lip-sync, face, head and hand motion from a voice recording, keyed on the avatar rig from
    the current frame, with the sound added as a strip at the same frame"""

    bl_idname = "oneshot_avatar.add_speech"
    bl_label = "Add Speech"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a set)

    filter_glob: StringProperty(  # type: ignore[valid-type]
        default=";".join(f"*{ext}" for ext in AUDIO_EXTENSIONS), options={"HIDDEN"})
    transcript_path: StringProperty(  # type: ignore[valid-type]
        name="Transcript", subtype="FILE_PATH",
        description="Optional text file with the words spoken (more accurate lip-sync)")
    style: EnumProperty(  # type: ignore[valid-type]
        name="Style", default="calm",
        items=[("calm", "Calm", "Fewer, smaller gestures and nods"),
               ("lively", "Lively", "More and larger gestures, nods and brow raises")])
    seed: IntProperty(name="Seed", default=0, min=0,  # type: ignore[valid-type]
                      description="Change for different blinks, gestures and head motion")

    def execute(self, context):
        from .core.client import ServiceError

        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            transcript = read_transcript(bpy.path.abspath(self.transcript_path)
                                         if self.transcript_path else None)
            result = add_speech(context, rig, self.filepath, transcript=transcript,
                                style=self.style, seed=self.seed)
        except (SpeechInputError, MotionError, ServiceError) as error:
            self.report({"ERROR"}, f"Cannot add speech: {error}")
            return {"CANCELLED"}
        report = result["report"]
        notes = "; ".join(report.get("notes", []))
        self.report({"INFO"}, f"Keyed {result['motion'].num_frames} frames of speech from frame "
                              f"{result['strip'].frame_start:g} ({report.get('recognizer', '?')}"
                              f"{': ' + notes if notes else ''})")
        return {"FINISHED"}


CLASSES = (ONESHOT_AVATAR_OT_add_speech,)
