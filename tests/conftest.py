"""Shared fixtures: real services on loopback, real processes, real AWS clients."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(__file__).resolve().parent / "functions" / "code"
LAMINA = str(Path(sys.executable).parent / "lamina")
RIE = Path(sys.executable).parent / "aws-lambda-rie"
# Most tests' functions report back through files outside /tmp, which the
# namespaces sandbox makes read-only: they run on the fallback backend, and
# tests/emulator/test_sandbox.py covers the sandbox and each backend's limits.
os.environ.setdefault("LAMINA_SANDBOX", "fallback")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def wait_for(
    condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> object:
    """Poll ``condition`` until it is truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose that matters here.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Output:
    """Lines a child process writes, collected by a thread as they come."""

    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self, stream: object) -> threading.Thread:
        def pump() -> None:
            try:
                for raw in stream:  # type: ignore[attr-defined]
                    with self.lock:
                        self.lines.append(raw.rstrip("\n"))
            except (OSError, ValueError):  # closed under us at teardown
                pass

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        return thread

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.lines)

    def text(self) -> str:
        return "\n".join(self.snapshot())

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.snapshot() if re.search(pattern, line)]

    def wait(self, pattern: str, timeout: float = 5.0) -> list[str]:
        """The lines matching ``pattern``, once at least one has been read."""
        wait_for(
            lambda: self.matching(pattern), timeout, f"a log line like {pattern!r}"
        )
        return self.matching(pattern)


def stop_process(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    """Signal, wait with a deadline, kill if need be; close its pipes."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            # The reader thread ends at EOF; give it a moment before closing.
            deadline = time.monotonic() + 5
            while not stream.closed and time.monotonic() < deadline:
                try:
                    stream.close()
                except (OSError, ValueError):
                    time.sleep(0.01)


@dataclass
class Served:
    """A running ``lamina serve``: its URL, its log, its process."""

    url: str
    output: Output
    process: subprocess.Popen[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **config: object) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 0}, read_timeout=60, **config),
        )


def post(
    url: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One POST on a fresh connection: status, headers, body."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "", parts.port, timeout=60
    )
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_exchange(port: int, raw: bytes) -> bytes:
    """Send bytes as they are, close the sending side, read all that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def start_serve(template: Path, *extra: str) -> Served:
    env = dict(os.environ, **CREDENTIALS, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [LAMINA, "serve", "-t", str(template), "--port", "0", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    output = Output()
    output.follow(process.stderr)

    def ready() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"lamina serve exited:\n{output.text()}")
        for line in output.snapshot():
            match = re.search(r"Invoke API at (http://\S+)", line)
            if match:
                return match.group(1)
        return None

    url = str(wait_for(ready, 30, "lamina serve to listen"))
    return Served(url, output, process)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``lamina serve`` on a template; everything started is stopped after."""
    started: list[Served] = []

    def start(template_text: str, *extra: str) -> Served:
        template = tmp_path / f"template-{len(started)}.yaml"
        template.write_text(template_text)
        served = start_serve(template, *extra)
        started.append(served)
        return served

    yield start
    for served in started:
        stop_process(served.process)


def invoke_with_log(
    served: Served, name: str, event: object
) -> tuple[Any, dict[str, Any], str]:
    """boto3's invoke with the log tail: (payload, the whole answer, the log)."""
    answer = served.client().invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event), LogType="Tail"
    )
    log = base64.b64decode(answer["LogResult"]).decode()
    return json.loads(answer["Payload"].read()), answer, log


def lamina(
    *args: str,
    cwd: Path | None = None,
    stdin: str = "",
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the ``lamina`` command to its end; its output as text."""
    return subprocess.run(
        [LAMINA, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def function_yaml(name: str, handler: str, **props: object) -> str:
    """One python3.11 function of a template, its code in ``code/``; more properties
    as keyword arguments (``Timeout=2``, ``FunctionUrlConfig="{AuthType: NONE}"``)."""
    props = {"Runtime": "python3.11", "Handler": handler, "CodeUri": "code", **props}
    lines = "".join(f"\n      {key}: {value}" for key, value in props.items())
    return f"\n  {name}:\n    Type: AWS::Serverless::Function\n    Properties:{lines}"


def code_dir(tmp_path: Path, bootstrap: str | None = None) -> Path:
    """A copy of the test functions' code, with a ``bootstrap`` when asked."""
    target = tmp_path / "code"
    if not target.exists():
        shutil.copytree(CODE, target)
    if bootstrap is not None:
        path = target / "bootstrap"
        path.write_text(bootstrap)
        path.chmod(0o755)
    return target


def awslambdaric_bootstrap() -> str:
    return f'#!/bin/sh\nexec "{sys.executable}" -m awslambdaric "$_HANDLER"\n'


def rie_available() -> bool:
    return RIE.is_file() and os.access(RIE, os.X_OK)


@dataclass
class RIEProcess:
    url: str
    output: Output
    process: subprocess.Popen[str]


def start_rie(
    handler: str, code: Path, argv: list[str], env: dict[str, str]
) -> RIEProcess:
    """AWS's emulator (no Docker) running one function, the way its README does it."""
    port, api_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            str(RIE),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{port}",
            "--runtime-api-address",
            f"127.0.0.1:{api_port}",
            *argv,
        ],
        cwd=code,
        env=dict(os.environ, **CREDENTIALS, **env, _HANDLER=handler),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    output = Output()
    output.follow(process.stdout)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"RIE exited:\n{output.text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 10, "AWS's emulator to listen")
    return RIEProcess(f"http://127.0.0.1:{port}", output, process)
