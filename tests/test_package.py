"""The .avatar package: lossless round trip, standard 3DGS columns, and validation."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.package import load_avatar, save_avatar, standard_ply_bytes
from oneshot_avatar.package.ply import decode_ply
from zip_members import rewrite_zip


@pytest.fixture(scope="module")
def avatar_parts(open_body):
    betas = torch.linspace(-1, 1, open_body.num_betas)
    with torch.no_grad():
        rest = open_body(betas=betas[None]).vertices[0]
    g = MeshGaussians.on_mesh(rest, open_body.faces, 30000, sh_degree=2, seed=1)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    return g, betas


@pytest.fixture()
def avatar_file(tmp_path, open_body, avatar_parts):
    g, betas = avatar_parts
    return save_avatar(tmp_path / "person.avatar", g, open_body, betas,
                       report={"psnr": 31.5}, source_photo_sha256="ab" * 32)


def test_round_trip_is_lossless(avatar_file, open_body, avatar_parts):
    g, betas = avatar_parts
    avatar = load_avatar(avatar_file, body=open_body)
    for name, param in g.named_parameters():
        assert torch.equal(getattr(avatar.gaussians, name).detach(), param.detach()), name
    assert torch.equal(avatar.gaussians.binding, g.binding)
    assert torch.equal(avatar.betas, betas)
    assert avatar.meta["training"] == {"psnr": 31.5}
    assert avatar.meta["body_model"]["sha256"] == open_body.info.sha256
    assert len(avatar.expression_names) == 52
    # Posing the loaded avatar gives the same Gaussians as posing the original.
    pose = torch.zeros(1, 21, 3)
    pose[0, 15] = torch.tensor([0.0, 0.0, -1.0])
    with torch.no_grad():
        a = avatar.pose(open_body, body_pose=pose)
        b = g.place(open_body(body_pose=pose, betas=betas[None], vertex_offsets=g.vertex_offsets).vertices,
                    open_body.faces)
    torch.testing.assert_close(a.means, b.means)


def test_ply_has_standard_columns_in_rest_pose(avatar_file, open_body, avatar_parts):
    g, betas = avatar_parts
    with zipfile.ZipFile(avatar_file) as zf:
        columns, _ = decode_ply(zf.read("gaussians.ply"))
    standard = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    standard += [f"f_rest_{i}" for i in range(3 * 8)]
    assert all(name in columns for name in standard)
    with torch.no_grad():
        rest = g.place(open_body(betas=betas[None], vertex_offsets=g.vertex_offsets).vertices, open_body.faces)
    xyz = np.stack([columns["x"], columns["y"], columns["z"]], -1)
    np.testing.assert_allclose(xyz, rest.means[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.exp(columns["scale_0"]), rest.scales[0, :, 0].numpy(), rtol=1e-5)
    # f_rest is channel-major as in 3DGS: f_rest_{c*(K-1)+k} = sh_rest[k, c].
    np.testing.assert_array_equal(columns["f_rest_9"], g.sh_rest[:, 1, 1].detach().numpy())


def test_rig_has_what_blender_needs(avatar_file, open_body):
    avatar = load_avatar(avatar_file)
    rig = avatar.rig
    assert rig["gaussian_joint_indices"].shape == (30000, 4)
    np.testing.assert_allclose(rig["gaussian_joint_weights"].sum(1), 1.0, atol=1e-5)
    # A Gaussian on the left hand is driven by left-hand joints.
    x = rig["rest_vertices"][:, 0]
    assert x.max() > 0.7
    with torch.no_grad():
        placed = avatar.gaussians.place(torch.from_numpy(rig["rest_vertices"])[None], open_body.faces)
    wrist_x = float(rig["rest_joints"][20, 0])
    on_left_hand = placed.means[0, :, 0] > wrist_x + 0.05
    top_joint = rig["gaussian_joint_indices"][on_left_hand.numpy(), 0]
    assert np.isin(top_joint, [20] + list(range(25, 40))).all()


def test_standard_ply_export_opens_as_plain_3dgs(avatar_file, open_body):
    avatar = load_avatar(avatar_file)
    with torch.no_grad():
        posed = avatar.pose(open_body, body_pose=torch.zeros(1, 21, 3))
    columns, _ = decode_ply(standard_ply_bytes(posed, avatar.gaussians))
    assert "face_id" not in columns and len(columns["x"]) == 30000


def test_body_model_mismatch_is_clear(avatar_file, open_body):
    avatar = load_avatar(avatar_file)
    avatar.meta["body_model"]["sha256"] = "0" * 64
    with pytest.raises(UserError, match="made with body model .* --body-model"):
        avatar.pose(open_body)


def test_failed_write_leaves_no_file(tmp_path, open_body, avatar_parts, monkeypatch):
    g, betas = avatar_parts
    target = tmp_path / "x.avatar"
    target.write_bytes(b"old")
    from oneshot_avatar import atomic

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(UserError, match="No space left"):
        save_avatar(target, g, open_body, betas)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.avatar"]


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m.update(schema="oneshot-avatar/9"), "schema"),
        (lambda m: m.pop("betas"), "betas"),
        (lambda m: m["gaussians"].update(count=12), "gaussians.count"),
        (lambda m: m["body_model"].update(num_faces="many"), "body_model.num_faces"),
    ],
)
def test_bad_metadata_names_the_field(avatar_file, tmp_path, change, field):
    with zipfile.ZipFile(avatar_file) as zf:
        meta = json.loads(zf.read("avatar.json"))
    change(meta)
    bad = rewrite_zip(avatar_file, tmp_path / "bad.avatar", **{"avatar.json": json.dumps(meta)})
    with pytest.raises(BadFileError) as info:
        load_avatar(bad)
    assert info.value.field == field


def test_corrupted_members_are_named(avatar_file, tmp_path):
    with zipfile.ZipFile(avatar_file) as zf:
        ply = bytearray(zf.read("gaussians.ply"))
    ply[-10] ^= 0xFF
    with pytest.raises(BadFileError, match="gaussians.ply.*checksum"):
        load_avatar(rewrite_zip(avatar_file, tmp_path / "a.avatar",
                                **{"gaussians.ply": bytes(ply)}))
    with pytest.raises(BadFileError, match="no 'rig.npz'"):
        load_avatar(rewrite_zip(avatar_file, tmp_path / "b.avatar", **{"rig.npz": None}))
    with pytest.raises(BadFileError, match="not valid JSON"):
        load_avatar(rewrite_zip(avatar_file, tmp_path / "c.avatar", **{"avatar.json": b"{nope"}))
    truncated = tmp_path / "d.avatar"
    truncated.write_bytes(avatar_file.read_bytes()[:5000])
    with pytest.raises(BadFileError):
        load_avatar(truncated)
    with pytest.raises(BadFileError, match="does not exist"):
        load_avatar(tmp_path / "missing.avatar")


def test_nan_and_pickles_are_refused(avatar_file, tmp_path):
    with zipfile.ZipFile(avatar_file) as zf:
        meta = json.loads(zf.read("avatar.json"))
        ply = zf.read("gaussians.ply")
        rig = dict(np.load(io.BytesIO(zf.read("rig.npz")), allow_pickle=False))
    import hashlib

    from oneshot_avatar.package.ply import decode_ply as dec
    from oneshot_avatar.package.ply import encode_ply

    columns, _ = dec(ply)
    columns["local_u"] = columns["local_u"].copy()
    columns["local_u"][3] = np.nan
    bad_ply = encode_ply(columns)
    meta_nan = dict(meta, members={**meta["members"], "gaussians.ply": hashlib.sha256(bad_ply).hexdigest()})
    with pytest.raises(BadFileError, match="local_u.*NaN"):
        load_avatar(rewrite_zip(avatar_file, tmp_path / "nan.avatar",
                             **{"gaussians.ply": bad_ply, "avatar.json": json.dumps(meta_nan)}))
    rig["parents"] = np.array([object()] * 55, dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **rig)
    meta_pk = dict(meta, members={**meta["members"], "rig.npz": hashlib.sha256(buffer.getvalue()).hexdigest()})
    with pytest.raises(BadFileError, match="pickled"):
        load_avatar(rewrite_zip(avatar_file, tmp_path / "pk.avatar",
                             **{"rig.npz": buffer.getvalue(), "avatar.json": json.dumps(meta_pk)}))


def test_output_name_must_end_in_avatar(tmp_path, open_body, avatar_parts):
    g, betas = avatar_parts
    with pytest.raises(UserError, match=".avatar"):
        save_avatar(tmp_path / "x.zip", g, open_body, betas)


def test_sh_degree_zero_round_trip(tmp_path, open_body):
    with torch.no_grad():
        rest = open_body().vertices[0]
    g = MeshGaussians.on_mesh(rest, open_body.faces, 28000, sh_degree=0)
    avatar = load_avatar(save_avatar(tmp_path / "flat.avatar", g, open_body, torch.zeros(open_body.num_betas)))
    assert avatar.gaussians.sh_degree == 0 and avatar.gaussians.sh_rest.shape == (28000, 0, 3)


def test_atomic_writes_get_the_usual_file_permissions(tmp_path):
    import os
    import stat

    from oneshot_avatar.body.npz_io import write_bytes_atomic

    umask = os.umask(0o022)
    try:
        target = tmp_path / "shared.avatar"
        write_bytes_atomic(target, b"data")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644, "readable by others, like open() makes it"
    finally:
        os.umask(umask)
