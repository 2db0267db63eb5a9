"""lamina's runtime client against a recording Runtime API over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for
from tests.runtime.conftest import FUNCTION_ARN


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingAPI:
    """Hands out queued events and records what the runtime posts back."""

    events: list[bytes]
    posted: list[Posted] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    served: int = 0
    process: subprocess.Popen[bytes] | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(
                self, status: int, body: bytes, headers: dict[str, str]
            ) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                with api.lock:
                    api.connections.add(self.client_address[1])
                    index = api.served
                    api.served += 1
                if index >= len(api.events):
                    # No more events: hold the long poll until the test ends it.
                    threading.Event().wait(30)
                    return
                self._answer(
                    200,
                    api.events[index],
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": f"req-{index}",
                        "Lambda-Runtime-Deadline-Ms": "99999999999999",
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{index:024d}",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with api.lock:
                    api.connections.add(self.client_address[1])
                    api.posted.append(Posted(self.path, dict(self.headers), body))
                self._answer(
                    202, b'{"status":"OK"}', {"Content-Type": "application/json"}
                )

        return Handler


StartRuntime = Callable[..., RecordingAPI]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[StartRuntime]:
    servers: list[ThreadingHTTPServer] = []
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        events: list[bytes], handler: str, python: str = sys.executable, **env: str
    ) -> RecordingAPI:
        api = RecordingAPI(events)
        server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        (tmp_path / "fn.py").write_text(HANDLERS)
        process = subprocess.Popen(
            [python, "-S", "-m", "lamina.runtime"],
            cwd=tmp_path,
            env={
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(ROOT / "src"),
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
                "_HANDLER": handler,
                "LAMBDA_TASK_ROOT": str(tmp_path),
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        api.process = process
        return api

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    for server in servers:
        server.shutdown()
        server.server_close()


HANDLERS = """
import os

def echo(event, context):
    return {"event": event, "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "request_id": context.aws_request_id}

def fail(event, context):
    print("naïve ✓ in the log")
    raise ValueError("naïve ✓")
"""


def test_one_keep_alive_connection_for_every_call(runtime: StartRuntime) -> None:
    api = runtime([b'{"n": 0}', b'{"n": 1}', b'{"n": 2}'], "fn.echo")
    wait_for(lambda: len(api.posted) == 3, 10, "three responses")

    assert [p.path for p in api.posted] == [
        f"/2018-06-01/runtime/invocation/req-{i}/response" for i in range(3)
    ]
    assert len(api.connections) == 1
    for index, post in enumerate(api.posted):
        body = json.loads(post.body)
        assert body["event"] == {"n": index}
        assert body["request_id"] == f"req-{index}"
        # The trace id travels with each invoke.
        assert body["trace"] == f"Root=1-00000000-{index:024d}"


def test_error_survives_an_ascii_stdout(runtime: StartRuntime) -> None:
    api = runtime([b"{}", b'{"after": 1}'], "fn.fail", PYTHONIOENCODING="ascii")
    wait_for(lambda: len(api.posted) == 2, 10, "two error posts")

    post = api.posted[0]
    assert post.path == "/2018-06-01/runtime/invocation/req-0/error"
    assert post.headers["Lambda-Runtime-Function-Error-Type"] == "Function.ValueError"
    assert (
        json.loads(post.headers["Lambda-Runtime-Function-XRay-Error-Cause"])[
            "exceptions"
        ][0]["type"]
        == "ValueError"
    )
    body = json.loads(post.body.decode("utf-8"))
    assert set(body) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert body["errorMessage"] == "naïve ✓"
    assert body["errorType"] == "ValueError"
    assert body["requestId"] == "req-0"
    assert isinstance(body["stackTrace"], list)
    assert body["stackTrace"]
    assert all(isinstance(frame, str) for frame in body["stackTrace"])
    # The process lives on: the next event was handled by the same runtime.
    assert api.posted[1].path == "/2018-06-01/runtime/invocation/req-1/error"
    assert api.process is not None
    assert api.process.poll() is None


def test_init_error_is_posted_and_the_runtime_exits(runtime: StartRuntime) -> None:
    api = runtime([b"{}"], "fn.missing")
    process = api.process
    assert process is not None
    assert process.wait(timeout=10) == 1

    (post,) = api.posted
    assert post.path == "/2018-06-01/runtime/init/error"
    assert (
        post.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.HandlerNotFound"
    )
    assert json.loads(post.body) == {
        "errorMessage": "Handler 'missing' missing on module 'fn'",
        "errorType": "Runtime.HandlerNotFound",
        "requestId": "",
        "stackTrace": [],
    }
    log = process.stdout.read().decode()
    assert (
        "[ERROR] Runtime.HandlerNotFound: Handler 'missing' missing on module 'fn'"
        in log
    )


def test_unparseable_event_is_an_unmarshal_error(runtime: StartRuntime) -> None:
    api = runtime([b"{not json"], "fn.echo")
    wait_for(lambda: len(api.posted) == 1, 10, "the error post")
    body = json.loads(api.posted[0].body)
    assert body["errorType"] == "Runtime.UnmarshalError"
    assert body["errorMessage"].startswith("Unable to unmarshal input:")


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(["-m", "lamina.runtime"], id="python-m"),
        pytest.param(
            ["-c", "import lamina.runtime as r; r.run(lambda e, c: e)"], id="run"
        ),
    ],
)
def test_without_a_runtime_api_it_says_what_to_do(start: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-S", *start],
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "AWS_LAMBDA_RUNTIME_API is not set" in result.stderr
    assert "Traceback" not in result.stderr


def _interpreters() -> list[object]:
    """Every CPython that AWS has a Lambda runtime for and this machine has."""
    found = []
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for minor in range(8, 15):
        candidates = (
            sorted(root.glob(f"3.{minor}.*/bin/python3.{minor}"))
            if root.is_dir()
            else []
        )
        if candidates:
            found.append(pytest.param(str(candidates[-1]), id=f"python3.{minor}"))
    return found or [pytest.param(sys.executable, id="this-python")]


@pytest.mark.parametrize("python", _interpreters())
def test_runs_on_every_python_lambda_offers(runtime: StartRuntime, python: str) -> None:
    # The same client ships into python3.8 ... python3.14 functions.
    api = runtime([b'{"n": 1}', b"{}"], "fn.echo", python)
    wait_for(lambda: len(api.posted) >= 1, 20, f"a response from {python}")
    assert json.loads(api.posted[0].body)["event"] == {"n": 1}
