"""Choosing and validating body-model files: errors name the file and field; no pickle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from oneshot_avatar.body import BodyModel, load_body_model, resolve_body_model
from oneshot_avatar.body.npz_io import write_npz_deterministic
from oneshot_avatar.errors import BadFileError, UserError


@pytest.fixture(scope="module")
def model_arrays(open_body_file) -> dict[str, np.ndarray]:
    with np.load(open_body_file, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def test_missing_file_names_it(tmp_path):
    with pytest.raises(BadFileError, match="does not exist") as info:
        BodyModel.from_file(tmp_path / "nope.npz")
    assert "nope.npz" in str(info.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip" * 10)
    with pytest.raises(BadFileError, match="not a valid .npz"):
        BodyModel.from_file(path)


def test_truncated_file(tmp_path, open_body_file):
    path = tmp_path / "truncated.npz"
    path.write_bytes(open_body_file.read_bytes()[: 200_000])
    with pytest.raises(BadFileError) as info:
        BodyModel.from_file(path)
    assert "truncated.npz" in str(info.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("weights", np.ones((13718, 54), np.float32), "weights.*shape \\(13718, 54\\).*\\(13718, 55\\)"),
        ("v_template", None, "v_template.*missing"),
        ("J_regressor", np.ones((55, 100), np.float32), "J_regressor.*shape"),
        ("f", np.full((10, 3), 99999, np.int32), "'f'.*face indices"),
    ],
)
def test_wrong_fields_are_named(tmp_path, model_arrays, field, value, message):
    arrays = dict(model_arrays)
    if value is None:
        del arrays[field]
    else:
        arrays[field] = value
    with pytest.raises(BadFileError, match=message):
        BodyModel.from_file(_write(tmp_path / "bad.npz", arrays))


def test_nan_is_refused(tmp_path, model_arrays):
    arrays = dict(model_arrays)
    template = arrays["v_template"].copy()
    template[10, 1] = np.nan
    arrays["v_template"] = template
    with pytest.raises(BadFileError, match="v_template.*NaN"):
        BodyModel.from_file(_write(tmp_path / "nan.npz", arrays))


def test_wrong_kinematic_tree(tmp_path, model_arrays):
    arrays = dict(model_arrays)
    tree = arrays["kintree_table"].copy()
    tree[0, 20] = 3
    arrays["kintree_table"] = tree
    with pytest.raises(BadFileError, match="kintree_table"):
        BodyModel.from_file(_write(tmp_path / "tree.npz", arrays))


def test_pickled_required_array_is_refused(tmp_path, model_arrays):
    arrays = dict(model_arrays)
    arrays["f"] = np.array([{"evil": 1}], dtype=object)
    with pytest.raises(BadFileError, match="pickled"):
        BodyModel.from_file(_write(tmp_path / "pickled.npz", arrays))


def test_extra_object_arrays_never_reach_smplx(tmp_path, model_arrays, monkeypatch):
    """Official SMPL-X files carry object arrays smplx does not need; they are never unpickled."""
    import pickle

    monkeypatch.setenv("ONESHOT_AVATAR_CACHE", str(tmp_path / "cache"))
    arrays = dict(model_arrays)
    arrays["joint2num"] = np.array([{"pelvis": 0}], dtype=object)
    path = _write(tmp_path / "SMPLX_NEUTRAL.npz", arrays)

    def refuse(*args, **kwargs):
        raise AssertionError("something unpickled a model array")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    body = BodyModel.from_file(path)
    assert body.info.num_vertices == 13718


def test_pkl_files_are_refused(tmp_path):
    path = tmp_path / "SMPLX_NEUTRAL.pkl"
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(BadFileError, match="pickle"):
        BodyModel.from_file(path)


def test_folder_layouts(tmp_path, open_body_file):
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(open_body_file.read_bytes())
    assert resolve_body_model(tmp_path) == ("smplx", tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadFileError, match="no SMPLX_NEUTRAL.npz"):
        resolve_body_model(tmp_path / "empty")


def test_environment_variable_selects_smplx(tmp_path, open_body_file, monkeypatch):
    target = tmp_path / "SMPLX_NEUTRAL.npz"
    target.write_bytes(open_body_file.read_bytes())
    monkeypatch.setenv("SMPLX_MODEL_PATH", str(target))
    body = load_body_model()
    assert body.info.kind == "smplx" and body.info.path == str(target)
    monkeypatch.delenv("SMPLX_MODEL_PATH")
    assert resolve_body_model(None) == ("open", None)


def test_real_smplx_without_names_gets_generic_expression_names(tmp_path, model_arrays):
    arrays = {k: v for k, v in model_arrays.items() if k not in ("expression_names", "num_betas")}
    body = BodyModel.from_file(_write(tmp_path / "SMPLX_NEUTRAL.npz", arrays))
    assert body.num_betas == 10
    assert body.expression_names[:2] == ("expr_000", "expr_001")
    assert body.expression_space == "smplx-pca"


def test_num_betas_out_of_range(open_body_file):
    with pytest.raises(UserError, match="num_betas"):
        BodyModel.from_file(open_body_file, num_betas=301)


def test_deterministic_writer(tmp_path):
    arrays = {"a": np.arange(5, dtype=np.float32), "b": np.array("text"), "c": np.array(3)}
    write_npz_deterministic(tmp_path / "one.npz", arrays)
    write_npz_deterministic(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    loaded = np.load(tmp_path / "one.npz", allow_pickle=False)
    assert loaded["c"].shape == () and str(loaded["b"]) == "text"
    with pytest.raises(ValueError, match="object"):
        write_npz_deterministic(tmp_path / "three.npz", {"x": np.array([None], dtype=object)})
    assert not (tmp_path / "three.npz").exists()


# -- the command line ------------------------------------------------------------------------


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "oneshot_avatar", *args], capture_output=True, text=True, env=env
    )


def test_cli_body_info(body_cache, open_body_file):
    result = _cli("body", "info", "--cache-dir", str(body_cache))
    assert result.returncode == 0, result.stderr
    assert "vertices:    13718" in result.stdout and "faces:       27420" in result.stdout
    assert "joints:      55" in result.stdout and "jawOpen" in result.stdout


def test_cli_bad_body_model_is_one_line_error(tmp_path):
    result = _cli("body", "info", "--body-model", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "missing.npz" in result.stderr
    assert "Traceback" not in result.stderr
