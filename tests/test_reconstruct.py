"""The reconstruction pipeline end to end (photo -> .avatar), its errors, resume, and the demo.

Runs are small (128 px working images, a few training steps) so the file stays quick on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oneshot_avatar.errors import UserError
from oneshot_avatar.package import load_avatar
from oneshot_avatar.reconstruct.demo import write_coco_wholebody
from oneshot_avatar.reconstruct.pipeline import (
    ReconstructOptions,
    output_paths,
    reconstruct,
)
from oneshot_avatar.reconstruct.synthetic import make_subject
from shared_files import SHARED_DATA
from tiny_serve import tiny_preset


@pytest.fixture(scope="module", autouse=True)
def _one_body_cache(body_cache, open_body_file):
    """The pipeline loads the default body by itself: point it at the tests' built one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ONESHOT_AVATAR_CACHE", str(body_cache))
        yield


@pytest.fixture(scope="module")
def synthetic_photo(open_body, tmp_path_factory):
    folder = tmp_path_factory.mktemp("subject")
    subject = make_subject(open_body, "blue-stripes", size=256, texture_resolution=3)
    photo = folder / "photo.png"
    Image.fromarray((subject.image * 255 + 0.5).astype(np.uint8)).save(photo)
    keypoints = write_coco_wholebody(folder / "keypoints.json", open_body, subject.params, subject.camera)
    mask = folder / "mask.png"
    Image.fromarray((subject.mask * 255 + 0.5).astype(np.uint8)).save(mask)
    return subject, photo, keypoints, mask


def _options(photo, out, **kwargs) -> ReconstructOptions:
    defaults = {"preset": "fast", "resolution": 128, "steps": 12, "device": "cpu", "quiet": True}
    defaults.update(kwargs)
    return ReconstructOptions(photo=photo, out=out, **defaults)


def _quiet(_message: str) -> None:
    pass


@pytest.mark.slow
def test_synthetic_photo_reconstructs_end_to_end(synthetic_photo, tmp_path, open_body):
    _, photo, keypoints, _ = synthetic_photo
    out = tmp_path / "person.avatar"
    # No detector: the mask comes from GrabCut seeded by the fit (the fallback path).
    report = reconstruct(_options(photo, out, keypoints=keypoints, detector=False), log=_quiet)
    paths = output_paths(out)
    assert out.is_file() and paths["report"].is_file()
    for name in ("preview", "turnaround", "labels"):
        assert paths[name].is_file(), name
    assert not paths["work"].exists(), "the work folder is removed after success"
    # The fit found the synthetic person: keypoints within a few pixels, GrabCut mask agrees.
    assert report["fit"]["keypoint_error_px"] < 3.0
    assert report["subject"]["mask_source"] == "grabcut"
    assert report["fit"]["mask_iou"] > 0.7
    # Training made the photo view better than the textured initialisation.
    psnr = report["training"]["input_view"]
    assert psnr["after"]["psnr"] > psnr["before"]["psnr"]
    assert report["plugins"]["labels"] == "mesh-reprojection"
    # the shape beyond the body was read from the mask's outline (a skin-tight subject: little)
    assert report["labels"]["outline"]["measured_vertices"] > 0
    assert set(report["timings_s"]) >= {"subject", "fit", "labels", "train", "total"}
    on_disk = json.loads(paths["report"].read_text())
    assert on_disk["outputs"]["avatar"] == str(out)
    avatar = load_avatar(out)
    assert avatar.gaussians.num_gaussians >= open_body.info.num_faces
    assert avatar.meta["source_photo_sha256"] == subject_sha(photo)
    fitted = torch.tensor(report["fit"]["params"]["betas"])[0]
    assert torch.allclose(avatar.betas, fitted, atol=1e-6)


def subject_sha(photo: Path) -> str:
    import hashlib

    return hashlib.sha256(photo.read_bytes()).hexdigest()


def test_crop_camera_round_trip(synthetic_photo):
    from oneshot_avatar.subject import person_box

    subject = synthetic_photo[0]
    box = person_box((256, 256), 128, mask=subject.mask)
    inside = box.camera_to_crop(subject.camera)
    back = box.camera_from_crop(inside, 256, 256)
    points = torch.randn(20, 3) * 0.3 + torch.tensor([0.0, 0.2, 0.0])
    xy_photo, _ = subject.camera.project(points)
    xy_crop, _ = inside.project(points)
    expected = torch.as_tensor(box.to_crop(xy_photo.double().numpy()))
    assert torch.allclose(xy_crop.double(), expected, atol=1e-3)
    assert torch.allclose(back.K, subject.camera.K, atol=1e-4)


# -- bad input: clear errors before any long work ---------------------------------------------


def test_no_way_to_find_the_body_lists_the_three_ways(synthetic_photo, tmp_path):
    photo = synthetic_photo[1]
    with pytest.raises(UserError) as error:
        reconstruct(_options(photo, tmp_path / "a.avatar", detector=False), log=_quiet)
    message = str(error.value)
    for way in ("--keypoints", "--keypoint-model", "--init"):
        assert way in message
    assert not (tmp_path / "a.avatar").exists()


def test_not_an_image_is_refused(tmp_path, synthetic_photo):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    with pytest.raises(UserError) as error:
        reconstruct(_options(fake, tmp_path / "a.avatar", keypoints=synthetic_photo[2]), log=_quiet)
    assert "photo.png" in str(error.value)


def test_unwritable_or_wrong_output_is_refused_first(synthetic_photo, tmp_path):
    photo, keypoints = synthetic_photo[1], synthetic_photo[2]
    with pytest.raises(UserError, match="does not exist"):
        reconstruct(_options(photo, tmp_path / "missing" / "a.avatar", keypoints=keypoints), log=_quiet)
    with pytest.raises(UserError, match=r"\.avatar"):
        reconstruct(_options(photo, tmp_path / "a.zip", keypoints=keypoints), log=_quiet)


def test_keypoints_for_another_image_size_are_refused(synthetic_photo, tmp_path):
    photo, keypoints = synthetic_photo[1], synthetic_photo[2]
    data = json.loads(Path(keypoints).read_text())
    data["images"][0]["width"] = 1024
    data["images"][0]["height"] = 768
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(UserError):
        reconstruct(_options(photo, tmp_path / "a.avatar", keypoints=other), log=_quiet)


def test_nan_in_keypoints_is_refused(synthetic_photo, tmp_path):
    photo, keypoints = synthetic_photo[1], synthetic_photo[2]
    text = Path(keypoints).read_text()
    data = json.loads(text)
    data["annotations"][0]["keypoints"][0] = "NaN"
    broken = tmp_path / "nan.json"
    broken.write_text(json.dumps(data).replace('"NaN"', "NaN"))
    with pytest.raises(UserError) as error:
        reconstruct(_options(photo, tmp_path / "a.avatar", keypoints=broken), log=_quiet)
    assert "keypoints" in str(error.value)


def test_unknown_preset_is_refused(synthetic_photo, tmp_path):
    with pytest.raises(UserError, match="preset"):
        reconstruct(_options(synthetic_photo[1], tmp_path / "a.avatar", keypoints=synthetic_photo[2],
                             preset="ultra"), log=_quiet)


# -- failure and resume -------------------------------------------------------------------------


@pytest.mark.slow
def test_failed_run_leaves_no_avatar_and_resumes_from_its_checkpoint(synthetic_photo, tmp_path,
                                                                      monkeypatch):
    from oneshot_avatar.package import avatar_file
    from oneshot_avatar.reconstruct import pipeline

    # What is proven is the checkpoint and the resume, not the fit: the tests' tiny preset
    # (tests/tiny_serve.py) for the fit and labels; the real fast preset runs end to end above.
    monkeypatch.setattr(pipeline, "make_preset", tiny_preset)
    _, photo, keypoints, mask = synthetic_photo
    out = tmp_path / "person.avatar"
    original = avatar_file.save_avatar

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(avatar_file, "save_avatar", broken)
    with pytest.raises(OSError):
        reconstruct(_options(photo, out, keypoints=keypoints, mask=mask, steps=8), log=_quiet)
    assert not out.exists(), "a failed run never leaves a .avatar"
    work = output_paths(out)["work"]
    assert (work / "train.ckpt").is_file() and (work / "fit.npz").is_file()

    monkeypatch.setattr(avatar_file, "save_avatar", original)
    messages: list[str] = []
    report = reconstruct(_options(photo, out, keypoints=keypoints, mask=mask, steps=8, resume=True),
                         log=messages.append)
    assert out.is_file()
    assert any("resumed" in m for m in messages), messages
    assert report["training"]["resumed_from"] == 8


# -- real photos --------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_photo_with_openpose_keypoints_reconstructs(tmp_path):
    photo = SHARED_DATA / "images" / "pifuhd_test.png"
    keypoints = SHARED_DATA / "keypoints" / "pifuhd_test_keypoints.json"
    if not photo.exists() or not keypoints.exists():
        pytest.skip(f"shared test data absent ({photo})")
    out = tmp_path / "pifuhd.avatar"
    report = reconstruct(_options(photo, out, keypoints=keypoints, steps=6), log=_quiet)
    assert out.is_file()
    assert report["fit"]["keypoint_error_px"] < 6.0
    assert report["fit"]["mask_iou"] > 0.6


@pytest.mark.slow
def test_real_photo_with_mask_reconstructs(tmp_path, open_body_file):
    photo = SHARED_DATA / "images" / "pifu_ryota.png"
    mask = SHARED_DATA / "images" / "pifu_ryota_mask.png"
    if not photo.exists():
        pytest.skip(f"shared test data absent ({photo})")
    # No keypoint file comes with this photo: start from an initial pose (as Blender sends).
    init = tmp_path / "init.json"
    init.write_text(json.dumps({"body_pose": np.zeros((21, 3)).tolist(), "betas": [0.0] * 10}))
    out = tmp_path / "ryota.avatar"
    report = reconstruct(_options(photo, out, mask=mask, init=init, steps=4), log=_quiet)
    assert out.is_file()
    assert report["subject"]["mask_source"] == "file"
    assert report["fit"]["mask_iou"] > 0.5


@pytest.mark.slow
def test_demo_writes_every_output_it_lists(tmp_path, open_body_file, monkeypatch):
    from oneshot_avatar.reconstruct import pipeline
    from oneshot_avatar.reconstruct.demo import run_demo

    # The demo's outputs, not its fit: the tests' tiny preset (tests/tiny_serve.py).
    monkeypatch.setattr(pipeline, "make_preset", tiny_preset)

    outputs = run_demo(tmp_path / "demo", steps=2, render_size=64, quiet=True)
    for name in ("photo", "keypoints", "avatar", "report", "preview", "turnaround", "video", "fidelity"):
        assert Path(outputs[name]).is_file(), name
    assert Path(outputs["video"]).stat().st_size > 1000
    fidelity = json.loads(Path(outputs["fidelity"]).read_text())
    assert set(fidelity) == {"input_view", "held_out_pose"}
    assert all(np.isfinite(v["psnr"]) for v in fidelity.values())


# -- the photo alone ----------------------------------------------------------------------------

SHARED_PHOTOS = sorted(p.name for p in (SHARED_DATA / "images").glob("*")
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
                       and "_mask" not in p.stem) if (SHARED_DATA / "images").is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_PHOTOS or ["(no shared photos)"])
def test_every_shared_photo_reconstructs_from_the_photo_alone(name, tmp_path, open_body,
                                                             monkeypatch):
    """No keypoints, mask or initial pose: the embedded detector finds the body and the mask."""
    from oneshot_avatar.detect import DETECTOR_NAME
    from oneshot_avatar.reconstruct import pipeline

    if not SHARED_PHOTOS:
        pytest.skip(f"shared test photos absent ({SHARED_DATA / 'images'})")
    monkeypatch.setattr(pipeline, "make_preset", tiny_preset)  # tests/tiny_serve.py
    out = tmp_path / "me.avatar"
    report = reconstruct(_options(SHARED_DATA / "images" / name, out, resolution=64, steps=1,
                                  body=open_body), log=_quiet)
    assert out.is_file()
    assert report["plugins"]["keypoints"] == DETECTOR_NAME
    assert report["subject"]["mask_source"] == f"detector:{DETECTOR_NAME}+grabcut"
    assert report["detection"]["source"] == DETECTOR_NAME and report["detection"]["people"] >= 1
    assert report["fit"]["landmarks"]["source"] == DETECTOR_NAME
    assert report["fit"]["keypoint_error_px"] < 8.0  # px of the 64 px working image
    assert report["fit"]["mask_iou"] > 0.4
    assert output_paths(out)["landmarks"].is_file()


def test_a_photo_without_a_person_fails_before_any_long_work(tmp_path):
    from PIL import Image

    y, x = np.mgrid[0:300, 0:400]
    photo = tmp_path / "wall.png"
    Image.fromarray(np.stack([x % 256, y % 256, (x * y) % 256], -1).astype(np.uint8)).save(photo)
    out = tmp_path / "wall.avatar"
    with pytest.raises(UserError, match="no person found") as error:
        reconstruct(_options(photo, out), log=_quiet)
    assert error.value.field == "photo"
    assert not out.exists() and not output_paths(out)["work"].exists()


def test_without_the_detector_installed_a_photo_alone_says_how_to_install_it(tmp_path,
                                                                            monkeypatch):
    from oneshot_avatar import detect

    photo = SHARED_DATA / "images" / "pifu_ryota.png"
    if not photo.exists():
        pytest.skip(f"shared test data absent ({photo})")
    monkeypatch.setattr(detect, "mediapipe_problem",
                        lambda: f"not installed: run `{detect.INSTALL_COMMAND}`")
    out = tmp_path / "me.avatar"
    with pytest.raises(UserError, match="no way to find the body") as error:
        reconstruct(_options(photo, out), log=_quiet)
    assert detect.INSTALL_COMMAND in str(error.value) and error.value.field == "keypoints"
    assert not output_paths(out)["work"].exists()


def test_the_service_and_the_cli_name_the_same_ways_to_find_the_body():
    """One message, said in the words of whoever asked: CLI options or request fields."""
    from oneshot_avatar.reconstruct.inputs import no_way_to_find_the_body

    cli = str(no_way_to_find_the_body("the detector is off"))
    service = str(no_way_to_find_the_body("no detector", asked_by="service"))
    for cli_name, field in (("--keypoints", "'keypoints'"), ("--init", "'init'")):
        assert cli_name in cli and field in service and cli_name not in service
    assert no_way_to_find_the_body("x").field == "keypoints"
