"""Why the Invoke API cannot listen, said in the terms of the setting to change."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from lamina.emulator.server import _cannot_listen


@pytest.mark.parametrize(
    ("exc", "message", "setting"),
    [
        pytest.param(
            OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)),
            "cannot listen on 127.0.0.1:9000: address already in use",
            "port",
            id="in-use",
        ),
        pytest.param(
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "cannot listen on 127.0.0.1:9000: cannot resolve this host",
            "host",
            id="unknown-name",
        ),
        pytest.param(
            OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL)),
            "cannot listen on 127.0.0.1:9000: not an address of this machine",
            "host",
            id="not-here",
        ),
        pytest.param(
            OSError(errno.EACCES, os.strerror(errno.EACCES)),
            "cannot listen on 127.0.0.1:9000: permission denied",
            "port",
            id="privileged-port",
        ),
        pytest.param(
            OSError(errno.ENOBUFS, "No buffer space available"),
            "cannot listen on 127.0.0.1:9000: no buffer space available",
            "",
            id="anything-else",
        ),
    ],
)
def test_a_failure_to_listen_names_what_to_change(
    exc: OSError, message: str, setting: str
) -> None:
    error = _cannot_listen("127.0.0.1", 9000, exc)

    assert str(error) == message
    assert error.setting == setting
