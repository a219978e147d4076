"""``motion list | info | convert`` through ``oneshot_avatar.motion.cli.register``."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import builtin_clip, builtin_names, load_motion
from oneshot_avatar.motion.cli import register
from shared_files import real_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oneshot-avatar")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


def test_every_argument_has_help():
    def walk(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action.choices.values():
                    yield from walk(choice)
            elif not isinstance(action, argparse._HelpAction):
                yield action

    actions = list(walk(_parser()))
    assert len(actions) >= 7
    for action in actions:
        assert action.help, action.dest


def test_list(capsys):
    assert run("motion", "list") == 0
    out = capsys.readouterr().out
    for name in builtin_names():
        assert name in out
    assert "180" in out  # idle: 6 s at 30 fps


def test_info_builtin(capsys):
    assert run("motion", "info", "talk") == 0
    out = capsys.readouterr().out
    assert "built-in" in out and "arkit52 (52 columns)" in out and "180" in out


def test_info_real_file(capsys):
    path = real_file("amass_sample_smplh.npz")
    assert run("motion", "info", str(path)) == 0
    out = capsys.readouterr().out
    assert "AMASS SMPL+H" in out
    assert "601" in out and "120" in out and "5.000 s" in out
    assert "16 values" in out  # betas
    assert "root travel" in out


def test_info_talkshow_with_layout(capsys):
    path = real_file("talkshow_french.npy")
    assert run("motion", "info", str(path), "--layout", "talkshow") == 0
    out = capsys.readouterr().out
    assert "TalkSHOW" in out and "smplx-pca (100 columns)" in out and "288" in out


def test_convert_builtin_and_read_back(tmp_path, capsys):
    out_path = tmp_path / "wave.npz"
    assert run("motion", "convert", "wave", str(out_path), "--fps", "24", "--seconds", "2") == 0
    assert "48 frames at 24 fps" in capsys.readouterr().out
    clip = load_motion(out_path)
    assert clip.equals(builtin_clip("wave", fps=24.0, seconds=2.0))


def test_convert_real_file_resamples(tmp_path):
    out_path = tmp_path / "amass30.npz"
    assert run("motion", "convert", str(real_file("amass_sample_smplh.npz")), str(out_path),
               "--fps", "30") == 0
    clip = load_motion(out_path)
    assert clip.num_frames == 151 and clip.fps == 30.0


def test_convert_keeps_fps_by_default(tmp_path):
    source = tmp_path / "in.npz"
    run("motion", "convert", "idle", str(source), "--fps", "10")
    target = tmp_path / "out.npz"
    assert run("motion", "convert", str(source), str(target)) == 0
    assert load_motion(target).fps == 10.0
    assert np.array_equal(load_motion(target).body_pose, load_motion(source).body_pose)


@pytest.mark.parametrize(
    "argv",
    [
        ("motion", "info", "no_such_clip"),
        ("motion", "convert", "idle", "out.smpl"),
        ("motion", "convert", "idle", "x.npz", "--fps", "0"),
        ("motion", "convert", "idle", "x.npz", "--layout", "talkshow"),
    ],
)
def test_user_mistakes_raise_user_error(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError):
        run(*argv)


def test_seconds_only_for_builtins(tmp_path):
    source = tmp_path / "in.npz"
    run("motion", "convert", "idle", str(source))
    with pytest.raises(UserError, match="--seconds"):
        run("motion", "convert", str(source), str(tmp_path / "o.npz"), "--seconds", "2")


def test_unknown_builtin_lists_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        run("motion", "info", "dance")
    assert "idle" in str(error.value) and "turnaround" in str(error.value)
