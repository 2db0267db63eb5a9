"""Extensions under ``lamina serve``: real extension processes in a layer, real events.

The external extension is ``tests/functions/extension_recorder.py``, put in a
layer's ``extensions/`` folder: it writes each event it gets to a JSON-lines file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Served, code_dir, pid_alive, stop_process, wait_for
from tests.emulator.helpers import invoke

RECORDER = (
    Path(__file__).resolve().parent.parent / "functions" / "extension_recorder.py"
)


def _layer(tmp_path: Path, name: str = "recorder") -> None:
    """A layer folder whose extensions/ holds the recorder, as an executable."""
    folder = tmp_path / "layer" / "extensions"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f"#!{sys.executable}\n" + RECORDER.read_text())
    script.chmod(0o755)


def _template(handler: str, variables: dict[str, str], **props: object) -> str:
    extra = "".join(f"\n      {key}: {value}" for key, value in props.items())
    env = "".join(f"\n          {key}: '{value}'" for key, value in variables.items())
    return f"""
Resources:
  MyLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer
  fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: {handler}
      CodeUri: code
      Layers: [!Ref MyLayer]{extra}
      Environment:
        Variables:{env}
"""


def _start(
    tmp_path: Path,
    serve: Callable[..., Served],
    mode: str = "record",
    *,
    variables: dict[str, str] | None = None,
    **props: object,
) -> tuple[Served, Path]:
    code_dir(tmp_path)
    _layer(tmp_path)
    record = tmp_path / "record.jsonl"
    variables = {
        "EXTENSION_RECORD": str(record),
        "EXTENSION_MODE": mode,
        **(variables or {}),
    }
    return serve(_template("behave.echo", variables, **props)), record


def _entries(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def _events(record: Path, kind: str) -> list[dict[str, Any]]:
    return [
        entry["event"]
        for entry in _entries(record)
        if entry.get("event", {}).get("eventType") == kind
    ]


def test_an_external_extension_gets_each_invoke_and_then_the_shutdown(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, record = _start(tmp_path, serve)

    answers = [invoke(served, "fn", {"n": n}) for n in range(3)]

    ids = [answer["RequestId"] for answer in answers]
    wait_for(lambda: len(_events(record, "INVOKE")) == 3, 5, "three INVOKE events")
    events = _events(record, "INVOKE")
    assert [event["requestId"] for event in events] == ids
    for event, answer in zip(events, answers, strict=True):
        assert event["invokedFunctionArn"] == answer["Body"]["arn"]
        assert event["deadlineMs"] > time.time() * 1000
        assert event["tracing"]["type"] == "X-Amzn-Trace-Id"
        assert event["tracing"]["value"].startswith("Root=1-")
    (registered,) = [entry for entry in _entries(record) if "registered" in entry]
    assert registered["registered"] == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "handler": "behave.echo",
    }
    assert served.output.wait(
        r"EXTENSION\tName: recorder\tState: Ready\tEvents: \[INVOKE,SHUTDOWN\]"
    )
    assert served.output.matching(r"recorder: ready")

    stop_process(served.process)  # SIGTERM: the service ends its environments

    (shutdown,) = _events(record, "SHUTDOWN")
    assert shutdown["shutdownReason"] == "spindown"
    assert shutdown["deadlineMs"] > 0
    assert served.output.matching(r"recorder: shutting down \(spindown\)")
    assert wait_for(lambda: not pid_alive(registered["pid"]), 5, "the extension to end")


def test_an_extension_init_error_fails_the_invoke(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, _ = _start(tmp_path, serve, mode="init-error")

    answer = invoke(served, "fn")

    assert answer["FunctionError"] == "Unhandled"
    assert answer["Body"]["errorType"] == "Extension.InitError"
    assert served.output.wait(
        r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error"
        r"\tError Type: Extension.InitError"
    )
    # The retried init inside the invoke fails the same way.
    assert served.output.wait(r"INIT_REPORT .*Phase: invoke\tStatus: error")
    # The type the extension reported is in its EXTENSION line.
    assert served.output.wait(
        r"EXTENSION\tName: recorder\tState: InitError\tEvents: \[INVOKE,SHUTDOWN\]"
        r"\tError Type: Extension.ConfigInvalid"
    )
    (report,) = served.output.wait(f"REPORT RequestId: {answer['RequestId']}")
    assert report.endswith("Status: error\tError Type: Extension.InitError")


def test_an_extension_that_exits_during_init_is_a_crash(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, _ = _start(tmp_path, serve, mode="exit-in-init")

    answer = invoke(served, "fn")

    assert answer["FunctionError"] == "Unhandled"
    assert answer["Body"]["errorType"] == "Extension.Crash"
    assert "exit status 2" in answer["Body"]["errorMessage"]
    assert served.output.wait(
        r"INIT_REPORT .*Phase: init\tStatus: error.*Extension.Crash"
    )
    # What it wrote before it left is in the function's log.
    assert served.output.matching(r"recorder: giving up before registering")


def test_an_extension_that_crashed_while_idle_fails_the_next_invoke(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, record = _start(tmp_path, serve)
    first = invoke(served, "fn")
    (registered,) = [entry for entry in _entries(record) if "registered" in entry]
    os.kill(registered["pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(registered["pid"]), 5, "the extension to die")

    failed = invoke(served, "fn")

    assert failed["FunctionError"] == "Unhandled"
    assert failed["Body"]["errorType"] == "Extension.Crash"
    assert failed["Body"]["errorMessage"].startswith(
        f"RequestId: {failed['RequestId']} Error: "
    )
    (report,) = served.output.wait(f"REPORT RequestId: {failed['RequestId']}")
    assert report.endswith("Status: error\tError Type: Extension.Crash")
    # That environment is gone; the next invoke starts a fresh one.
    after = invoke(served, "fn")
    assert "FunctionError" not in after
    assert after["Body"]["pid"] != first["Body"]["pid"]


def test_an_extension_that_crashes_during_an_invoke_fails_its_report(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, _ = _start(tmp_path, serve, mode="crash-on-invoke")

    answer = invoke(served, "fn")

    # The extension dies on the INVOKE event while the runtime answers: whichever
    # comes first, the REPORT names the crash. When the runtime answered first the
    # caller has its result; when the crash came first, the crash is the result.
    if "FunctionError" in answer:
        assert answer["Body"]["errorType"] == "Extension.Crash"
    else:
        assert answer["Body"]["event"] == {}
    (report,) = served.output.wait(f"REPORT RequestId: {answer['RequestId']}")
    assert report.endswith("Status: error\tError Type: Extension.Crash")


def test_the_caller_does_not_wait_for_the_extensions_but_the_environment_does(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, _ = _start(
        tmp_path,
        serve,
        mode="slow",
        Timeout=10,
        variables={"EXTENSION_SLOW_S": "1.5"},
    )
    invoke(served, "fn")  # the cold start, out of the way

    started = time.monotonic()
    first = invoke(served, "fn")
    answered_in = time.monotonic() - started
    second = invoke(served, "fn")

    assert answered_in < 1.0
    # The first environment still waits for its extension: another one took it.
    assert second["Body"]["pid"] != first["Body"]["pid"]
    (report,) = served.output.wait(f"REPORT RequestId: {first['RequestId']}", 5)
    duration = float(re.search(r"\tDuration: ([\d.]+) ms", report).group(1))  # type: ignore[union-attr]
    assert duration >= 1400


def test_an_extension_slower_than_the_timeout_times_the_invoke_out(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, _ = _start(
        tmp_path, serve, mode="slow", Timeout=1, variables={"EXTENSION_SLOW_S": "5"}
    )

    answer = invoke(served, "fn")

    assert "FunctionError" not in answer
    (report,) = served.output.wait(f"REPORT RequestId: {answer['RequestId']}", 5)
    assert "\tStatus: timeout" in report
    assert served.output.matching(
        f"{answer['RequestId']} Task timed out after 1.00 seconds"
    )


def test_an_internal_extension_gets_invoke_events_and_the_runtime_sigterm(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    record, marker = tmp_path / "internal.jsonl", tmp_path / "marker"
    served = serve(
        f"""
Resources:
  fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: internal_extension.handler
      CodeUri: code
      Environment:
        Variables:
          EXTENSION_RECORD: '{record}'
          SHUTDOWN_MARKER: '{marker}'
"""
    )

    ids = [invoke(served, "fn")["RequestId"] for _ in range(2)]

    assert served.output.wait(
        r"EXTENSION\tName: recorder-thread\tState: Ready\tEvents: \[INVOKE\]"
    )
    wait_for(lambda: len(_entries(record)) == 2, 5, "both INVOKE events")
    assert [entry["requestId"] for entry in _entries(record)] == ids

    stop_process(served.process)

    assert marker.read_text().startswith("pid=")


def test_an_on_shutdown_hook_runs_when_the_service_stops(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    marker = tmp_path / "marker"
    served = serve(
        f"""
Resources:
  fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: shutdown_hook.handler
      CodeUri: code
      Environment:
        Variables:
          SHUTDOWN_MARKER: '{marker}'
"""
    )
    pid = invoke(served, "fn")["Body"]["pid"]

    stop_process(served.process)

    # Written by the runtime itself, within the grace period, before it exited.
    assert marker.read_text() == f"pid={pid}\n"
    assert not pid_alive(pid)


def _process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_extensions_are_frozen_with_the_runtime_between_invokes(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served, record = _start(tmp_path, serve)

    first = invoke(served, "fn")

    (extension_pid,) = [entry["pid"] for entry in _entries(record) if "pid" in entry]
    runtime_pid = first["Body"]["pid"]
    wait_for(
        lambda: {_process_state(extension_pid), _process_state(runtime_pid)} == {"T"},
        what="the environment to be frozen",
    )

    second = invoke(served, "fn")

    assert "FunctionError" not in second
    assert second["Body"]["pid"] == runtime_pid
    wait_for(lambda: len(_events(record, "INVOKE")) == 2, what="the second INVOKE")
