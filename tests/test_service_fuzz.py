"""Property-based tests of the HTTP API generated from its own OpenAPI schema (schemathesis):
whatever a client sends that the schema allows, or nearly allows, the server answers without a
5xx and keeps serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.package import save_avatar
from service_server import module_server

# Several endpoints run the body model or the renderer: keep the examples per operation small.
EXAMPLES = 25
# The schemathesis command line in CI: fixed seed, bounded examples and time.
CLI_SEED, CLI_EXAMPLES, CLI_SECONDS = 20261128, 10, 45
TESTS = Path(__file__).resolve().parent


# Small render limits: generated requests may ask for any size the schema allows.
fuzz_server = module_server("fuzz", extra_args=("--max-render-pixels", "4096",
                                                "--max-render-frames", "4"))


def _operations(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    return operations


@pytest.fixture(scope="module")
def fuzz_avatar(fuzz_server, open_body, tmp_path_factory) -> str:
    with torch.no_grad():
        rest = open_body().vertices[0]
    gaussians = MeshGaussians.on_mesh(rest, open_body.faces, open_body.info.num_faces, sh_degree=0)
    path = save_avatar(tmp_path_factory.mktemp("fuzzpkg") / "f.avatar", gaussians, open_body,
                       torch.zeros(open_body.num_betas))
    return fuzz_server.add_avatar(path.read_bytes(), "f.avatar")


def _aim_at_real_ids(case, avatar_id: str) -> None:
    """Generated ids never exist; point half of the requests at a real avatar so the code behind
    the 404 is exercised too."""
    if isinstance(case.body, dict) and "avatar" in case.body:
        case.body["avatar"] = avatar_id
    if case.path_parameters and "avatar_id" in case.path_parameters:
        case.path_parameters["avatar_id"] = avatar_id


def _arbitrary_file_parts() -> None:
    """Any bytes for the multipart parts whose media types the schema declares (schemathesis
    cannot make those up by itself); the command-line test below sends real files instead."""
    from schemathesis_hooks import MEDIA_FILES

    for media_type in MEDIA_FILES:
        schemathesis.openapi.media_type(media_type, st.binary(max_size=256))


def test_no_server_errors(fuzz_server, fuzz_avatar):
    """Every operation, with generated (valid and invalid) requests: never a 5xx, errors in the
    documented JSON form. (schemathesis' pytest plugin does not load with pytest 9, so the
    operations are driven through its strategies directly.)"""
    _arbitrary_file_parts()
    for operation in _operations(fuzz_server):

        if operation.method.upper() == "DELETE":
            continue  # deleting the real avatar would end the aimed requests; tested elsewhere
        strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @given(case=strategy, aim=st.booleans())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case, aim):
            if aim:
                _aim_at_real_ids(case, fuzz_avatar)
            response = case.call(base_url=fuzz_server.url, timeout=120)
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                response.status_code, response.text[:500])
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["status"] == response.status_code and error["message"]

        check()
    assert fuzz_server.json("GET", "/v1/health")[0] == 200


def test_schemathesis_cli_finds_nothing(fuzz_server, fuzz_avatar, open_body, tmp_path):
    """The outside tester's run, in CI: ``st run --checks all`` (every phase: coverage, fuzzing, and
    stateful sequences through the schema's links) must report zero failures. The hooks module
    gives the declared multipart part types real content (a photo, keypoints, an avatar package)."""
    st = shutil.which("st", path=os.path.dirname(sys.executable)) or shutil.which("st")
    if st is None:
        pytest.skip("the schemathesis command line (st) is not installed")
    from schemathesis_hooks import FILES_ENV, write_fuzz_files

    files = write_fuzz_files(tmp_path / "files", open_body,
                             fuzz_server.data_dir / "avatars" / f"{fuzz_avatar}.avatar")
    config = tmp_path / "schemathesis.toml"
    # Only the links the schema declares; inferred ones guess ids from unrelated fields.
    config.write_text("[phases.stateful.inference]\nalgorithms = []\n")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", FILES_ENV: str(files),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    report = tmp_path / "report.json"
    command = [st, "--config-file", str(config), "run", fuzz_server.url + "/openapi.json",
               "--checks", "all", "--seed", str(CLI_SEED), "--max-examples", str(CLI_EXAMPLES),
               "--max-time", str(CLI_SECONDS), "--workers", "1", "--request-timeout", "60",
               "--generation-database", "none", "--no-color", "--output-truncate", "true",
               "--report", "json", "--report-json-path", str(report)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=CLI_SECONDS + 240, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    summary = json.loads(report.read_text())
    print(output[-1500:])
    assert "Traceback" not in fuzz_server.log_text(), fuzz_server.log_text()[-5000:]
    assert fuzz_server.json("GET", "/v1/health")[0] == 200
    assert summary, "schemathesis wrote no report"
