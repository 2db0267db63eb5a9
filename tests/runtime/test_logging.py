"""Python ``logging`` inside a function, as Lambda's runtime sets it up.

Each case runs in a fresh interpreter: what is checked is what a function's process
sees, including which modules its cold start imports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from lamina.runtime.logsink import (
    CRITICAL,
    DEBUG,
    ERROR,
    INFO,
    NOTSET,
    WARNING,
    error_record,
    frame_type,
    iso_time,
    level_from_env,
)
from tests.conftest import ROOT

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@dataclass
class Frame:
    kind: int
    timestamp_us: int
    text: str


@dataclass
class Ran:
    stdout: str
    frames: list[Frame]


def run(code: str, env: dict[str, str] | None = None, telemetry: bool = True) -> Ran:
    """Run ``code`` after the runtime's logging set-up, as a function would."""
    prelude = (
        "from lamina.runtime.logging_setup import configure_logging\n"
        "from lamina.runtime.context import request_id_var\n"
        "configure_logging()\n"
    )
    full_env = {"PYTHONPATH": str(ROOT / "src"), **(env or {})}
    read_fd, write_fd = os.pipe()
    if telemetry:
        full_env["_LAMBDA_TELEMETRY_LOG_FD"] = str(write_fd)
    try:
        result = subprocess.run(
            [sys.executable, "-S", "-c", prelude + textwrap.dedent(code)],
            env=full_env,
            pass_fds=(write_fd,),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    assert result.returncode == 0, result.stderr
    frames = []
    while data:
        length = int.from_bytes(data[4:8], "big")
        frames.append(
            Frame(
                int.from_bytes(data[:4], "big"),
                int.from_bytes(data[8:16], "big"),
                data[16 : 16 + length].decode(),
            )
        )
        data = data[16 + length :]
    return Ran(result.stdout, frames)


# -- the frame format, as AWS's runtime client writes it -----------------------------


def test_frame_types_are_the_ones_awslambdaric_writes() -> None:
    from awslambdaric import lambda_runtime_log_utils as aws

    for level in (NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL):
        json_type = aws._JSON_FRAME_TYPES[level]
        text_type = aws._TEXT_FRAME_TYPES[level]
        assert frame_type(level, True).to_bytes(4, "big") == json_type
        assert frame_type(level, False).to_bytes(4, "big") == text_type


@pytest.mark.parametrize(
    ("value", "level"),
    [
        pytest.param("TRACE", DEBUG, id="trace-is-debug"),
        pytest.param("debug", DEBUG, id="any-case"),
        pytest.param("INFO", INFO, id="info"),
        pytest.param("WARN", WARNING, id="warn"),
        pytest.param("ERROR", ERROR, id="error"),
        pytest.param("FATAL", CRITICAL, id="fatal"),
        pytest.param("LOUD", None, id="unknown-is-ignored"),
        pytest.param("", None, id="unset"),
    ],
)
def test_lambda_log_levels_as_python_levels(value: str, level: int | None) -> None:
    assert level_from_env({"AWS_LAMBDA_LOG_LEVEL": value}) == level


def test_iso_time_is_utc_to_the_millisecond() -> None:
    assert iso_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1704067200.9999) == "2024-01-01T00:00:00.999Z"


def test_the_runtime_error_record_in_json() -> None:
    payload = {
        "errorMessage": "boom",
        "errorType": "ValueError",
        "requestId": "r1",
        "stackTrace": ['  File "app.py", line 1, in handler\n'],
    }

    record = json.loads(error_record(payload, is_json=True))

    assert record.pop("level") == "ERROR"
    assert re.fullmatch(STAMP, record.pop("timestamp"))
    assert record == payload
    assert error_record(payload, is_json=False).startswith("[ERROR] ValueError: boom\n")


# -- the handler on the root logger ----------------------------------------------------


def test_logging_is_not_imported_until_the_function_imports_it() -> None:
    ran = run(
        """
        import sys
        assert "logging" not in sys.modules, "imported on the cold path"
        import logging
        root = logging.getLogger()
        print(type(root.handlers[0]).__name__, len(root.handlers))
        # The module keeps its own loader; nothing of the set-up shows.
        print(type(logging.__loader__).__name__, type(logging.__spec__.loader).__name__)
        logging.basicConfig(level=logging.DEBUG)  # a no-op, as on Lambda
        print(len(root.handlers), logging.getLevelName(root.level))
        """,
        telemetry=False,
    )

    assert ran.stdout.splitlines() == [
        "LambdaHandler 1",
        "SourceFileLoader SourceFileLoader",
        "1 WARNING",
    ]


def test_text_records_one_frame_each_with_the_request_id() -> None:
    ran = run(
        """
        import logging, os
        assert "_LAMBDA_TELEMETRY_LOG_FD" not in os.environ
        request_id_var.set("rid-1")
        log = logging.getLogger("app")
        log.debug("not at INFO")
        log.info("hello %s", "there")
        try:
            {}["k"]
        except KeyError:
            log.exception("failed")
        print("printed")
        """,
        {"AWS_LAMBDA_LOG_LEVEL": "INFO"},
    )

    assert ran.stdout == "printed\n"
    assert [frame.kind for frame in ran.frames] == [0xA55A000F, 0xA55A0017]
    info, failure = (frame.text for frame in ran.frames)
    assert re.fullmatch(rf"\[INFO\]\t{STAMP}\trid-1\thello there", info)
    head, *rest = failure.split("\n")
    assert re.fullmatch(rf"\[ERROR\]\t{STAMP}\trid-1\tfailed", head)
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "KeyError: 'k'"


def test_without_a_level_the_root_logger_keeps_warning() -> None:
    ran = run(
        """
        import logging
        logging.info("dropped")
        logging.warning("kept")
        """
    )

    assert [frame.text.split("\t")[-1] for frame in ran.frames] == ["kept"]
    assert ran.frames[0].text.split("\t")[2] == ""  # no invocation yet


def test_json_records_have_lambdas_fields() -> None:
    ran = run(
        """
        import datetime, logging
        request_id_var.set("rid-2")
        log = logging.getLogger("app")
        log.debug("seen at DEBUG")
        log.info({"event": "structured"})
        log.warning("with extra", extra={"order": 7, "when": datetime.date(2024, 1, 2)})
        try:
            raise ValueError("bad value")
        except ValueError:
            log.exception("failed")
        """,
        {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"},
    )

    kinds = [frame.kind for frame in ran.frames]
    assert kinds == [0xA55A000A, 0xA55A000E, 0xA55A0012, 0xA55A0016]
    debug, structured, extra, failure = (json.loads(f.text) for f in ran.frames)
    assert set(debug) == {"timestamp", "level", "message", "logger", "requestId"}
    assert re.fullmatch(STAMP, debug["timestamp"])
    assert debug["level"] == "DEBUG"
    assert debug["logger"] == "app"
    assert debug["requestId"] == "rid-2"
    assert structured["message"] == {"event": "structured"}
    assert extra["order"] == 7
    assert extra["when"] == "2024-01-02"
    assert failure["errorType"] == "ValueError"
    assert failure["errorMessage"] == "bad value"
    assert failure["stackTrace"][0].startswith('  File "<string>", line ')
    assert failure["location"].startswith("<string>:<module>:")


def test_without_the_telemetry_pipe_records_follow_what_was_printed() -> None:
    ran = run(
        """
        import logging
        request_id_var.set("rid-3")
        print("first")  # still in stdout's buffer: stdout is a pipe here
        logging.error("second\\nline")
        print("third")
        """,
        telemetry=False,
    )

    lines = ran.stdout.splitlines()
    assert lines[0] == "first"
    assert re.fullmatch(rf"\[ERROR\]\t{STAMP}\trid-3\tsecond", lines[1])
    assert lines[2:] == ["line", "third"]
    assert ran.frames == []


def test_a_bad_telemetry_descriptor_falls_back_to_stdout() -> None:
    ran = run(
        """
        import logging
        logging.error("still logged")
        """,
        {"_LAMBDA_TELEMETRY_LOG_FD": "987"},
        telemetry=False,
    )

    assert ran.stdout.endswith("\tstill logged\n")


def test_the_telemetry_pipe_is_not_inherited_by_child_processes() -> None:
    ran = run(
        """
        import os, subprocess, sys
        from lamina.runtime.logsink import sink
        fd = sink().fd
        print(os.get_inheritable(fd))
        """
    )

    assert ran.stdout == "False\n"
