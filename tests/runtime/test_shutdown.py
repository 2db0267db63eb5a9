"""Shutdown hooks: SIGTERM reaches them while the runtime waits for its next event."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    CODE,
    ROOT,
    Output,
    rie_available,
    start_rie,
    stop_process,
)
from tests.runtime.conftest import modules_imported_by

# A runtime with three hooks, the middle one broken; each good one appends its name.
PROGRAM = """
import sys
from lamina.runtime import on_shutdown, run

def mark(name):
    def hook():
        with open(sys.argv[1], "a") as marker:
            marker.write(name + "\\n")
    hook.__qualname__ = name
    return hook

on_shutdown(mark("first"))

@on_shutdown
def broken():
    raise ValueError("the hook went wrong")

on_shutdown(mark("last"))
run(lambda event, context: {})
"""


@pytest.fixture
def silent_runtime_api() -> Iterator[tuple[socket.socket, int]]:
    """A Runtime API that takes the runtime's /next and never answers it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield listener, listener.getsockname()[1]
    listener.close()


def _runtime(port: int, program: str, *args: str) -> subprocess.Popen[str]:
    """``program`` run as a runtime, with ``args`` as its ``sys.argv[1:]``."""
    return subprocess.Popen(
        [sys.executable, "-S", "-c", program, *args],
        env={
            "PYTHONPATH": str(ROOT / "src"),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_hooks_run_on_sigterm_while_the_runtime_waits_for_an_event(
    tmp_path: Path, silent_runtime_api: tuple[socket.socket, int]
) -> None:
    listener, port = silent_runtime_api
    marker = tmp_path / "marker"
    process = _runtime(port, PROGRAM, str(marker))
    output = Output()
    output.follow(process.stdout)
    listener.settimeout(10)
    connection, _ = listener.accept()
    try:
        # The runtime has asked for its next event: it is blocked reading the answer.
        connection.settimeout(10)
        request = connection.recv(65536)
        assert request.startswith(b"GET /2018-06-01/runtime/invocation/next ")

        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=10)
    finally:
        connection.close()
        stop_process(process)

    assert status == 0
    # Newest first; the broken hook is logged and does not stop the others.
    assert marker.read_text() == "last\nfirst\n"
    assert output.wait(r"\[ERROR\] ValueError: on_shutdown hook broken failed")
    assert output.matching(r"the hook went wrong")


def test_without_hooks_sigterm_ends_the_runtime_as_python_does(
    tmp_path: Path, silent_runtime_api: tuple[socket.socket, int]
) -> None:
    listener, port = silent_runtime_api
    process = _runtime(port, "from lamina.runtime import run; run(print)")
    listener.settimeout(10)
    connection, _ = listener.accept()
    try:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=10)
    finally:
        connection.close()
        stop_process(process)

    assert status == -signal.SIGTERM


def test_a_hook_costs_the_cold_start_no_import() -> None:
    loaded = modules_imported_by(
        "lamina.runtime.on_shutdown(lambda: None)", after="import lamina.runtime"
    )

    assert loaded == []


def _rie_invoke_then_stop(tmp_path: Path, handler: str, expect: str) -> Path:
    """Invoke once under AWS's emulator, stop it with SIGTERM; its log has ``expect``."""
    marker = tmp_path / "marker"
    rie = start_rie(
        handler,
        CODE,
        [sys.executable, "-m", "lamina.runtime"],
        {
            "PYTHONPATH": str(ROOT / "src"),
            "SHUTDOWN_MARKER": str(marker),
            "EXTENSION_RECORD": str(tmp_path / "record.jsonl"),
        },
    )
    try:
        request = urllib.request.Request(
            rie.url + "/2015-03-31/functions/function/invocations",
            data=b"{}",
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            json.loads(answer.read())
        rie.process.send_signal(signal.SIGTERM)
        assert rie.process.wait(timeout=10) == 0
        assert rie.output.wait(expect)
    finally:
        stop_process(rie.process)
    return marker


@pytest.mark.rie
@pytest.mark.skipif(not rie_available(), reason="AWS's emulator is not installed")
def test_on_shutdown_under_aws_emulator_with_an_extension(tmp_path: Path) -> None:
    # AWS's emulator sends SIGTERM to the runtime at shutdown only when an
    # extension is registered (Lambda's shutdown phase lasts 0 ms without one);
    # this handler's runtime hosts an internal extension.
    marker = _rie_invoke_then_stop(
        tmp_path, "internal_extension.handler", "Internal agent recorder-thread"
    )

    assert marker.read_text().startswith("pid=")


@pytest.mark.rie
@pytest.mark.skipif(not rie_available(), reason="AWS's emulator is not installed")
def test_aws_emulator_kills_a_runtime_without_extensions_at_once(
    tmp_path: Path,
) -> None:
    # The fact lamina departs from on purpose: with no extension, AWS's emulator
    # (like Lambda) sends SIGKILL straight away, so no hook can run there.
    marker = _rie_invoke_then_stop(
        tmp_path, "shutdown_hook.handler", "Sending SIGKILL to runtime"
    )

    assert not marker.exists()
