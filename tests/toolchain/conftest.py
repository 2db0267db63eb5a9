"""Fixtures of the toolchain tests: a moto server on loopback standing in for AWS."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import free_port, stop_process, wait_for

# moto's server, with one fix to its IAM check: for a request without a body it
# signs its own copy of the request with the headers as the payload, so every
# signed GET to a JSON API (GetFunction, GetAlias, ...) would fail as
# SignatureDoesNotMatch before any policy is read.
_MOTO_SERVER = """
import sys
from moto.iam import access_control
from moto.server import main

copy_request = access_control.IAMRequestBase._create_aws_request

def signed_request(self):
    request = copy_request(self)
    request.data = self._body or b""
    return request

access_control.IAMRequestBase._create_aws_request = signed_request
main(sys.argv[1:])
"""


@dataclass
class MotoServer:
    """A moto server: its URL and process."""

    url: str
    process: subprocess.Popen[str]

    def enforce_iam(self, enforce: bool) -> None:
        """From the next request on, check (or stop checking) IAM permissions."""
        count = b"0" if enforce else b"inf"
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=count,
            method="POST",
            # Not a form: moto reads the number from the raw body.
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


def _answers(server: MotoServer) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"moto server exited with {server.process.returncode}")
    try:
        with urllib.request.urlopen(f"{server.url}/moto-api/", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def moto_lambda() -> Iterator[MotoServer]:
    """A moto server on 127.0.0.1 for the module's tests; stopped by its PID after."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    server = MotoServer(f"http://127.0.0.1:{port}", process)
    try:
        wait_for(lambda: _answers(server), 30, "the moto server to answer")
        yield server
    finally:
        stop_process(process)
