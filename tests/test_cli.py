"""The ``lamina`` command as a person runs it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LAMINA, ROOT, Served, code_dir, lamina, pid_alive, wait_for

PYTHON_FUNCTION = """
Resources:
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: behave.echo
      CodeUri: code
      Events:
        Api: {Type: Api}
  Fail:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: behave.fail
      CodeUri: code
      Events:
        Api: {Type: Api}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    code_dir(tmp_path)
    (tmp_path / "template.yaml").write_text(PYTHON_FUNCTION)
    return tmp_path


def test_invoke_prints_payload_on_stdout_and_logs_on_stderr(project: Path) -> None:
    result = lamina("invoke", "Echo", "-e", "-", cwd=project, stdin='{"k": "v"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event"] == {"k": "v"}
    assert re.search(r"^START RequestId: \S+ Version: \$LATEST$", result.stderr, re.M)
    assert re.search(r"^REPORT RequestId: .*Init Duration: ", result.stderr, re.M)
    assert "START" not in result.stdout


def test_invoke_exits_1_on_a_function_error(project: Path) -> None:
    result = lamina("invoke", "Fail", cwd=project)
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "ValueError"
    assert "[ERROR] ValueError: naïve ✓" in result.stderr


def test_invoke_with_a_sample_event(project: Path) -> None:
    result = lamina("invoke", "Echo", "--sample", "sqs", cwd=project)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)["event"]
    assert event["Records"][0]["eventSource"] == "aws:sqs"


def test_unsupported_property_is_reported_once_by_name(project: Path) -> None:
    result = lamina("invoke", "Echo", cwd=project)
    lines = [line for line in result.stderr.splitlines() if "Events" in line]
    assert lines == [
        "lamina: property Events is not supported locally; ignored (Echo, Fail)"
    ]


def test_unknown_function_is_a_clear_error(project: Path) -> None:
    result = lamina("invoke", "Nope", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "ResourceNotFoundException (404): Function not found: "
        "arn:aws:lambda:us-east-1:123456789012:function:Nope"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            (
                "Runtime: python3.11\n      Handler: behave.echo",
                "Runtime: python3.11\n      MemorySize: 64\n      Handler: behave.echo",
            ),
            "template.yaml: Echo.MemorySize: 64 is outside Lambda's range of 128–10240 MB",
            id="memory-too-small",
        ),
        pytest.param(
            (
                "Runtime: python3.11\n      Handler: behave.echo",
                "Runtime: python3.11\n      Timeout: 901\n      Handler: behave.echo",
            ),
            "template.yaml: Echo.Timeout: 901 is outside Lambda's range of 1–900 seconds",
            id="timeout-too-long",
        ),
        pytest.param(
            ("CodeUri: code\n      Events", "CodeUri: nowhere\n      Events"),
            "template.yaml: Echo.CodeUri: folder",
            id="missing-code",
        ),
        pytest.param(
            ("Resources:", "Resources: [oops"),
            "template.yaml: not valid YAML (line",
            id="bad-yaml",
        ),
        pytest.param(
            ("Runtime: python3.11", "Runtime: python3.99"),
            "template.yaml: Echo.Runtime: python3.99 is not a Lambda runtime",
            id="python-version-lambda-never-had",
        ),
        pytest.param(
            ("Handler: behave.echo", "Handler: behave.echo\n      Handler: x.y"),
            "template.yaml: not valid YAML (line 8): duplicate key 'Handler'",
            id="duplicate-key",
        ),
        pytest.param(
            ("CodeUri: code\n", "CodeUri: code\n      Tags: &a [*a]\n"),
            "template.yaml: Echo.Tags: contains itself",
            id="anchor-inside-itself",
        ),
        pytest.param(
            (
                "CodeUri: code\n",
                "CodeUri: code\n      Environment: {Variables: {AWS_REGION: x}}\n",
            ),
            "template.yaml: Echo.Environment.Variables: AWS_REGION is reserved",
            id="reserved-variable",
        ),
        pytest.param(
            ("Resources:", "Parameters: [1]\nResources:"),
            "template.yaml: Parameters: expected a mapping",
            id="parameters-a-list",
        ),
    ],
)
def test_broken_template_is_one_line(
    project: Path, change: tuple[str, str], expected: str
) -> None:
    template = project / "template.yaml"
    template.write_text(template.read_text().replace(*change, 1))
    result = lamina("invoke", "Echo", cwd=project)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if expected in line]
    assert len(errors) == 1, result.stderr


def test_a_template_that_is_not_utf8_is_one_line(project: Path) -> None:
    template = project / "template.yaml"
    template.write_bytes(template.read_bytes().replace(b"Api}", b"Api\xe9}", 1))

    result = lamina("invoke", "Echo", cwd=project)

    assert result.returncode == 2
    assert result.stderr == (
        f"lamina: {template}: not UTF-8 text (line 10): save the template as UTF-8\n"
    )


def test_a_template_of_functions_lamina_cannot_run_says_why(project: Path) -> None:
    template = project / "template.yaml"
    template.write_text(template.read_text().replace("python3.11", "nodejs20.x"))

    result = lamina("invoke", "Echo", cwd=project)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"lamina: {template}: no function lamina can run: Echo uses nodejs20.x, "
        "Fail uses nodejs20.x; lamina runs python3.x and provided.* functions from "
        "local folders"
    )


def test_invoke_takes_the_logical_id_of_a_renamed_function(project: Path) -> None:
    template = project / "template.yaml"
    template.write_text(
        template.read_text().replace(
            "Handler: behave.echo", "Handler: behave.echo\n      FunctionName: RealName"
        )
    )

    by_id = lamina("invoke", "Echo", cwd=project)
    by_name = lamina("invoke", "RealName", cwd=project)

    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)["function_name"] == "RealName"
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout)["function_name"] == "RealName"


def test_the_invoke_api_knows_a_renamed_function_by_its_name_only(
    project: Path, serve_project: object
) -> None:
    template = project / "template.yaml"
    template.write_text(
        template.read_text().replace(
            "Handler: behave.echo", "Handler: behave.echo\n      FunctionName: RealName"
        )
    )
    served: Served = serve_project(project)  # type: ignore[operator]
    client = served.client()

    answer = json.loads(client.invoke(FunctionName="RealName")["Payload"].read())
    assert answer["function_name"] == "RealName"
    with pytest.raises(client.exceptions.ResourceNotFoundException):  # type: ignore[attr-defined]
        client.invoke(FunctionName="Echo")


def test_no_template_says_what_to_do(tmp_path: Path) -> None:
    result = lamina("invoke", "Echo", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "no template.yaml or template.yml here; pass --template PATH" in result.stderr
    )


@pytest.mark.parametrize(
    ("bootstrap", "mode", "reason"),
    [
        pytest.param(None, None, "Couldn't find valid bootstrap(s)", id="missing"),
        pytest.param(
            "#!/bin/sh\necho hi\n", 0o644, "permission denied", id="not-executable"
        ),
        pytest.param(
            "\x7fELF\x02garbage", 0o755, "exec format error", id="wrong-format"
        ),
        pytest.param(
            # An aarch64 ELF header (e_machine 183) on an x86_64 machine (C17).
            "\x7fELF\x02\x01\x01" + "\0" * 9 + "\x02\0\xb7\0" + "\0" * 44,
            0o755,
            "exec format error",
            id="other-architecture",
            marks=pytest.mark.skipif(
                os.uname().machine != "x86_64", reason="needs an x86_64 machine"
            ),
        ),
    ],
)
@pytest.mark.parametrize("sandbox", ["auto", "fallback"])
def test_bad_bootstrap_is_invalid_entrypoint(
    tmp_path: Path, bootstrap: str | None, mode: int | None, reason: str, sandbox: str
) -> None:
    code = tmp_path / "custom"
    code.mkdir()
    if bootstrap is not None:
        # Byte for byte: UTF-8 would turn the ELF header's \xb7 into two bytes.
        (code / "bootstrap").write_bytes(bootstrap.encode("latin-1"))
        assert mode is not None
        (code / "bootstrap").chmod(mode)
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Custom:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: provided.al2023\n      CodeUri: custom\n      Handler: x\n"
    )
    result = lamina("invoke", "Custom", "--sandbox", sandbox, cwd=tmp_path)
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert reason in payload["errorMessage"]
    assert "Error Type: Runtime.InvalidEntrypoint" in result.stderr


def test_events_list_and_show() -> None:
    listed = lamina("events", "list", cwd=ROOT)
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {
        "apigateway-rest",
        "apigateway-http",
        "function-url",
        "sqs",
        "sns",
        "s3",
        "eventbridge",
        "dynamodb-stream",
        "kinesis",
    } <= set(names)
    shown = lamina("events", "show", "s3", cwd=ROOT)
    assert json.loads(shown.stdout)["Records"][0]["eventSource"] == "aws:s3"
    unknown = lamina("events", "show", "nope", cwd=ROOT)
    assert unknown.returncode == 2
    assert "sqs" in unknown.stderr


def test_events_without_a_subcommand_names_them() -> None:
    result = lamina("events", cwd=ROOT)

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "lamina events: error: the following arguments are required: {list,show}"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        pytest.param(
            ("--port", "99999"),
            "argument --port: 99999 is not a port number (0 to 65535)",
            id="port-too-high",
        ),
        pytest.param(
            ("--port", "-1"),
            "argument --port: -1 is not a port number (0 to 65535)",
            id="port-negative",
        ),
        pytest.param(
            ("--host", "256.1.1.1"),
            "argument --host: 256.1.1.1 is not an IPv4 address",
            id="host-not-an-address",
        ),
        pytest.param(
            ("--max-concurrency", "0"),
            "argument --max-concurrency: 0 is not a whole number of 1 or more",
            id="max-concurrency-zero",
        ),
    ],
)
def test_serve_refuses_bad_options_before_starting(
    project: Path, option: tuple[str, str], message: str
) -> None:
    result = lamina("serve", *option, cwd=project)

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"lamina serve: error: {message}"


def test_serve_on_a_port_in_use_says_so(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = lamina("serve", "--port", str(port), cwd=project)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"lamina: cannot listen on 127.0.0.1:{port}: address already in use; "
        "pick another --port"
    )


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)
def test_serve_stops_cleanly_and_leaves_no_process(
    project: Path, serve_project: object, sig: int
) -> None:
    served: Served = serve_project(project)  # type: ignore[operator]
    client = served.client()
    pid = json.loads(client.invoke(FunctionName="Echo")["Payload"].read())["pid"]
    assert pid_alive(pid)

    served.process.send_signal(sig)
    assert served.process.wait(timeout=15) == 0
    assert wait_for(lambda: not pid_alive(pid), 5, "the environment to be gone")


@pytest.fixture
def serve_project() -> object:
    from tests.conftest import start_serve, stop_process

    started: list[Served] = []

    def start(project: Path) -> Served:
        served = start_serve(project / "template.yaml")
        started.append(served)
        return served

    yield start
    for served in started:
        stop_process(served.process, signal.SIGKILL)


def test_demo_runs_the_bundled_example() -> None:
    result = subprocess.run(
        [LAMINA, "demo"],
        cwd=ROOT / "examples",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, NO_COLOR="1"),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    names = ("RecordsFunction", "ShellFunction", "BrokenFunction", "StreamFunction")
    for name in names:
        assert re.search(rf"^{name}\s", out, re.M), out
    assert out.count("REPORT RequestId:") == 5
    assert re.search(r"^BrokenFunction\s+sns\s+error \(ValueError\)", out, re.M)
    assert re.search(r"^RecordsFunction\s+sqs\s+ok\s+\S+ ms\s+warm", out, re.M)
    assert re.search(r"^StreamFunction\s+function-url\s+ok\s", out, re.M)
    assert "line 5 of 5 for /forecast" in out


def test_demo_with_an_unknown_sample_event_names_the_function(project: Path) -> None:
    template = project / "template.yaml"
    template.write_text(
        template.read_text().replace(
            "  Echo:\n    Type: AWS::Serverless::Function\n",
            "  Echo:\n    Type: AWS::Serverless::Function\n"
            "    Metadata: {Lamina: {SampleEvents: [sqs, nosuch]}}\n",
        )
    )

    result = lamina("demo", cwd=project)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"lamina: {template}: Echo.Metadata.Lamina.SampleEvents: no sample event "
        "named 'nosuch'."
    )
    assert "Available: apigateway-http, apigateway-rest," in line


def test_invoke_appends_each_record_to_a_log_file(project: Path) -> None:
    log_file = project / "logs" / "fail.jsonl"
    log_file.parent.mkdir()

    result = lamina("invoke", "Fail", "--log-file", str(log_file), cwd=project)

    assert result.returncode == 1
    request_id = json.loads(result.stdout)["requestId"]
    entries = [json.loads(line) for line in log_file.read_text().split("\n") if line]
    assert {entry["function"] for entry in entries} == {"Fail"}
    assert all(entry["requestId"] == request_id for entry in entries)
    records = [entry["record"] for entry in entries]
    assert records[0].startswith("START RequestId: ")
    assert "naïve ✓ about to fail" in records
    (error,) = [record for record in records if record.startswith("[ERROR]")]
    assert "\nTraceback (most recent call last):\n" in error
    # The terminal still shows everything.
    assert "[ERROR] ValueError: naïve ✓" in result.stderr


def test_a_log_file_that_cannot_be_opened_is_one_clear_message(project: Path) -> None:
    result = lamina("invoke", "Echo", "--log-file", str(project), cwd=project)

    assert result.returncode != 0
    assert "cannot open log file" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_names_the_backend_its_limits_and_the_interpreters(
    tmp_path: Path,
) -> None:
    result = lamina("doctor", "--sandbox", "fallback", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "backend: fallback limits (rlimits, memory watchdog, SIGSTOP)" in out
    enforced, missing = out.split("limits not enforced:")
    assert "memory (MemorySize" in enforced.split("limits enforced:")[1]
    assert "RLIMIT_NOFILE = 1024" in enforced
    assert "processes and threads (1,024)" in missing.split("Python interpreters:")[0]
    for minor in range(8, 15):
        assert f"python3.{minor} " in out
    assert "AWS's emulator (for reference):" in out
