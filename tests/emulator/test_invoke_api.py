"""The Invoke API of ``lamina serve``, driven by boto3 and the AWS CLI over loopback."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    CREDENTIALS,
    Served,
    function_yaml,
    pid_alive,
    wait_for,
)
from tests.emulator.helpers import serving

FUNCTIONS = {
    "echo": ("behave.echo", 3),
    "fail": ("behave.fail", 3),
    "nothing": ("behave.nothing", 3),
    "sleepy": ("behave.sleep", 2),
    "crash": ("behave.crash", 3),
    "chatty": ("behave.chatty", 3),
    "touch": ("behave.touch", 3),
    "dryrun": ("behave.touch", 3),
    "strict": ("behave.nothing", 3),
    "submod": ("sub/mod.handler", 3),
    "missing": ("sub/missing.handler", 3),
    "nothere": ("behave.nothere", 3),
    "initcrash": ("initcrash.handler", 5),
}


def _resources(folder: Path) -> str:
    variables = f"{{Variables: {{INIT_OK_FILE: '{folder / 'init-ok'}'}}}}"
    return "".join(
        function_yaml(name, handler, Timeout=timeout, Environment=variables)
        for name, (handler, timeout) in FUNCTIONS.items()
    ) + function_yaml("throttled", "behave.echo", ReservedConcurrentExecutions=0)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("invoke-api")
    yield from serving(folder, _resources(folder))


@pytest.fixture(scope="module")
def client(service: Served) -> object:
    return service.client()


def invoke(client: object, name: str, payload: object = None, **extra: object) -> dict:
    body = extra.pop("raw", None)
    if body is None:
        body = json.dumps(payload if payload is not None else {})
    answer = client.invoke(FunctionName=name, Payload=body, **extra)  # type: ignore[attr-defined]
    answer["Body"] = answer["Payload"].read()
    return answer


def reports(service: Served, request_id: str) -> list[str]:
    """This request's REPORT lines, once the service's log has been read that far."""
    pattern = rf"REPORT RequestId: {request_id}"
    return service.output.wait(pattern)


def test_success_has_no_function_error_and_names_the_version(client: object) -> None:
    answer = invoke(client, "echo", {"a": 1})
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert json.loads(answer["Body"])["event"] == {"a": 1}


def test_function_error_is_200_with_unhandled_header(client: object) -> None:
    answer = invoke(client, "fail")
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Body"])
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "naïve ✓"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("echo", id="name"),
        pytest.param("echo:$LATEST", id="name-qualifier"),
        pytest.param("123456789012:function:echo", id="partial-arn"),
        pytest.param("arn:aws:lambda:us-east-1:123456789012:function:echo", id="arn"),
        pytest.param(
            "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST",
            id="arn-qualifier",
        ),
    ],
)
def test_every_function_name_form_reaches_the_function(
    client: object, name: str
) -> None:
    answer = invoke(client, name, {"form": name})
    assert json.loads(answer["Body"])["event"] == {"form": name}


def test_qualifier_parameter(client: object) -> None:
    answer = invoke(client, "echo", {}, Qualifier="$LATEST")
    assert answer["StatusCode"] == 200
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:  # type: ignore[attr-defined]
        invoke(client, "echo", {}, Qualifier="prod")
    assert "function:echo:prod" in str(raised.value)


def test_unknown_function_is_resource_not_found(client: object) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:  # type: ignore[attr-defined]
        invoke(client, "nope")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert (
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"
        in (error["Error"]["Message"])
    )


def test_log_tail_is_at_most_4k_and_ends_with_this_report(client: object) -> None:
    answer = invoke(client, "chatty", LogType="Tail")
    log = base64.b64decode(answer["LogResult"])
    assert len(log) <= 4096
    text = log.decode()
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"REPORT RequestId: {request_id}")
    assert "the very last line" in text
    assert "line 099" in text

    plain = invoke(client, "chatty")
    assert "LogResult" not in plain


def test_event_invoke_is_accepted_and_runs_later(
    client: object, tmp_path: Path
) -> None:
    marker = tmp_path / "event-ran"
    answer = invoke(client, "touch", {"path": str(marker)}, InvocationType="Event")
    assert answer["StatusCode"] == 202
    assert answer["Body"] == b""
    wait_for(marker.exists, 15, "the async invoke's side effect")


def test_dry_run_does_not_run_the_handler(
    client: object, service: Served, tmp_path: Path
) -> None:
    marker = tmp_path / "dry-run"
    answer = invoke(client, "dryrun", {"path": str(marker)}, InvocationType="DryRun")
    assert answer["StatusCode"] == 204
    # dryrun is invoked nowhere else: after one real invoke, the log holds exactly
    # one START for it, and the dry run's side effect never happened.
    sync = invoke(client, "dryrun", {"path": str(tmp_path / "sync")})
    assert sync["StatusCode"] == 200
    reports(service, sync["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])
    assert len(service.output.matching(r"^\[dryrun\] START")) == 1
    assert not marker.exists()


def test_non_json_payload_is_rejected_before_any_environment(
    client: object, service: Served
) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException) as raised:  # type: ignore[attr-defined]
        invoke(client, "strict", raw=b"not json")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # strict is invoked nowhere else: no environment started for the refused
    # payload, so the first real invoke is the cold one and the only START.
    after = invoke(client, "strict")
    (report,) = reports(
        service, after["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    )
    assert "Init Duration" in report
    assert len(service.output.matching(r"^\[strict\] START")) == 1


def test_empty_payload_arrives_as_empty_object(client: object) -> None:
    answer = invoke(client, "echo", raw=b"")
    assert json.loads(answer["Body"])["event"] == {}


def test_none_result_is_null_without_function_error(client: object) -> None:
    answer = invoke(client, "nothing")
    assert answer["Body"] == b"null"
    assert "FunctionError" not in answer


def test_payload_over_6mb_is_request_too_large(client: object) -> None:
    big = json.dumps({"x": "y" * (6 * 1024 * 1024)})
    with pytest.raises(client.exceptions.RequestTooLargeException) as raised:  # type: ignore[attr-defined]
        invoke(client, "echo", raw=big)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_reserved_concurrency_zero_is_throttled(client: object) -> None:
    with pytest.raises(client.exceptions.TooManyRequestsException) as raised:  # type: ignore[attr-defined]
        invoke(client, "throttled")
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"]
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_timeout_ends_the_environment_and_the_next_invoke_is_cold(
    client: object, service: Served
) -> None:
    warm = json.loads(invoke(client, "sleepy", {"seconds": 0})["Body"])

    started = time.monotonic()
    answer = invoke(client, "sleepy", {"seconds": 5})
    elapsed = time.monotonic() - started

    assert 1.9 <= elapsed < 4.5
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Body"])
    assert "Task timed out after 2.00 seconds" in payload["errorMessage"]
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    (report,) = reports(service, request_id)
    assert "Status: timeout" in report
    assert wait_for(
        lambda: not pid_alive(warm["pid"]), 5, "the timed-out process to go"
    )

    after = invoke(client, "sleepy", {"seconds": 0})
    assert "FunctionError" not in after
    assert json.loads(after["Body"])["pid"] != warm["pid"]
    request_id = after["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    (report,) = reports(service, request_id)
    assert "Init Duration" in report


def test_a_handler_that_raises_returns_at_once(client: object) -> None:
    started = time.monotonic()
    invoke(client, "fail")
    assert time.monotonic() - started < 1.5


def test_crash_mid_invoke_is_exit_error_and_next_start_is_fresh(
    client: object, service: Served
) -> None:
    answer = invoke(client, "crash")
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Body"])
    assert payload["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in payload["errorMessage"]
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    (report,) = reports(service, request_id)
    assert "Status: error" in report
    assert "Error Type: Runtime.ExitError" in report
    assert service.output.wait("crashing now")


def test_handler_in_a_subfolder(client: object) -> None:
    answer = invoke(client, "submod")
    assert json.loads(answer["Body"]) == {"module": "sub.mod"}


@pytest.mark.parametrize(
    ("name", "error_type", "message"),
    [
        pytest.param(
            "missing",
            "Runtime.ImportModuleError",
            "Unable to import module 'sub/missing'",
            id="missing-module",
        ),
        pytest.param(
            "nothere",
            "Runtime.HandlerNotFound",
            "Handler 'nothere' missing on module 'behave'",
            id="missing-handler",
        ),
    ],
)
def test_bad_handler_is_an_init_error(
    client: object, service: Served, name: str, error_type: str, message: str
) -> None:
    answer = invoke(client, name)
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Body"])
    assert payload["errorType"] == error_type
    assert payload["errorMessage"].startswith(message)
    # Reported through /runtime/init/error: the platform saw an init failure.
    assert service.output.wait(
        rf"^\[{name}\] INIT_REPORT .*Status: error\tError Type: {error_type}"
    )


def test_crash_during_init_returns_quickly_and_retries_in_a_fresh_process(
    client: object, service: Served
) -> None:
    started = time.monotonic()
    answer = invoke(client, "initcrash")
    assert time.monotonic() - started < 4  # the timeout is 5 s
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Body"])
    assert payload["errorType"] == "RuntimeError"
    assert payload["errorMessage"] == "cannot start: configuration missing"
    assert service.output.wait(
        r"^\[initcrash\] INIT_REPORT .*Phase: init\tStatus: error"
    )
    assert service.output.wait(
        r"^\[initcrash\] INIT_REPORT .*Phase: invoke\tStatus: error"
    )

    # The next invoke starts over: a new process imports the module again.
    init_ok = _init_ok_path(service)
    init_ok.write_text("ok")
    after = invoke(client, "initcrash")
    assert "FunctionError" not in after
    assert json.loads(after["Body"])["init"] == "ok"


def _init_ok_path(service: Served) -> Path:
    template = Path(service.process.args[3])  # type: ignore[index]
    return template.parent / "init-ok"


def test_aws_cli_invokes_the_service(service: Served, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "aws"),
            "lambda",
            "invoke",
            "--endpoint-url",
            service.url,
            "--function-name",
            "echo",
            "--payload",
            '{"from": "cli"}',
            str(out),
        ],
        env=dict(os.environ, **CREDENTIALS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["StatusCode"] == 200
    assert summary["ExecutedVersion"] == "$LATEST"
    assert json.loads(out.read_text())["event"] == {"from": "cli"}


def test_unknown_route_is_a_lambda_error(service: Served) -> None:
    request = urllib.request.Request(service.url + "/2015-03-31/nothing", method="GET")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 404
    assert raised.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    raised.value.close()


def test_invalid_invocation_type_is_a_parameter_error(service: Served) -> None:
    request = urllib.request.Request(
        service.url + "/2015-03-31/functions/echo/invocations",
        data=b"{}",
        method="POST",
        headers={"X-Amz-Invocation-Type": "Sometimes"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 400
    assert raised.value.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    raised.value.close()
