"""blender_addon.core.package reads what the backend writes, and refuses damaged packages with
an error naming the field."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from blender_addon.core import smplx_rig
from blender_addon.core.package import PackageError, read_avatar_package

from addon_packages import build_test_package


@pytest.fixture(scope="module")
def package_path(tmp_path_factory, open_body):
    return build_test_package(tmp_path_factory.mktemp("pkg") / "person.avatar", open_body, 3000,
                              sh_degree=1)


def test_layout_constants_mirror_the_backend():
    from oneshot_avatar.body import smplx_layout

    assert smplx_rig.JOINT_NAMES == smplx_layout.JOINT_NAMES
    assert smplx_rig.PARENTS == smplx_layout.PARENTS
    assert smplx_rig.POSE_PARAM_JOINTS == smplx_layout.POSE_PARAM_JOINTS
    assert smplx_rig.NOMINAL_PELVIS_REST == smplx_layout.NOMINAL_PELVIS_REST
    assert smplx_rig.BONE_NAMES[0] == "root" and len(smplx_rig.BONE_NAMES) == 56


def test_reads_the_backends_package(package_path, open_body):
    from oneshot_avatar.package.avatar_file import read_avatar_members

    meta, columns, rig = read_avatar_members(package_path)
    package = read_avatar_package(package_path)
    n = meta["gaussians"]["count"]
    assert package.count == n == 3000
    np.testing.assert_array_equal(package.positions,
                                  np.stack([columns[c] for c in "xyz"], -1))
    f_dc = np.stack([columns[f"f_dc_{i}"] for i in range(3)], -1)
    np.testing.assert_allclose(package.colors[:, :3], np.clip(0.5 + 0.28209479 * f_dc, 0, 1),
                               atol=1e-6)
    np.testing.assert_allclose(package.opacities, 1 / (1 + np.exp(-columns["opacity"])), atol=1e-6)
    np.testing.assert_allclose(package.scales[:, 0], np.exp(columns["scale_0"]), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(package.rotations, axis=-1), 1, atol=1e-6)
    np.testing.assert_array_equal(package.joint_indices, rig["gaussian_joint_indices"])
    np.testing.assert_allclose(package.joint_weights, rig["gaussian_joint_weights"], atol=1e-6)
    np.testing.assert_array_equal(package.rest_joints, rig["rest_joints"])
    assert package.expression_names == list(open_body.expression_names)
    assert package.body_model["sha256"] == open_body.info.sha256


def _rewrite(path, out, **replace):
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = replace.get(name.replace(".", "_"), zin.read(name))
            if data is not None:
                zout.writestr(name, data)
    return out


def _resign(path, out, **members):
    """Rewrite members and fix the checksums, so deeper validation is reached."""
    import hashlib

    with zipfile.ZipFile(path) as zin:
        raw = {name: zin.read(name) for name in zin.namelist()}
    raw.update({k.replace("_", ".", 1) if k != "avatar_json" else "avatar.json": v
                for k, v in members.items()})
    meta = json.loads(raw["avatar.json"])
    for name in ("gaussians.ply", "rig.npz"):
        meta["members"][name] = hashlib.sha256(raw[name]).hexdigest()
    raw["avatar.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(out, "w") as zout:
        for name, data in raw.items():
            zout.writestr(name, data)
    return out


def _rig_with(path, **arrays):
    with zipfile.ZipFile(path) as zin, np.load(io.BytesIO(zin.read("rig.npz"))) as rig:
        values = {k: rig[k] for k in rig.files}
    values.update(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **values)
    return buffer.getvalue()


def test_damaged_packages_name_the_field(package_path, tmp_path):
    def field_of(path):
        with pytest.raises(PackageError) as info:
            read_avatar_package(path)
        return info.value.field, str(info.value)

    not_zip = tmp_path / "a.avatar"
    not_zip.write_bytes(b"hello")
    assert "not a zip" in field_of(not_zip)[1]
    truncated = tmp_path / "t.avatar"
    truncated.write_bytes(package_path.read_bytes()[:5000])
    field_of(truncated)
    assert field_of(_rewrite(package_path, tmp_path / "m.avatar", rig_npz=None))[0] == "rig.npz"
    assert field_of(_rewrite(package_path, tmp_path / "j.avatar",
                             avatar_json=b"{not json"))[0] == "avatar.json"
    meta = json.loads(zipfile.ZipFile(package_path).read("avatar.json"))
    assert field_of(_rewrite(package_path, tmp_path / "s.avatar", avatar_json=json.dumps(
        {**meta, "schema": "oneshot-avatar/9"}).encode()))[0] == "schema"
    assert field_of(_rewrite(package_path, tmp_path / "c.avatar", avatar_json=json.dumps(
        {**meta, "gaussians": {"count": "many", "sh_degree": 1}}).encode()))[0] == "gaussians.count"
    ply = zipfile.ZipFile(package_path).read("gaussians.ply")
    assert field_of(_rewrite(package_path, tmp_path / "k.avatar",
                             gaussians_ply=ply[:-8]))[0] == "members.gaussians.ply"
    assert field_of(_resign(package_path, tmp_path / "p.avatar",
                            gaussians_ply=ply[:-8]))[0] == "gaussians.ply"
    renamed = ply.replace(b"property float opacity", b"property float opacitx")
    assert field_of(_resign(package_path, tmp_path / "o.avatar",
                            gaussians_ply=renamed))[0] == "gaussians.ply:opacity"
    bad_joints = np.full((55, 3), np.nan, np.float32)
    assert field_of(_resign(package_path, tmp_path / "n.avatar", rig_npz=_rig_with(
        package_path, rest_joints=bad_joints)))[0] == "rig.npz:rest_joints"
    wrong_index = np.full((3000, 4), 77, np.int32)
    assert field_of(_resign(package_path, tmp_path / "i.avatar", rig_npz=_rig_with(
        package_path, gaussian_joint_indices=wrong_index)))[0] == "rig.npz:gaussian_joint_indices"
    pickled = np.array([{"a": 1}] * 55, dtype=object)
    buffer = io.BytesIO()
    with zipfile.ZipFile(package_path) as zin, np.load(io.BytesIO(zin.read("rig.npz"))) as rig:
        values = {k: rig[k] for k in rig.files}
    np.savez(buffer, **{**values, "joint_names": pickled})
    assert field_of(_resign(package_path, tmp_path / "q.avatar",
                            rig_npz=buffer.getvalue()))[0] == "rig.npz:joint_names"


def test_face_offsets_are_read_and_checked(package_path, tmp_path, open_body):
    """The Gaussians the face units move (issue 17's face object): read as written, with the
    offsets the backend's posing gives; optional (older packages have none); bad ones named."""
    import torch

    from oneshot_avatar.package import load_avatar

    package = read_avatar_package(package_path)
    face, offsets = package.expression_gaussians, package.expression_offsets
    names = package.expression_names
    assert 0 < face.size < package.count and offsets.shape == (len(names), face.size, 3)
    # Offset of unit k = backend posing with unit k at 1 minus neutral, at those Gaussians.
    avatar = load_avatar(package_path, body=open_body)
    k = names.index("jawOpen")
    with torch.no_grad():
        neutral = avatar.pose(open_body).means[0].numpy()
        unit = torch.zeros(1, len(names))
        unit[0, k] = 1.0
        opened = avatar.pose(open_body, expression=unit).means[0].numpy()
    np.testing.assert_allclose(offsets[k], (opened - neutral)[face], atol=2e-5)
    others = np.setdiff1d(np.arange(package.count), face)
    assert np.abs(opened - neutral)[others].max() <= 5e-4  # the rest do not move
    # Older packages: no face arrays, nothing to show.
    with zipfile.ZipFile(package_path) as zin, np.load(io.BytesIO(zin.read("rig.npz"))) as rig:
        values = {key: rig[key] for key in rig.files if not key.startswith("expression_")}
    buffer = io.BytesIO()
    np.savez(buffer, **values)
    old = read_avatar_package(_resign(package_path, tmp_path / "old.avatar",
                                      rig_npz=buffer.getvalue()))
    assert old.expression_gaussians.size == 0
    bad = face.copy()
    bad[0] = package.count
    with pytest.raises(PackageError) as error:
        read_avatar_package(_resign(package_path, tmp_path / "bad.avatar", rig_npz=_rig_with(
            package_path, expression_gaussians=bad)))
    assert error.value.field == "rig.npz:expression_gaussians"
