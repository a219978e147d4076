"""`oneshot-avatar serve` against a real server process on loopback: the full flow, jobs that
survive a kill -9, concurrent renders, cancelling, security and bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.avatar.gaussians import rgb_to_sh0
from oneshot_avatar.package import save_avatar
from oneshot_avatar.package.avatar_file import read_avatar_members
from service_server import module_server, running_server, start_server, wait_for_job
from tiny_disk import mounted_tmpfs
from tiny_serve import TINY

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server_env(body_cache, open_body_file):
    return {"ONESHOT_AVATAR_CACHE": str(body_cache)}


# Reconstructions with the tests' tiny preset (tests/tiny_serve.py): these tests prove the
# service (jobs, progress, artifacts, priorities); the real fast preset's fit and labels are
# tested in-process by tests/test_reconstruct.py.
server = module_server("service", command=TINY)


@pytest.fixture(scope="module")
def package_bytes(tmp_path_factory, open_body) -> bytes:
    with torch.no_grad():
        rest = open_body().vertices[0]
    g = MeshGaussians.on_mesh(rest, open_body.faces, 27420, sh_degree=0, seed=1)
    with torch.no_grad():  # red above the pelvis, blue below
        means = g.place(rest[None], open_body.faces).means[0]
        colors = torch.where((means[:, 1] > -0.35)[:, None], torch.tensor([0.9, 0.1, 0.1]),
                             torch.tensor([0.1, 0.1, 0.9]))
        g.sh0.copy_(rgb_to_sh0(colors)[:, None])
    path = save_avatar(tmp_path_factory.mktemp("pkg") / "small.avatar", g, open_body,
                       torch.zeros(open_body.num_betas))
    return path.read_bytes()


@pytest.fixture(scope="module")
def avatar_id(server, package_bytes) -> str:
    return server.add_avatar(package_bytes, "small.avatar", {"name": "small"})


@pytest.fixture(scope="module")
def subject_files(tmp_path_factory, open_body):
    from oneshot_avatar.reconstruct.demo import write_coco_wholebody
    from oneshot_avatar.reconstruct.synthetic import make_subject

    folder = tmp_path_factory.mktemp("subject")
    subject = make_subject(open_body, "red-check", size=256, texture_resolution=3)
    photo = io.BytesIO()
    Image.fromarray((subject.image * 255 + 0.5).astype(np.uint8)).save(photo, format="PNG")
    mask = io.BytesIO()
    Image.fromarray((subject.mask * 255 + 0.5).astype(np.uint8)).save(mask, format="PNG")
    keypoints = write_coco_wholebody(folder / "k.json", open_body, subject.params, subject.camera)
    return {"photo": photo.getvalue(), "mask": mask.getvalue(), "keypoints": keypoints.read_bytes()}


def _submit(server, subject_files, **settings) -> dict:
    fields = {"preset": "fast", "resolution": "128", "steps": "12", "name": "tester"}
    fields.update({k: str(v) for k, v in settings.items()})
    status, _, data = server.post_form(
        "/v1/reconstructions", fields, {"photo": ("me.png", subject_files["photo"]),
                                        "mask": ("mask.png", subject_files["mask"]),
                                        "keypoints": ("k.json", subject_files["keypoints"])})
    assert status == 202, data
    return json.loads(data)


def _front(size=(64, 64)) -> dict:
    return {"preset": "front", "width": size[0], "height": size[1]}


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# --------------------------------------------------------------------------------------------


def test_health_names_device_body_model_and_plugins(server):
    status, health = server.json("GET", "/v1/health")
    assert status == 200
    assert health["status"] == "ok" and health["api_version"] == 1
    assert health["device"] == "cpu" and health["rasterizer"] == "cpu"
    assert health["body_model"]["kind"] == "open" and "jawOpen" in health["body_model"]["expression_names"]
    assert "talk" in health["motions"] and health["presets"] == ["fast", "quality"]


def test_a_photo_alone_is_accepted_and_health_names_the_detector(server, subject_files):
    from oneshot_avatar.detect import DETECTOR_NAME

    status, health = server.json("GET", "/v1/health")
    assert health["detector"] == DETECTOR_NAME
    assert health["plugins"]["keypoints_default"] == DETECTOR_NAME
    status, _, data = server.post_form("/v1/reconstructions",
                                       {"preset": "fast", "resolution": "128", "steps": "2"},
                                       {"photo": ("me.png", subject_files["photo"])})
    assert status == 202, data
    job = json.loads(data)
    status, _ = server.json("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status in (200, 409)  # 409: it already finished


def test_openapi_schema_lists_the_routes(server):
    status, schema = server.json("GET", "/openapi.json")
    assert status == 200
    for route in ("/v1/health", "/v1/reconstructions", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel",
                  "/v1/avatars", "/v1/avatars/{avatar_id}/package", "/v1/render", "/v1/render-jobs",
                  "/v1/motions/{name}"):
        assert route in schema["paths"], route


def test_full_flow_reconstruct_poll_download_render(server, subject_files, open_body):
    job = _submit(server, subject_files, fov=38.5)  # the photo's field of view, given
    assert job["state"] in ("queued", "running") and job["kind"] == "reconstruct"
    seen: list[dict] = []
    done = wait_for_job(server, job["id"], seen=seen)
    assert done["state"] == "succeeded", done
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    stages = [j["stage"] for j in seen if j["stage"]]
    assert stages[-1] == "package"
    assert set(done["artifacts"]) >= {"report.json", "preview.png"}

    status, _, package = server.request("GET", done["result_url"])
    assert status == 200
    status, _, same = server.request("GET", f"/v1/avatars/{done['avatar_id']}/package")
    assert status == 200 and same == package
    path = server.data_dir / "downloaded.avatar"
    path.write_bytes(package)
    meta, _, _ = read_avatar_members(path)
    assert meta["body_model"]["sha256"] == open_body.info.sha256
    status, _, report = server.request("GET", f"/v1/jobs/{done['id']}/artifacts/report.json")
    assert status == 200 and json.loads(report)["training"]["steps"] == 12
    assert json.loads(report)["plugins"]["field_of_view"] == "38.5 degrees (given)"
    status, _, data = server.post_form("/v1/reconstructions", {"fov": "400"},
                                       {"photo": ("me.png", subject_files["photo"])})
    assert status == 422 and b"fov" in data
    # The person's regions preview is an artifact like the others (a PNG).
    assert "regions.png" in done["artifacts"]
    status, headers, regions = server.request("GET", f"/v1/jobs/{done['id']}/artifacts/regions.png")
    assert status == 200 and regions.startswith(b"\x89PNG")

    request = {"avatar": done["avatar_id"], "motion": {"name": "talk", "frames": [0, 3]},
               "cameras": [_front((48, 64))], "format": "zip"}
    status, headers, data = server.request("POST", "/v1/render", json.dumps(request).encode(),
                                           headers={"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        frames = [_png(zf.read(n)) for n in names]
    assert names == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    for frame in frames:
        assert frame.shape == (64, 48, 4)
        assert frame[..., 3].max() == 255 and frame[..., 3].min() == 0  # the person, and air


def test_render_job_for_a_long_shot(server, avatar_id):
    request = {"avatar": avatar_id, "motion": {"name": "wave", "fps": 10, "frames": [0, 5]},
               "cameras": [{"preset": "orbit", "width": 40, "height": 40}], "format": "zip"}
    status, job = server.json("POST", "/v1/render-jobs", request)
    assert status == 202 and job["kind"] == "render"
    done = wait_for_job(server, job["id"])
    assert done["state"] == "succeeded", done
    status, _, data = server.request("GET", done["result_url"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.namelist()) == 5


def _render_png(server, avatar_id, yaw: float, elbow: float) -> bytes:
    body_pose = np.zeros((1, 63))
    body_pose[0, 17 * 3 + 1] = elbow  # right elbow (joint 19 -> body_pose row 17)
    request = {"avatar": avatar_id,
               "motion": {"params": {"global_orient": [[0.0, yaw, 0.0]], "body_pose": body_pose.tolist()}},
               "cameras": [_front((32, 32))], "format": "png"}
    status, headers, data = server.request("POST", "/v1/render", json.dumps(request).encode(),
                                           headers={"Content-Type": "application/json"})
    assert status == 200, data
    assert headers["content-type"] == "image/png"
    return data


def test_fifty_concurrent_renders_are_all_answered_correctly(server, avatar_id):
    poses = [(0.12 * i, 0.03 * (i % 7)) for i in range(50)]
    expected = {pose: _png(_render_png(server, avatar_id, *pose)) for pose in poses[:5]}
    assert not np.array_equal(expected[poses[0]], expected[poses[4]])  # the pose matters
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda pose: _render_png(server, avatar_id, *pose), poses))
    assert len(answers) == 50
    for pose, data in zip(poses, answers):
        image = _png(data)
        assert image.shape == (32, 32, 4) and image[..., 3].max() > 0
        if pose in expected:  # the same request alone and among 49 others: the same image
            np.testing.assert_array_equal(image, expected[pose])


def test_a_render_goes_ahead_of_training(server, subject_files, avatar_id):
    job = _submit(server, subject_files, steps=400)
    wait_for_job(server, job["id"], until=lambda j: j["stage"] == "train" and j["stage_progress"] > 0)
    _render_png(server, avatar_id, 0.0, 0.0)
    status, running = server.json("GET", f"/v1/jobs/{job['id']}")
    assert running["state"] == "running", "the render had to wait for the whole training"
    status, _ = server.json("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 200
    final = wait_for_job(server, job["id"])
    assert final["state"] == "cancelled" and final["avatar_id"] is None
    assert not (server.data_dir / "jobs" / job["id"] / "out").exists()  # work removed
    status, again = server.json("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 409 and again["error"]["field"] == "job_id"


def _result_training(server, done: dict, tmp_path: Path) -> dict:
    """The training record in the package a finished reconstruction job made (downloaded)."""
    status, _, package = server.request("GET", done["result_url"])
    assert status == 200
    path = tmp_path / "got.avatar"
    path.write_bytes(package)
    meta, _, _ = read_avatar_members(path)
    return meta["training"]["training"]


def test_kill_9_during_training_then_restart_resumes(tmp_path, server_env, subject_files):
    # The tiny preset (tests/tiny_serve.py: a short fit, one label frame) at 64 px, checkpointing
    # every 10 steps: what is proven is the job's survival, not the picture.
    env = {**server_env, "ONESHOT_AVATAR_TEST_CHECKPOINT_EVERY": "10"}
    server = start_server(tmp_path / "data", env=env, command=TINY)
    try:
        job = _submit(server, subject_files, steps=40, resolution=64)
        # kill after the first periodic checkpoint (step 10), well before the end
        wait_for_job(server, job["id"], until=lambda j: j["stage"] == "train" and j["stage_progress"] > 0.3,
                     timeout=900)
    finally:
        server.kill()
    assert (tmp_path / "data" / "jobs" / job["id"] / "out" / "avatar.avatar.work" / "train.ckpt").is_file()
    assert not list((tmp_path / "data" / "avatars").glob("*.avatar"))  # nothing half-written
    server = start_server(tmp_path / "data", env=env, command=TINY)
    try:
        done = wait_for_job(server, job["id"], timeout=900)
        assert done["state"] == "succeeded", done
        log = "\n".join(done["log"])
        assert "server restarted; resuming" in log
        training = _result_training(server, done, tmp_path)
        resumed_from = training.get("resumed_from")
        assert resumed_from is not None and resumed_from >= 10, training
    finally:
        server.stop()
    # A third start: the finished avatar is still listed and downloadable.
    server = start_server(tmp_path / "data", env=env, command=TINY)
    try:
        _, avatars = server.json("GET", "/v1/avatars")
        assert [a["id"] for a in avatars["avatars"]] == [done["avatar_id"]]
    finally:
        server.stop()


# ---- security


def test_token_required_and_compared(tmp_path, server_env):
    server = start_server(tmp_path / "data", env=server_env, token=TOKEN)
    try:
        assert server.json("GET", "/v1/health")[0] == 200
        for header in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"},
                       {"Authorization": f"Basic {TOKEN}"}):
            status, _, data = server.request("GET", "/v1/avatars", headers=header or {"Authorization": ""})
            assert status == 401, header
            assert json.loads(data)["error"]["field"] == "authorization"
    finally:
        server.stop()


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path, server_env):
    result = subprocess.run([sys.executable, "-m", "oneshot_avatar", "serve", "--host", "0.0.0.0",
                             "--port", "0", "--data-dir", str(tmp_path)], check=False, capture_output=True,
                            text=True, timeout=120, env={**server_env, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "without a token" in result.stderr


@pytest.mark.parametrize("path", [
    "/v1/jobs/..%2F..%2Fservice.db", "/v1/jobs/j_0123456789abcdef/artifacts/..%2F..%2Fservice.db",
    "/v1/avatars/a_..%2F..%2Fservice/package", "/v1/avatars/..%2Fservice.db/package",
    "/v1/jobs/j_0123456789abcdef/artifacts/inputs%2Fphoto.png",
])
def test_path_traversal_is_refused(server, path):
    status, _, data = server.request("GET", path)
    assert status in (404, 422), (status, data)
    assert b"SQLite" not in data


def test_cross_origin_and_foreign_host_are_refused(server):
    status, _, data = server.request("GET", "/v1/health", headers={"Origin": "https://evil.example"})
    assert status == 403 and json.loads(data)["error"]["field"] == "origin"
    status, _, data = server.request("GET", "/v1/health", headers={"Host": "evil.example:80"})
    assert status == 421


# ---- bad input: 4xx naming the field, and the server keeps serving


def test_bad_uploads_name_the_field(server, subject_files):
    cases = [
        ({"photo": ("p.png", b"GIF89a not allowed")}, "photo"),
        ({"photo": ("p.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40)}, "photo"),  # a broken PNG
        ({"photo": ("p.png", subject_files["photo"]), "keypoints": ("k.json", b"{nope")}, "keypoints"),
        ({"photo": ("p.png", subject_files["photo"]), "keypoints": ("k.json", subject_files["keypoints"]),
          "mask": ("m.png", b"%PDF-1.4")}, "mask"),
        ({"photo": ("p.exe", subject_files["photo"]), "init": ("i.npz", b"PK\x03\x04junk")}, "init"),
    ]
    for files, field in cases:
        status, _, data = server.post_form("/v1/reconstructions", {}, files)
        error = json.loads(data)["error"]
        assert status == 422 and error["field"].split(".")[0] == field, (field, error)
    status, _, data = server.post_form("/v1/reconstructions", {"preset": "ultra"},
                                       {"photo": ("p.png", subject_files["photo"])})
    assert status == 422 and json.loads(data)["error"]["field"] == "preset"
    assert server.json("GET", "/v1/health")[0] == 200


def test_oversized_upload_is_refused(tmp_path, server_env):
    server = start_server(tmp_path / "data", env=server_env, extra_args=("--max-upload-mb", "1"))
    try:
        status, _, data = server.post_form(
            "/v1/avatars", {}, {"package": ("big.avatar", b"PK\x03\x04" + b"\0" * 2_000_000)})
        assert status == 413 and json.loads(data)["error"]["field"] == "content-length"
        assert server.json("GET", "/v1/health")[0] == 200
    finally:
        server.stop()


def test_bad_packages_are_refused(server, package_bytes):
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package_bytes)) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "avatar.json":
                meta = json.loads(data)
                meta["body_model"]["sha256"] = "0" * 64
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    cases = [(b"not a zip", "package"), (package_bytes[: len(package_bytes) // 2], "package"),
             (tampered.getvalue(), "package.body_model.sha256")]
    for data, field in cases:
        status, _, answer = server.post_form("/v1/avatars", {}, {"package": ("x.avatar", data)})
        assert status == 422 and json.loads(answer)["error"]["field"] == field, answer
    assert not list((server.data_dir / "tmp").iterdir())  # nothing left behind


def test_bad_render_requests_name_the_field(server, avatar_id):
    base = {"avatar": avatar_id, "motion": {"name": "talk", "frames": [0, 1]}, "cameras": [_front()]}
    cases = [
        ({"motion": {"name": "moonwalk"}}, "motion.name"),
        ({"motion": {"name": "talk", "frames": [5, 2]}}, "motion.frames"),
        ({"motion": {"params": {"body_pose": [[0.0] * 62]}}}, "motion.params.body_pose[0]"),
        ({"motion": {"params": {"tail_pose": [[0.0] * 3]}}}, "motion.params.tail_pose"),
        ({"cameras": [{"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "world_to_cam": [[1, 0], [0, 1]],
                       "width": 64, "height": 64}]}, "cameras[0].world_to_cam[0]"),
        ({"cameras": [{"blender": {"lens_mm": -5, "resolution_x": 64, "resolution_y": 64,
                                   "matrix_world": np.eye(4).tolist()}}]}, "cameras[0].blender.lens_mm"),
        ({"motion": {"name": "talk", "frames": [0, 2]}, "cameras": [_front()] * 3}, "cameras"),
        ({"motion": {"name": "talk", "frames": [0, 2]}, "format": "png"}, "format"),
        ({"avatar": "a_0000000000000000"}, "avatar"),
        ({"avatar": "../../service.db"}, "avatar"),
    ]
    for change, field in cases:
        status, answer = server.json("POST", "/v1/render", {**base, **change})
        assert status in (404, 422) and answer["error"]["field"] == field, (change, answer)
    assert server.json("GET", "/v1/health")[0] == 200


def test_out_of_bounds_values_are_refused_naming_the_field(server, avatar_id):
    """Bounds live in the schema and are enforced before any work (fps=5e-324 used to reach the
    clip resampler and answer 500)."""
    for query in ("fps=5e-324", "fps=0", "fps=241", "fps=nan", "fps=inf", "fps=fast"):
        status, answer = server.json("GET", f"/v1/motions/idle?{query}")
        assert status == 422 and answer["error"]["field"] == "fps", (query, answer)
    base = {"avatar": avatar_id, "motion": {"name": "talk", "frames": [0, 1]}, "cameras": [_front()]}
    cases = [
        ({"size": [4, 64]}, "size[0]"),
        ({"background": [2, 0, 0]}, "background[0]"),
        ({"cameras": [{"preset": "front", "width": 0}]}, "cameras[0].width"),
        ({"cameras": [{"preset": "front", "height": 10**6}]}, "cameras[0].height"),
        ({"motion": {"name": "talk", "fps": 0}}, "motion.fps"),
        ({"motion": {"name": "talk", "frames": [-1, 2]}}, "motion.frames[0]"),
        ({"motion": {"params": {"transl": [[0.0, 0.0]]}}}, "motion.params.transl[0]"),
        ({"cameras": []}, "cameras"),
    ]
    for change, field in cases:
        status, answer = server.json("POST", "/v1/render", {**base, **change})
        assert status == 422 and answer["error"]["field"] == field, (change, answer)
    status, _, data = server.request("POST", "/v1/render", b"\xff\xfe{not json",
                                     headers={"Content-Type": "application/json"})
    assert status in (400, 422) and json.loads(data)["error"]["field"] == "body"
    assert "Traceback" not in server.log_text()


def test_wrong_method_is_405_with_allow_listing_every_method_of_the_path(server, avatar_id):
    for method, path, allowed in [("TRACE", f"/v1/avatars/{avatar_id}", "DELETE, GET"),
                                  ("PUT", "/v1/avatars", "GET, POST"),
                                  ("DELETE", "/v1/render", "POST")]:
        status, headers, data = server.request(method, path)
        assert status == 405 and headers.get("allow") == allowed, (method, path, headers)
        assert json.loads(data)["error"]["status"] == 405


def test_schema_declares_the_errors_and_links(server):
    _, schema = server.json("GET", "/openapi.json")
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            assert {"400", "401", "403", "413", "421", "422", "503"} <= declared, (method, path)
            if "{" in path:
                assert "404" in declared, (method, path)
    created = schema["paths"]["/v1/avatars"]["post"]["responses"]["201"]["links"]
    assert {"GetAvatar", "DownloadAvatar", "DeleteAvatar"} <= set(created)
    job = schema["paths"]["/v1/reconstructions"]["post"]["responses"]["202"]["links"]
    assert {"GetJob", "CancelJob", "GetJobResult"} <= set(job)
    form = schema["paths"]["/v1/reconstructions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["encoding"]["photo"]["contentType"] == "image/png, image/jpeg, image/webp"


def test_motion_clips_as_json(server):
    status, motion = server.json("GET", "/v1/motions/wave?fps=10")
    assert status == 200 and motion["fps"] == 10
    frames = len(motion["params"]["body_pose"])
    assert frames > 1 and all(len(row) == 63 for row in motion["params"]["body_pose"])
    assert len(motion["params"]["left_hand_pose"][0]) == 45
    assert server.json("GET", "/v1/motions/moonwalk")[0] == 404


def test_upload_list_download_delete_avatar(server, package_bytes):
    status, _, data = server.post_form("/v1/avatars", {},
                                       {"package": ("mine.avatar", package_bytes)})
    record = json.loads(data)
    assert status == 201 and record["name"] == "mine" and record["gaussians"] == 27420
    assert record["id"] in [a["id"] for a in server.json("GET", "/v1/avatars")[1]["avatars"]]
    status, _, same = server.request("GET", f"/v1/avatars/{record['id']}/package")
    assert same == package_bytes
    assert server.request("DELETE", f"/v1/avatars/{record['id']}")[0] == 204
    assert server.json("GET", f"/v1/avatars/{record['id']}")[0] == 404


def test_jobs_listed_newest_first(server):
    status, listing = server.json("GET", "/v1/jobs")
    assert status == 200
    created = [job["created"] for job in listing["jobs"]]
    assert created == sorted(created, reverse=True)
    assert server.json("GET", "/v1/jobs?state=bogus")[0] == 422


def test_concurrent_thread_safety_of_job_store(tmp_path):
    """Many threads updating jobs at once: every update lands (SQLite with one lock)."""
    from oneshot_avatar.service.store import Job, Store, new_job_id

    store = Store(tmp_path)
    jobs = [store.add_job(Job(id=new_job_id(), kind="render", state="queued")) for _ in range(8)]

    def hammer(job):
        for i in range(50):
            store.update_job(job.id, progress=i / 49, log_line=f"line {i}")

    threads = [threading.Thread(target=hammer, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in jobs:
        again = store.get_job(job.id)
        assert again.progress == 1.0 and again.log[-1] == "line 49" and len(again.log) == 50
    store.close()


def test_package_path_is_inside_the_store(tmp_path):
    from oneshot_avatar.service.store import Store

    store = Store(tmp_path)
    with pytest.raises(ValueError):
        store.avatar_path("a_../../etc")
    with pytest.raises(ValueError):
        store.job_dir("../j_0123456789abcdef")
    assert Path(store.avatar_path("a_0123456789abcdef")).parent == tmp_path / "avatars"
    store.close()


# ---- faults


def test_sigterm_during_training_then_restart_resumes(tmp_path, server_env, subject_files):
    """A graceful stop (SIGTERM, as systemd or Ctrl-C sends) between two training steps saves a
    checkpoint there; the next start resumes from it, not from the last periodic checkpoint."""
    # No periodic checkpoint: only the stop can save one. 300 steps at 64 px (the smallest the
    # API takes): long enough that the stop lands mid-training on a fast machine (20 steps once
    # finished between the poll that saw training start and the stop).
    steps = 300
    env = {**server_env, "ONESHOT_AVATAR_TEST_CHECKPOINT_EVERY": "100000"}
    server = start_server(tmp_path / "data", env=env, command=TINY)  # the tiny preset
    try:
        job = _submit(server, subject_files, steps=steps, resolution=64)
        running = wait_for_job(server, job["id"], timeout=900,
                               until=lambda j: j["stage"] == "train" and j["stage_progress"] > 0)
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]  # a graceful stop
    assert "stopping" in server.log_text()
    assert (tmp_path / "data" / "jobs" / job["id"] / "out" / "avatar.avatar.work" / "train.ckpt").is_file()
    server = start_server(tmp_path / "data", env=env, command=TINY)
    try:
        _, stopped = server.json("GET", f"/v1/jobs/{job['id']}")
        assert "server stopping; the job resumes when it starts again" in stopped["log"]
        done = wait_for_job(server, job["id"], timeout=900)
        assert done["state"] == "succeeded", done
        resumed_from = _result_training(server, done, tmp_path).get("resumed_from")
        assert resumed_from is not None
        assert round(running["stage_progress"] * steps) <= resumed_from < steps
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_folder_refuses_to_start(tmp_path, server_env):
    first = start_server(tmp_path / "data", env=server_env)
    try:
        result = subprocess.run([sys.executable, "-m", "oneshot_avatar", "serve", "--port", "0",
                                 "--device", "cpu", "--data-dir", str(tmp_path / "data")],
                                check=False, capture_output=True, text=True, timeout=300,
                                env={**os.environ, **server_env})
        assert result.returncode == 2, result.stderr
        assert f"another oneshot-avatar server (pid {first.proc.pid}) is using the data folder" \
            in result.stderr and "--data-dir" in result.stderr
        assert first.json("GET", "/v1/health")[0] == 200  # the first one is untouched
    finally:
        first.kill()  # kill -9: the kernel drops the lock with the process
    second = start_server(tmp_path / "data", env=server_env)
    assert second.json("GET", "/v1/health")[0] == 200
    assert second.stop() == 0
    # and after a clean stop: the lock a third server takes first is free (no third start, which
    # would only repeat the second's)
    from oneshot_avatar.service.store import DataDirLock

    DataDirLock(tmp_path / "data").release()


def test_disk_full_during_a_render_job_fails_it_clearly_and_keeps_the_avatar(
        tmp_path, server_env, package_bytes):
    """The data folder on a real 16 MiB filesystem, filled up to leave 200 kB: a render
    job's frames do not fit, the job fails saying the disk is full, no half-written zip is left,
    and the avatar's package is untouched."""
    with mounted_tmpfs(tmp_path / "data", "16m") as data, \
            running_server(data, env=server_env) as server:
        avatar = server.add_avatar(package_bytes, "small.avatar")
        free = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
        (data / "filler").write_bytes(b"\0" * max(0, free - 200_000))
        # 12 frames of ~100 kB each (measured: 4 frames fit in 400 kB)
        request = {"avatar": avatar, "motion": {"name": "wave", "fps": 10, "frames": [0, 12]},
                   "cameras": [{"preset": "front", "width": 512, "height": 512}], "format": "zip",
                   "background": None}
        status, job = server.json("POST", "/v1/render-jobs", request)
        assert status == 202, job
        done = wait_for_job(server, job["id"], timeout=900)
        assert done["state"] == "failed", done
        assert "disk is full" in done["error"]["message"] and "no space left" in done["error"]["message"]
        assert not list((data / "jobs" / job["id"] / "render").glob("*"))  # no half-written zip
        status, _, package = server.request("GET", f"/v1/avatars/{avatar}/package")
        assert status == 200 and package == package_bytes
        (data / "filler").unlink()
        assert server.json("GET", "/v1/health")[0] == 200


def test_the_fakes_answers_have_the_real_servers_fields(server, avatar_id):
    """tests/service_answers.py (the answers of the add-on tests' fakes, built by the schemas)
    carries exactly the fields a real server answers with."""
    import service_answers

    _, health = server.json("GET", "/v1/health")
    assert set(service_answers.health()) == set(health)
    assert set(service_answers.health()["body_model"]) == set(health["body_model"])
    status, job = server.json("POST", "/v1/render-jobs", {
        "avatar": avatar_id, "motion": {"name": "wave", "fps": 10, "frames": [0, 1]},
        "cameras": [_front()], "format": "zip"})
    assert status == 202, job
    assert set(service_answers.job()) == set(job)
    status, error = server.json("GET", "/v1/jobs/j_0000000000000000")
    assert status == 404 and set(service_answers.error(404, "x")["error"]) == set(error["error"])
    _, motion = server.json("GET", "/v1/motions/wave")
    assert set(service_answers.motion()) == set(motion)
    with pytest.raises(TypeError, match="no field"):
        service_answers.job(stage_percent=50)  # a fake's invented field
