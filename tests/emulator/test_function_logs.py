"""A function's log under ``lamina serve --log-file``: one line per log event.

Every test runs real processes: ``lamina serve``, and under it lamina's runtime
client or AWS's (awslambdaric, as a ``provided.al2023`` bootstrap). The log file
shows where one record ends and the next begins, as CloudWatch's log events would.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Served, awslambdaric_bootstrap, code_dir, wait_for
from tests.emulator.helpers import invoke

PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
RUNTIMES = [
    pytest.param("lamina", id="lamina-runtime"),
    pytest.param("awslambdaric", id="awslambdaric"),
]


def _template(tmp_path: Path, runtime: str, functions: dict[str, str]) -> str:
    """Functions named → ``handler`` plus any further YAML properties, indented."""
    if runtime == "awslambdaric":
        code_dir(tmp_path, awslambdaric_bootstrap())
        runtime_name = "provided.al2023"
    else:
        code_dir(tmp_path)
        runtime_name = PYTHON
    text = "Resources:"
    for name, properties in functions.items():
        text += f"""
  {name}:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: {runtime_name}
      CodeUri: code
      Timeout: 10
      Handler: {properties}"""
    return text + "\n"


class LogFile:
    """The ``--log-file`` of a running service, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        # Only whole lines: the service may be writing the next one.
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.split("\n") if line]

    def records(self, function: str) -> list[str]:
        return [e["record"] for e in self.entries() if e["function"] == function]

    def invocation(self, function: str, request_id: str) -> list[str]:
        """The records of one invocation, once its REPORT has been written."""

        def done() -> list[dict[str, str]] | None:
            mine = [
                e
                for e in self.entries()
                if e["function"] == function and e.get("requestId") == request_id
            ]
            closed = any(_is_report(e["record"], request_id) for e in mine)
            return mine if closed else None

        entries = wait_for(done, 20, f"the REPORT of {request_id}")
        assert isinstance(entries, list)
        return [entry["record"] for entry in entries]


def _is_report(record: str, request_id: str) -> bool:
    if record.startswith(f"REPORT RequestId: {request_id}"):
        return True
    return (
        record.startswith("{")
        and json.loads(record).get("type") == "platform.report"
        and json.loads(record)["record"]["requestId"] == request_id
    )


def _start(
    serve: Callable[..., Served], tmp_path: Path, template: str
) -> tuple[Served, LogFile]:
    log = LogFile(tmp_path / "function-logs.jsonl")
    return serve(template, "--log-file", str(log.path)), log


# -- C20: ordering and framing ------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_output_stays_in_order_inside_its_own_invocation(
    tmp_path: Path, serve: Callable[..., Served], runtime: str
) -> None:
    template = _template(tmp_path, runtime, {"ordered": "logs_demo.ordered"})
    served, log = _start(serve, tmp_path, template)

    failed = invoke(served, "ordered", {"pause": 1})
    quiet = invoke(served, "ordered", {"quiet": True}, LogType="Tail")

    assert failed["FunctionError"] == "Unhandled"
    rid = failed["RequestId"]
    log.invocation("ordered", rid)
    records = log.records("ordered")
    start = records.index(f"START RequestId: {rid} Version: $LATEST")
    end = records.index(f"END RequestId: {rid}")
    inside = records[start + 1 : end]
    assert inside[:2] == ["a", "b"]
    # The runtime's error record: one record, traceback and all, before END.
    assert len(inside) == 3
    assert inside[2].startswith("[ERROR] RuntimeError: ordered failed\n")
    assert "Traceback (most recent call last):" in inside[2]

    assert quiet["Body"] == "quiet"
    tail = base64.b64decode(quiet["LogResult"]).decode()
    assert tail.startswith(f"START RequestId: {quiet['RequestId']}")
    assert "\na\n" not in tail
    assert "\nb\n" not in tail
    assert "ordered failed" not in tail


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_print_is_a_record_per_line_and_a_traceback_is_one_record(
    tmp_path: Path, serve: Callable[..., Served], runtime: str
) -> None:
    template = _template(
        tmp_path,
        runtime,
        {"split": "logs_demo.two_lines", "trace": "logs_demo.traceback_record"},
    )
    served, log = _start(serve, tmp_path, template)

    split_id = invoke(served, "split")["Body"]
    trace_id = invoke(served, "trace")["Body"]

    split = log.invocation("split", split_id)
    assert split[1:3] == ["x", "y"]
    trace = log.invocation("trace", trace_id)
    tracebacks = [record for record in trace if "Traceback" in record]
    assert len(tracebacks) == 1
    record = tracebacks[0]
    assert record.startswith("[ERROR]\t")
    assert record.split("\t")[2] == trace_id
    assert "\tlookup failed\nTraceback (most recent call last):\n" in record
    assert record.rstrip().endswith("KeyError: 'missing'")
    assert not any(line.lstrip().startswith("File ") for line in trace)


# -- formats and levels -------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_text_records_carry_level_time_and_request_id(
    tmp_path: Path, serve: Callable[..., Served], runtime: str
) -> None:
    # No log level set: Python's root logger stays at WARNING, as on Lambda.
    template = _template(tmp_path, runtime, {"levels": "logs_demo.levels"})
    served, log = _start(serve, tmp_path, template)

    rid = invoke(served, "levels")["Body"]

    records = [r for r in log.invocation("levels", rid) if r.startswith("[")]
    assert [r.split("\t")[0] for r in records] == ["[WARNING]", "[ERROR]"]
    for record, expected in zip(records, ["warning", "error"], strict=True):
        level, stamp, request_id, message = record.split("\t")
        assert level == f"[{expected.upper()}]"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
        assert request_id == rid
        assert message == f"{expected} message"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_json_records_parse_and_name_their_invocation(
    tmp_path: Path, serve: Callable[..., Served], runtime: str
) -> None:
    json_format = "\n      LoggingConfig:\n        LogFormat: JSON"
    template = _template(
        tmp_path,
        runtime,
        {
            "levels": "logs_demo.levels" + json_format,
            "ordered": "logs_demo.ordered" + json_format,
        },
    )
    served, log = _start(serve, tmp_path, template)

    rid = invoke(served, "levels")["Body"]
    failed = invoke(served, "ordered", {"pause": 0})["RequestId"]

    documents = [json.loads(record) for record in log.invocation("levels", rid)]
    assert documents[0]["type"] == "platform.start"
    assert documents[0]["record"] == {"requestId": rid, "version": "$LATEST"}
    report = documents[-1]
    assert report["type"] == "platform.report"
    assert report["record"]["status"] == "success"
    assert set(report["record"]["metrics"]) == {
        "durationMs",
        "billedDurationMs",
        "memorySizeMB",
        "maxMemoryUsedMB",
        "initDurationMs",
    }
    application = documents[1:-1]
    # The JSON format filters at INFO unless told otherwise.
    assert [d["message"] for d in application] == [
        "info message",
        "warning message",
        "error message",
    ]
    for document in application:
        assert document["requestId"] == rid
        assert document["logger"] == "demo"
        assert {"timestamp", "level"} <= set(document)
    assert application[2]["level"] == "ERROR"
    assert application[2]["order"] == 7

    records = log.invocation("ordered", failed)
    assert records[1:3] == ["a", "b"]  # print() stays text
    error = json.loads(records[-2])
    assert error["level"] == "ERROR"
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "ordered failed"
    assert error["requestId"] == failed
    assert isinstance(error["stackTrace"], list)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "properties",
    [
        pytest.param(
            "\n      LoggingConfig:\n        LogFormat: JSON"
            "\n        ApplicationLogLevel: WARN",
            id="json-application-log-level",
        ),
        pytest.param(
            "\n      Environment:\n        Variables:\n"
            "          AWS_LAMBDA_LOG_LEVEL: WARN",
            id="text-environment-variable",
        ),
    ],
)
def test_log_level_warn_leaves_out_info(
    tmp_path: Path, serve: Callable[..., Served], runtime: str, properties: str
) -> None:
    template = _template(tmp_path, runtime, {"levels": "logs_demo.levels" + properties})
    served, log = _start(serve, tmp_path, template)

    rid = invoke(served, "levels")["Body"]

    text = "\n".join(log.invocation("levels", rid))
    assert "warning message" in text
    assert "error message" in text
    assert "info message" not in text
    assert "debug message" not in text


def test_a_system_log_level_of_warn_leaves_out_start_and_report(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    template = _template(
        tmp_path,
        "lamina",
        {
            "levels": "logs_demo.levels"
            "\n      LoggingConfig:\n        LogFormat: JSON"
            "\n        SystemLogLevel: WARN"
        },
    )
    served, log = _start(serve, tmp_path, template)

    rid = invoke(served, "levels")["Body"]

    def application_records() -> list[dict[str, str]] | None:
        mine = [json.loads(r) for r in log.records("levels")]
        return mine if len(mine) == 3 else None

    documents = wait_for(application_records, 10, "three application records")
    assert isinstance(documents, list)
    assert all("type" not in d and d["requestId"] == rid for d in documents)


def test_invocations_in_flight_together_each_tag_their_own_records(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served, log = _start(
        serve,
        tmp_path,
        f"""Resources:
  overlapping:
    Type: AWS::Serverless::Function
    Metadata:
      Lamina:
        MaxConcurrency: 4
    Properties:
      Runtime: {PYTHON}
      CodeUri: code
      Handler: logs_demo.overlapping
      LoggingConfig:
        LogFormat: JSON
""",
    )

    client = served.client()

    def overlapping(_: int) -> str:
        answer = client.invoke(FunctionName="overlapping")  # type: ignore[attr-defined]
        return str(json.loads(answer["Payload"].read()))

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(overlapping, range(4)))

    def application_records() -> list[dict[str, str]] | None:
        documents = [json.loads(r) for r in log.records("overlapping")]
        mine = [d for d in documents if "message" in d]
        return mine if len(mine) == 8 else None

    documents = wait_for(application_records, 20, "eight application records")
    assert isinstance(documents, list)
    for document in documents:
        assert document["message"].split()[1] == document["requestId"]
    assert sorted({d["requestId"] for d in documents}) == sorted(ids)


def test_a_custom_log_group_is_what_the_function_is_told(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    template = _template(
        tmp_path,
        "lamina",
        {"echo": "behave.echo\n      LoggingConfig:\n        LogGroup: /custom/orders"},
    )
    served, _ = _start(serve, tmp_path, template)

    assert invoke(served, "echo")["Body"]["log_group"] == "/custom/orders"


def test_a_function_that_never_logs_never_imports_logging(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    template = _template(tmp_path, "lamina", {"quiet": "quiet_start.handler"})
    served, _ = _start(serve, tmp_path, template)

    assert invoke(served, "quiet")["Body"] == {"logging_loaded": False}
