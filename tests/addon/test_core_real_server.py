"""The add-on's client and upload logic against a real ``oneshot-avatar serve`` process with a
token (issue 17: a refused token during a large upload; one upload per package checksum)."""

from __future__ import annotations

import os

import pytest
from blender_addon.core.client import AuthenticationError, ServiceClient
from blender_addon.core.uploads import UploadCache, ensure_uploaded

from addon_packages import build_test_package
from service_server import start_server

TOKEN = "core-test-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory, body_cache):
    process = start_server(tmp_path_factory.mktemp("server"), token=TOKEN,
                           env={"ONESHOT_AVATAR_CACHE": str(body_cache)})
    yield process
    process.stop()


@pytest.fixture(scope="module")
def package(tmp_path_factory, open_body):
    return build_test_package(tmp_path_factory.mktemp("package") / "person.avatar", open_body, 500)


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_a_refused_token_during_a_large_upload_reads_as_401(server, tmp_path, token):
    """The server answers 401 before reading the body and closes the connection; the client
    used to report a broken pipe / reset as "backend not reachable"."""
    big = tmp_path / "big.avatar"
    big.write_bytes(os.urandom(8 << 20))
    with pytest.raises(AuthenticationError) as error:
        ServiceClient(server.url, token).upload_avatar(big)
    assert error.value.status == 401
    assert "token" in str(error.value) and "not reachable" not in str(error.value)


def test_the_same_package_is_uploaded_once_per_checksum(server, package, tmp_path):
    client = ServiceClient(server.url, TOKEN)
    cache = UploadCache(tmp_path / "uploads.json")
    before = {a["id"] for a in client.list_avatars()}
    ids = [ensure_uploaded(client, cache, avatar_id="", package=str(package), name=f"rig{i}")
           for i in range(3)]  # three imports of the same file: three rigs without an id
    assert len(set(ids)) == 1
    assert {a["id"] for a in client.list_avatars()} - before == {ids[0]}
    # A new session (a new cache object on the same file) reuses it too.
    again = ensure_uploaded(client, UploadCache(tmp_path / "uploads.json"), avatar_id="",
                            package=str(package), name="rig")
    assert again == ids[0]
    # Deleted on the backend: uploaded again, once.
    client.delete_avatar(ids[0])
    fresh = ensure_uploaded(client, cache, avatar_id=ids[0], package=str(package), name="rig")
    assert fresh != ids[0]
    assert ensure_uploaded(client, cache, avatar_id="", package=str(package), name="r") == fresh
    assert {a["id"] for a in client.list_avatars()} - before == {fresh}
