"""Execution environments under ``lamina serve``: what a function sees, and its end."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Served, code_dir, function_yaml, pid_alive, wait_for


def _invoke(served: Served, name: str, payload: object = None, **extra: object) -> dict:
    answer = served.client().invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(payload or {}), **extra
    )
    answer["Body"] = json.loads(answer["Payload"].read())
    return answer


def test_the_function_sees_lambdas_environment_and_context(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code = code_dir(tmp_path)
    served = serve(
        "Resources:" + function_yaml("details", "behave.details", MemorySize=256)
    )
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()

    body = _invoke(served, "details", ClientContext=context)["Body"]

    assert body["custom"] == {"k": "v"}
    assert body["identity_id"] is None
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["log_stream"])
    assert body["env"] == {
        "AWS_LAMBDA_FUNCTION_NAME": "details",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(code),
        "TZ": ":UTC",
        "_HANDLER": "behave.details",
    }


def test_bad_client_context_is_refused(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve("Resources:" + function_yaml("details", "behave.details"))
    client = served.client()
    with pytest.raises(client.exceptions.InvalidRequestContentException):  # type: ignore[attr-defined]
        client.invoke(FunctionName="details", ClientContext="not base64 json!")  # type: ignore[attr-defined]


def test_a_function_sees_only_its_own_packages(
    tmp_path: Path, serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    # lamina's own dependencies (PyYAML, boto3 in the test extras) sit next to it;
    # a function must not see them, only what its requirements.txt declares.
    monkeypatch.setenv("LAMINA_CACHE", str(tmp_path / "cache"))
    code = code_dir(tmp_path)
    with_deps = tmp_path / "with-deps"
    with_deps.mkdir()
    (with_deps / "behave.py").write_text((code / "behave.py").read_text())
    (with_deps / "requirements.txt").write_text("# pinned\nsix==1.16.0\n")
    served = serve(
        "Resources:"
        + function_yaml("bare", "behave.imports")
        + function_yaml("deps", "behave.imports").replace(
            "CodeUri: code", "CodeUri: with-deps"
        )
    )

    bare = _invoke(
        served, "bare", {"modules": ["yaml", "boto3", "six", "lamina.runtime"]}
    )
    assert bare["Body"] == {
        "yaml": None,
        "boto3": None,
        "six": None,
        "lamina.runtime": "present",
    }
    deps = _invoke(served, "deps", {"modules": ["six", "yaml"]})
    assert deps["Body"] == {"six": "1.16.0", "yaml": None}
    installed = list((tmp_path / "cache" / "deps").iterdir())
    assert len(installed) == 1
    assert (installed[0] / "six.py").is_file()


def test_init_phase_is_bounded_at_ten_seconds(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve("Resources:" + function_yaml("slow", "slowinit.handler", Timeout=2))

    started = time.monotonic()
    answer = _invoke(served, "slow")
    elapsed = time.monotonic() - started

    # 10 s of init, then the retried init inside the invoke, under the 2 s timeout.
    assert 11 <= elapsed < 16
    assert answer["FunctionError"] == "Unhandled"
    # The retried init ran under the function's 2 s timeout, and says so.
    assert answer["Body"]["errorType"] == "Sandbox.Timedout"
    assert (
        answer["Body"]["errorMessage"] == "Init phase did not complete in 2.00 seconds"
    )
    assert served.output.wait(
        r"INIT_REPORT Init Duration: 1\d{4}\.\d\d ms\tPhase: init"
        r"\tStatus: timeout"
    )
    assert served.output.wait(r"INIT_REPORT .*Phase: invoke\tStatus: timeout")


def test_killing_the_service_takes_its_environments_along(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve("Resources:" + function_yaml("echo", "behave.echo"))
    pid = _invoke(served, "echo")["Body"]["pid"]
    assert pid_alive(pid)

    os.kill(served.process.pid, signal.SIGKILL)
    served.process.wait(timeout=10)
    assert wait_for(lambda: not pid_alive(pid), 5, "the orphaned environment to end")


def test_a_burst_gets_one_environment_per_concurrent_invoke(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    code_dir(tmp_path)
    served = serve("Resources:" + function_yaml("sleepy", "behave.sleep", Timeout=10))
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda _: _invoke(served, "sleepy", {"seconds": 2}), [0, 1])
        )
    elapsed = time.monotonic() - started

    assert elapsed < 3.8
    pids = {answer["Body"]["pid"] for answer in answers}
    assert len(pids) == 2
    # Only the cold starts carry an Init Duration; a third invoke is warm.
    third = _invoke(served, "sleepy", {"seconds": 0})
    assert third["Body"]["pid"] in pids
    request_id = third["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    (report,) = served.output.wait(f"REPORT RequestId: {request_id}")
    assert "Init Duration" not in report


def test_an_idle_environment_is_ended_and_the_next_invoke_is_cold(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve(
        "Resources:" + function_yaml("echo", "behave.echo"), "--idle-timeout", "1"
    )
    first = _invoke(served, "echo")
    pid = first["Body"]["pid"]

    assert wait_for(lambda: not pid_alive(pid), 10, "the idle environment to be ended")
    second = _invoke(served, "echo")
    assert second["Body"]["pid"] != pid
    request_id = second["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    (report,) = served.output.wait(f"REPORT RequestId: {request_id}")
    assert "Init Duration" in report


def test_a_busy_environment_is_not_ended_for_idleness(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve(
        "Resources:" + function_yaml("sleepy", "behave.sleep", Timeout=10),
        "--idle-timeout",
        "0.3",
    )
    # An invoke longer than the idle timeout runs to its end.
    answer = _invoke(served, "sleepy", {"seconds": 1.5})
    assert "FunctionError" not in answer
    assert answer["Body"]["slept"] is True


def test_a_process_left_in_its_own_session_ends_with_the_service(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve("Resources:" + function_yaml("leaver", "edges.leave_behind"))
    body = _invoke(served, "leaver")["Body"]
    assert pid_alive(body["pid"])

    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=15) == 0
    assert wait_for(
        lambda: not pid_alive(body["pid"]), 5, "the left-behind process to end"
    )
    assert not pid_alive(body["handler_pid"])


def test_a_process_left_behind_by_an_ended_environment_is_ended_too(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve(
        "Resources:" + function_yaml("leaver", "edges.leave_behind"),
        "--idle-timeout",
        "1",
    )
    body = _invoke(served, "leaver")["Body"]
    # Once the idle environment is ended, its orphan comes to the service, which
    # ends it while still running.
    assert wait_for(
        lambda: not pid_alive(body["handler_pid"]), 10, "the environment to end"
    )
    assert wait_for(lambda: not pid_alive(body["pid"]), 10, "the orphan to be ended")
    assert served.process.poll() is None
