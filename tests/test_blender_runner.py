"""The Blender driver tests' runner: a missing Blender Python is a skip on a workstation and a
loud failure under CI, so CI cannot quietly test fewer Blenders than it claims."""

from __future__ import annotations

import pytest

import blender_runner


@pytest.fixture()
def missing(tmp_path, monkeypatch):
    absent = [tmp_path / ".venv-blender/bin/python", tmp_path / ".venv-blender52/bin/python"]
    monkeypatch.setenv("ONESHOT_AVATAR_BLENDER_PYTHONS", ":".join(map(str, absent)))
    return absent


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_a_missing_blender_python_fails_under_ci(missing, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI must test every Blender"):
        blender_runner.blender_python(missing[0])
    with pytest.raises(pytest.fail.Exception, match=str(missing[0])):
        blender_runner.any_blender_python()  # the drivers' early check, too


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_blender_python_is_a_skip_on_a_workstation(missing, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"\.ci/run"):
        blender_runner.blender_python(missing[1])
    with pytest.raises(pytest.skip.Exception):
        blender_runner.any_blender_python()


def test_under_ci_one_missing_blender_fails_even_when_another_exists(tmp_path, monkeypatch):
    """CI claims both Blenders: one present does not excuse the other."""
    present = tmp_path / "present/bin/python"
    present.parent.mkdir(parents=True)
    present.write_text("")
    absent = tmp_path / ".venv-blender52/bin/python"
    monkeypatch.setenv("ONESHOT_AVATAR_BLENDER_PYTHONS", f"{present}:{absent}")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=str(absent)):
        blender_runner.any_blender_python()
    monkeypatch.delenv("CI")
    assert blender_runner.any_blender_python() == present
