import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.emulator.logs import (
    TAIL_BYTES,
    JsonLinesSink,
    PlatformLog,
    Report,
    StreamSink,
    TeeSink,
    billed_ms,
    end_line,
    init_report_line,
    init_report_record,
    report_line,
    report_record,
    start_line,
    start_record,
    tail,
    timeout_line,
)

REQUEST_ID = "8f5e3c1a-0b7d-4e2a-9c61-3d2f1a0e9b77"


# -- START, END, REPORT ----------------------------------------------------------------


def test_start_and_end_lines() -> None:
    assert start_line(REQUEST_ID) == f"START RequestId: {REQUEST_ID} Version: $LATEST"
    assert start_line(REQUEST_ID, "7") == f"START RequestId: {REQUEST_ID} Version: 7"
    assert end_line(REQUEST_ID) == f"END RequestId: {REQUEST_ID}"


@pytest.mark.parametrize(
    ("report", "line"),
    [
        pytest.param(
            Report("r1", 12.344, 128, 41),
            "REPORT RequestId: r1\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 41 MB",
            id="warm",
        ),
        pytest.param(
            Report("r1", 3.0, 256, 60, init_duration_ms=120.505),
            "REPORT RequestId: r1\tDuration: 3.00 ms\tBilled Duration: 3 ms\t"
            "Memory Size: 256 MB\tMax Memory Used: 60 MB\tInit Duration: 120.50 ms",
            id="cold",
        ),
        pytest.param(
            Report("r1", 0.0, 128, 1, init_duration_ms=0.0),
            "REPORT RequestId: r1\tDuration: 0.00 ms\tBilled Duration: 1 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 1 MB\tInit Duration: 0.00 ms",
            id="zero-init-is-still-shown",
        ),
        pytest.param(
            Report("r1", 3000.4, 128, 50, status="timeout"),
            "REPORT RequestId: r1\tDuration: 3000.40 ms\tBilled Duration: 3001 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 50 MB\tStatus: timeout",
            id="timeout",
        ),
        pytest.param(
            Report(
                "r1",
                80.0,
                128,
                128,
                init_duration_ms=200.0,
                status="error",
                error_type="Runtime.OutOfMemory",
            ),
            "REPORT RequestId: r1\tDuration: 80.00 ms\tBilled Duration: 80 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 128 MB\tInit Duration: 200.00 ms\t"
            "Status: error\tError Type: Runtime.OutOfMemory",
            id="cold-error",
        ),
    ],
)
def test_report_line(report: Report, line: str) -> None:
    assert report_line(report) == line


def test_report_line_fields_are_tab_separated() -> None:
    line = report_line(Report(REQUEST_ID, 1.5, 128, 30, 10.0, "error", "X.Y"))

    fields = line.split("\t")
    assert [field.split(":")[0] for field in fields] == [
        "REPORT RequestId",
        "Duration",
        "Billed Duration",
        "Memory Size",
        "Max Memory Used",
        "Init Duration",
        "Status",
        "Error Type",
    ]
    assert " \t" not in line
    assert "\t " not in line


@pytest.mark.parametrize(
    ("duration", "billed"),
    [
        pytest.param(0.0, 1, id="zero"),
        pytest.param(0.01, 1, id="tiny"),
        pytest.param(1.0, 1, id="one"),
        pytest.param(1.01, 2, id="just-over-one"),
        pytest.param(12.34, 13, id="fraction"),
        pytest.param(100.0, 100, id="whole"),
        pytest.param(899999.5, 900000, id="fifteen-minutes"),
    ],
)
def test_billed_ms_rounds_up_to_at_least_one(duration: float, billed: int) -> None:
    assert billed_ms(duration) == billed


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_billed_ms_is_the_next_whole_millisecond(duration: float) -> None:
    billed = billed_ms(duration)

    assert isinstance(billed, int)
    assert billed >= 1
    assert billed >= duration
    assert billed - duration < 1 or billed == 1


# -- INIT_REPORT and the timeout line --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(
            (229.219, "init", "error", "Runtime.ExitError"),
            "INIT_REPORT Init Duration: 229.22 ms\tPhase: init\tStatus: error\t"
            "Error Type: Runtime.ExitError",
            id="init-error",
        ),
        pytest.param(
            (10000.0, "init", "timeout", None),
            "INIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: timeout",
            id="init-timeout",
        ),
        pytest.param(
            (3.5, "invoke", "error", "Runtime.ImportModuleError"),
            "INIT_REPORT Init Duration: 3.50 ms\tPhase: invoke\tStatus: error\t"
            "Error Type: Runtime.ImportModuleError",
            id="suppressed-init",
        ),
    ],
)
def test_init_report_line(args: tuple[float, str, str, str | None], line: str) -> None:
    assert init_report_line(*args) == line


def test_timeout_line_stamps_the_time_and_says_how_long() -> None:
    before = datetime.now(UTC)

    line = timeout_line(REQUEST_ID, 2)

    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\S+) (.*)", line)
    assert match is not None
    stamp = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)
    assert match.group(2) == REQUEST_ID
    assert match.group(3) == "Task timed out after 2.00 seconds"


def test_timeout_line_keeps_fractions_of_a_second() -> None:
    assert timeout_line(REQUEST_ID, 0.25).endswith("Task timed out after 0.25 seconds")


# -- tail: what X-Amz-Log-Result carries ----------------------------------------------


def test_a_short_log_is_returned_whole() -> None:
    assert tail(["START", "hello", "END"]) == b"START\nhello\nEND\n"


def test_an_empty_log_is_empty() -> None:
    assert tail([]) == b""


def test_a_long_log_keeps_its_end() -> None:
    lines = [f"line {n:05d}" for n in range(2000)]

    data = tail(lines)

    assert len(data) <= TAIL_BYTES
    assert data.endswith(b"line 01999\n")
    assert b"line 00000" not in data


def test_tail_exactly_at_the_limit_is_whole() -> None:
    lines = ["x" * (TAIL_BYTES - 1)]

    assert tail(lines) == b"x" * (TAIL_BYTES - 1) + b"\n"


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("é", id="two-bytes"),
        pytest.param("€", id="three-bytes"),
        pytest.param("🐍", id="four-bytes"),
    ],
)
@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_tail_never_starts_inside_a_character(char: str, shift: int) -> None:
    # Shift where the cut falls against the characters' boundaries.
    lines = ["a" * shift + char * 3000]

    data = tail(lines)

    assert len(data) <= TAIL_BYTES
    assert len(data) > TAIL_BYTES - len(char.encode())
    assert data.decode("utf-8") == (char * 3000 + "\n")[-len(data.decode()) :]


def test_tail_escapes_what_utf8_cannot_carry() -> None:
    assert tail(["bad \udc80 surrogate"]) == b"bad \\udc80 surrogate\n"


def test_a_zero_limit_gives_nothing() -> None:
    assert tail(["some", "lines"], limit=0) == b""


@given(
    lines=st.lists(st.text(max_size=300), max_size=60),
    limit=st.integers(min_value=4, max_value=TAIL_BYTES),
)
def test_tail_is_a_whole_character_suffix_of_the_log(
    lines: list[str], limit: int
) -> None:
    whole = "".join(line + "\n" for line in lines).encode("utf-8")

    data = tail(lines, limit)

    assert len(data) <= limit
    assert whole.endswith(data)
    data.decode("utf-8")  # raises if the cut fell inside a character
    if len(whole) > limit:
        # At most the bytes of one character are given up at the cut.
        assert len(data) > limit - 4
    else:
        assert data == whole


# -- sinks -----------------------------------------------------------------------------


def test_stream_sink_writes_one_line_per_call() -> None:
    stream = io.StringIO()
    sink = StreamSink(stream)

    sink.write("fn", "START RequestId: r1")
    sink.write("fn", "END RequestId: r1")

    assert stream.getvalue() == "START RequestId: r1\nEND RequestId: r1\n"


def test_stream_sink_prefixes_the_function_name_when_asked() -> None:
    stream = io.StringIO()

    StreamSink(stream, prefix=True).write("orders", "hello")

    assert stream.getvalue() == "[orders] hello\n"


def test_stream_sink_escapes_what_the_stream_cannot_encode() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")

    StreamSink(stream).write("fn", "café ☕")
    stream.flush()

    assert raw.getvalue() == b"caf\\xe9 \\u2615\n"


def test_stream_sink_survives_a_closed_stream() -> None:
    stream = io.StringIO()
    stream.close()

    StreamSink(stream).write("fn", "lost")  # must not raise


# -- the JSON log format ---------------------------------------------------------------

NOW = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_platform_start_record() -> None:
    record = json.loads(start_record("r1", now=NOW))

    assert record == {
        "time": "2024-01-02T03:04:05.678Z",
        "type": "platform.start",
        "record": {"requestId": "r1", "version": "$LATEST"},
    }


@pytest.mark.parametrize(
    ("report", "record"),
    [
        pytest.param(
            Report("r1", 12.344, 128, 41),
            {
                "requestId": "r1",
                "metrics": {
                    "durationMs": 12.34,
                    "billedDurationMs": 13,
                    "memorySizeMB": 128,
                    "maxMemoryUsedMB": 41,
                },
                "status": "success",
            },
            id="warm",
        ),
        pytest.param(
            Report("r1", 80.0, 128, 128, 200.0, "error", "Runtime.ExitError"),
            {
                "requestId": "r1",
                "metrics": {
                    "durationMs": 80.0,
                    "billedDurationMs": 80,
                    "memorySizeMB": 128,
                    "maxMemoryUsedMB": 128,
                    "initDurationMs": 200.0,
                },
                "status": "error",
                "errorType": "Runtime.ExitError",
            },
            id="cold-error",
        ),
        pytest.param(
            Report("r1", 3000.4, 128, 50, status="timeout"),
            {
                "requestId": "r1",
                "metrics": {
                    "durationMs": 3000.4,
                    "billedDurationMs": 3001,
                    "memorySizeMB": 128,
                    "maxMemoryUsedMB": 50,
                },
                "status": "timeout",
            },
            id="timeout",
        ),
    ],
)
def test_platform_report_record(report: Report, record: dict[str, object]) -> None:
    document = json.loads(report_record(report, now=NOW))

    assert document == {
        "time": "2024-01-02T03:04:05.678Z",
        "type": "platform.report",
        "record": record,
    }


def test_platform_init_report_record() -> None:
    document = json.loads(
        init_report_record(229.224, "invoke", "error", "Runtime.ExitError", now=NOW)
    )

    assert document["type"] == "platform.initReport"
    assert document["record"] == {
        "initializationType": "on-demand",
        "phase": "invoke",
        "status": "error",
        "errorType": "Runtime.ExitError",
        "metrics": {"durationMs": 229.22},
    }


def test_platform_log_in_each_format() -> None:
    report = Report("r1", 1.0, 128, 20)
    text, as_json = PlatformLog(), PlatformLog(is_json=True)
    quiet = PlatformLog(is_json=True, system_level="WARN")

    assert text.start("r1") == [start_line("r1")]
    assert text.end("r1") == [end_line("r1")]
    assert text.report(report) == [report_line(report)]
    assert [json.loads(r)["type"] for r in as_json.start("r1")] == ["platform.start"]
    assert as_json.end("r1") == []  # the JSON format has no END
    assert [json.loads(r)["type"] for r in as_json.report(report)] == [
        "platform.report"
    ]
    # START and REPORT are INFO events: a system log level of WARN leaves them out.
    assert quiet.start("r1") == quiet.end("r1") == quiet.report(report) == []
    assert quiet.init_report(1.0, "init", "error", "Runtime.ExitError") != []


# -- the log file ----------------------------------------------------------------------


def test_json_lines_sink_keeps_each_record_whole(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonLinesSink(path)

    sink.write("fn", "START RequestId: r1", "r1")
    sink.write("fn", "[ERROR] boom\nTraceback (most recent call last):\n  x", "r1")
    sink.write("other", "café ☕\u2028still one record")
    sink.close()

    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == [
        {"function": "fn", "record": "START RequestId: r1", "requestId": "r1"},
        {
            "function": "fn",
            "record": "[ERROR] boom\nTraceback (most recent call last):\n  x",
            "requestId": "r1",
        },
        {"function": "other", "record": "café ☕\u2028still one record"},
    ]


def test_json_lines_sink_appends(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"function": "earlier", "record": "kept"}\n')

    sink = JsonLinesSink(path)
    sink.write("fn", "new")
    sink.close()
    sink.write("fn", "after close")  # must not raise

    assert len(path.read_text().splitlines()) == 2


def test_tee_sink_hands_every_record_to_each_sink(tmp_path: Path) -> None:
    stream = io.StringIO()
    path = tmp_path / "log.jsonl"
    file_sink = JsonLinesSink(path)

    TeeSink(StreamSink(stream), file_sink).write("fn", "line", "r1")
    file_sink.close()

    assert stream.getvalue() == "line\n"
    assert json.loads(path.read_text()) == {
        "function": "fn",
        "record": "line",
        "requestId": "r1",
    }


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_is_shown_control_characters_not_driven_by_them() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        StreamSink(stream).write("fn", "a\x1b[2Jb\rc\td")
    assert terminal.getvalue() == "a\\x1b[2Jb\\x0dc\td\n"
    # Elsewhere (a file, a pipe) the bytes pass through as written.
    assert pipe.getvalue() == "a\x1b[2Jb\rc\td\n"
