"""Output files: every writer goes through one atomic helper (``oneshot_avatar.atomic``), so
outputs get the permissions the umask gives (never a temporary file's private 0600), appear only
when complete, and a full disk is a clear error that leaves the previous file untouched."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oneshot_avatar.errors import UserError
from tiny_disk import mounted_tmpfs


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_every_output_of_demo_and_reconstruct_follows_the_umask(tmp_path, body_cache, open_body_file):
    """The demo runs the reconstruction (package, report, previews, labels) and renders a video:
    under umask 027 every file it leaves must be 0640 (0600 would mean a temporary file's mode
    leaked through, as it did for talk.mp4)."""
    from tiny_serve import TINY

    out = tmp_path / "demo"
    env = {**os.environ, "ONESHOT_AVATAR_CACHE": str(body_cache)}
    # The command line with the tests' tiny preset (tests/tiny_serve.py): the same writers write
    # the same files, after a fit and labels cut down to seconds.
    result = subprocess.run(
        [*TINY, "demo", "--out", str(out), "--steps", "2",
         "--size", "64", "--device", "cpu", "-q"],
        check=False, capture_output=True, text=True, env=env, timeout=1800,
        preexec_fn=lambda: os.umask(0o027))
    assert result.returncode == 0, result.stderr[-3000:]
    modes = _modes(out)
    expected = {"photo.png", "keypoints.json", "avatar.avatar", "avatar.report.json",
                "avatar.preview.png", "avatar.turnaround.png", "avatar.labels.png", "talk.mp4",
                "fidelity.json"}
    assert expected <= set(modes), sorted(modes)
    wrong = {name: oct(mode) for name, mode in modes.items() if mode != 0o640}
    assert not wrong, wrong
    assert not [name for name in modes if name.startswith(".") or name.endswith(".tmp")]


def test_atomic_helper_gives_umask_permissions_in_a_fresh_process(tmp_path):
    code = (
        "import os, sys; os.umask(0o002)\n"
        "from pathlib import Path\n"
        "from oneshot_avatar.atomic import atomic_output, write_bytes_atomic\n"
        "out = Path(sys.argv[1])\n"
        "write_bytes_atomic(out / 'a.bin', b'x')\n"
        "with atomic_output(out / 'b.bin') as tmp:\n"
        "    tmp.write_bytes(b'y')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert _modes(tmp_path) == {"a.bin": 0o664, "b.bin": 0o664}


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    from oneshot_avatar.atomic import atomic_output

    target = tmp_path / "report.json"
    target.write_text("previous")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


# ---- a full disk


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 3 MiB filesystem (tmpfs; needs root and mount rights), else skip."""
    with mounted_tmpfs(tmp_path / f"tiny-{uuid.uuid4().hex[:6]}", "3m") as folder:
        yield folder


def _small_avatar(open_body, folder: Path, sh_degree: int):
    from oneshot_avatar.avatar import MeshGaussians
    from oneshot_avatar.package import save_avatar

    with torch.no_grad():
        rest = open_body().vertices[0]
    gaussians = MeshGaussians.on_mesh(rest, open_body.faces, open_body.info.num_faces,
                                      sh_degree=sh_degree, seed=3)
    return gaussians, lambda path: save_avatar(path, gaussians, open_body,
                                               torch.zeros(open_body.num_betas))


def test_disk_full_while_writing_a_package_keeps_the_previous_one(tiny_disk, open_body, tmp_path):
    """A package is written next to the old one and renamed: with no room for the new one, the
    write fails with a message about space, and the old package is byte-for-byte intact."""
    _, save_small = _small_avatar(open_body, tmp_path, sh_degree=0)
    target = tiny_disk / "me.avatar"
    save_small(target)  # ~2 MB: fits
    before = target.read_bytes()
    _, save_big = _small_avatar(open_body, tmp_path, sh_degree=3)  # does not fit beside it
    with pytest.raises(UserError) as caught:
        save_big(target)
    assert "no space left" in str(caught.value) and str(target) in str(caught.value)
    assert target.read_bytes() == before
    assert [p.name for p in tiny_disk.iterdir()] == ["me.avatar"]  # no temporary left behind


def test_disk_full_while_writing_frames_is_a_clear_error_and_no_half_frame(tiny_disk):
    """Frames (incompressible noise, ~200 kB each) until the disk is full: a UserError about
    space; every frame file present is a whole PNG; no temporary files are left."""
    from oneshot_avatar.render.output import PngFolderSink

    rng = np.random.default_rng(0)
    sink = PngFolderSink(tiny_disk / "frames", threads=2)
    for frame in range(40):  # ~8 MB in all, into 3 MiB
        sink.write(frame, rng.integers(0, 256, (256, 256, 4), dtype=np.uint8))
    with pytest.raises(UserError) as caught:
        sink.close()
    assert "no space left" in str(caught.value)
    written = sorted((tiny_disk / "frames").iterdir())
    assert written and all(p.name.startswith("frame_") and p.suffix == ".png" for p in written)
    for path in written:
        with Image.open(path) as image:
            image.load()  # a truncated PNG raises here


def test_disk_full_while_writing_a_video_keeps_the_previous_one(tiny_disk):
    from oneshot_avatar.render.output import VideoSink

    target = tiny_disk / "talk.gif"
    target.write_bytes(b"GIF89a previous")
    rng = np.random.default_rng(1)
    # Noise in 256 colours: as large a GIF as full-colour noise (~5 MB), without the colour
    # quantization that made full-colour noise take 14 times longer to encode.
    palette = rng.integers(0, 256, (256, 4), dtype=np.uint8)
    palette[:, 3] = 255
    sink = VideoSink(target, fps=10, background=None)
    for frame in range(60):
        sink.write(frame, palette[rng.integers(0, 256, (256, 256))])
    with pytest.raises(UserError) as caught:
        sink.close()
    assert "no space left" in str(caught.value)
    assert target.read_bytes() == b"GIF89a previous"
    assert [p.name for p in tiny_disk.iterdir()] == ["talk.gif"]


# ---- the sinks share one PNG encoder


def test_zip_sink_stores_every_frame_in_order_and_appears_only_when_complete(tmp_path):
    """The service's zip of frames: ``frame_NNNNN.png`` in frame order, each the frame itself
    (straight alpha), byte-for-byte what the PNG-folder sink writes; nothing under the zip's
    name until it is closed; an aborted zip leaves nothing behind."""
    import zipfile

    from oneshot_avatar.render.output import PngBytesSink, PngFolderSink, ZipSink, encode_png

    rng = np.random.default_rng(2)
    frames = {k: rng.integers(0, 256, (24, 16, 4), dtype=np.uint8) for k in (3, 4, 7)}
    target = tmp_path / "frames.zip"
    sink = ZipSink(target, window=1)
    folder = PngFolderSink(tmp_path / "folder", threads=2)
    memory = PngBytesSink()
    for k, rgba in frames.items():
        sink.write(k, rgba)
        folder.write(k, rgba)
        memory.write(k, rgba)
    assert not target.exists()
    assert sink.close() == [target]
    folder.close()
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == ["frame_00003.png", "frame_00004.png", "frame_00007.png"]
        for name, (k, rgba) in zip(archive.namelist(), frames.items(), strict=True):
            data = archive.read(name)
            assert data == (tmp_path / "folder" / name).read_bytes() == encode_png(rgba)
            with Image.open(archive.open(name)) as image:
                np.testing.assert_array_equal(np.asarray(image), rgba)
    assert memory.close() == [encode_png(rgba) for rgba in frames.values()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "frames.zip"]

    aborted = ZipSink(tmp_path / "other.zip")
    aborted.write(0, frames[3])
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "frames.zip"]
