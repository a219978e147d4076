"""The tests' handle on a real server process (see ``oneshot_avatar.service.launcher``)."""

from oneshot_avatar.service.launcher import (  # noqa: F401
    ServerProcess,
    multipart,
    start_server,
    wait_for_job,
)
