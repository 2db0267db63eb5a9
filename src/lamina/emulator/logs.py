"""Lambda's platform log lines, and where a function's log goes.

The formatting functions are pure; ``LogSink`` is the one place that writes. Each
platform line has a text form (``start_line``) and, for functions whose log format
is JSON, a JSON one (``start_record``).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

TAIL_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Report:
    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_mb: int
    init_duration_ms: float | None = None
    status: str | None = None  # None (success), "timeout" or "error"
    error_type: str | None = None


def start_line(request_id: str, version: str = "$LATEST") -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def billed_ms(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms))


def report_line(report: Report) -> str:
    fields = [
        f"REPORT RequestId: {report.request_id}",
        f"Duration: {report.duration_ms:.2f} ms",
        f"Billed Duration: {billed_ms(report.duration_ms)} ms",
        f"Memory Size: {report.memory_mb} MB",
        f"Max Memory Used: {report.max_memory_mb} MB",
    ]
    if report.init_duration_ms is not None:
        fields.append(f"Init Duration: {report.init_duration_ms:.2f} ms")
    if report.status:
        fields.append(f"Status: {report.status}")
    if report.error_type:
        fields.append(f"Error Type: {report.error_type}")
    return "\t".join(fields)


def init_report_line(
    duration_ms: float, phase: str, status: str, error_type: str | None
) -> str:
    line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line


def timeout_line(request_id: str, timeout_s: float) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"


# -- the JSON log format: platform events as Lambda writes them to CloudWatch ------
# The JSON format has no END record: platform.report closes an invocation.


def _platform(kind: str, record: dict[str, object], now: datetime | None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps({"time": stamp, "type": kind, "record": record})


def start_record(
    request_id: str, version: str = "$LATEST", now: datetime | None = None
) -> str:
    return _platform(
        "platform.start", {"requestId": request_id, "version": version}, now
    )


def report_record(report: Report, now: datetime | None = None) -> str:
    metrics: dict[str, object] = {
        "durationMs": round(report.duration_ms, 2),
        "billedDurationMs": billed_ms(report.duration_ms),
        "memorySizeMB": report.memory_mb,
        "maxMemoryUsedMB": report.max_memory_mb,
    }
    if report.init_duration_ms is not None:
        metrics["initDurationMs"] = round(report.init_duration_ms, 2)
    record: dict[str, object] = {
        "requestId": report.request_id,
        "metrics": metrics,
        "status": report.status or "success",
    }
    if report.error_type:
        record["errorType"] = report.error_type
    return _platform("platform.report", record, now)


def init_report_record(
    duration_ms: float,
    phase: str,
    status: str,
    error_type: str | None,
    now: datetime | None = None,
) -> str:
    record: dict[str, object] = {
        "initializationType": "on-demand",
        "phase": phase,
        "status": status,
        "metrics": {"durationMs": round(duration_ms, 2)},
    }
    if error_type:
        record["errorType"] = error_type
    return _platform("platform.initReport", record, now)


@dataclass(frozen=True, slots=True)
class PlatformLog:
    """The platform's records about invocations, in a function's log format.

    Each method gives the records to write, possibly none: the JSON format has no
    END, and a system log level of WARN leaves out START and REPORT (INFO events).
    """

    is_json: bool = False
    system_level: str | None = None

    @property
    def _quiet(self) -> bool:
        return self.is_json and self.system_level == "WARN"

    def start(self, request_id: str) -> list[str]:
        if self._quiet:
            return []
        return [start_record(request_id) if self.is_json else start_line(request_id)]

    def end(self, request_id: str) -> list[str]:
        return [] if self.is_json else [end_line(request_id)]

    def report(self, report: Report) -> list[str]:
        if self._quiet:
            return []
        return [report_record(report) if self.is_json else report_line(report)]

    def init_report(
        self, duration_ms: float, phase: str, status: str, error_type: str | None
    ) -> list[str]:
        make = init_report_record if self.is_json else init_report_line
        return [make(duration_ms, phase, status, error_type)]


def tail(lines: list[str], limit: int = TAIL_BYTES) -> bytes:
    """The last ``limit`` bytes of a log, cut at a character boundary."""
    data = "".join(line + "\n" for line in lines).encode("utf-8", "backslashreplace")
    if limit <= 0:
        return b""
    if len(data) <= limit:
        return data
    cut = data[-limit:]
    # Do not start in the middle of a multi-byte character.
    while cut and (cut[0] & 0xC0) == 0x80:
        cut = cut[1:]
    return cut


class LogSink(Protocol):
    """Takes each record of every function's log; a record may span lines."""

    def write(
        self, function: str, line: str, request_id: str | None = None
    ) -> None: ...

    def flush(self) -> None:
        """Write out whatever is still held back."""


_VISIBLE_CONTROLS = {
    code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F] if chr(code) not in "\t\n"
}


class StreamSink:
    """Writes every line to a stream, prefixed with the function's name when asked.

    Lines written while the event loop runs are gathered and written together at
    the end of the loop's turn: one system call for an invoke's END and REPORT
    instead of one per line, in the same order.
    """

    def __init__(self, stream: TextIO | None = None, *, prefix: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self._lock = threading.Lock()
        self._pending: list[str] = []
        # A function's escape sequences and carriage returns must not drive the
        # person's terminal: on a terminal they are shown, not obeyed.
        try:
            self._escape = self.stream.isatty()
        except (AttributeError, ValueError):
            self._escape = False

    def write(self, function: str, line: str, request_id: str | None = None) -> None:
        if self._escape:
            line = line.translate(_VISIBLE_CONTROLS)
        if self.prefix:
            # Every line of a multi-line record carries the name, so that a
            # person reading several functions' output can tell them apart.
            text = "".join(f"[{function}] {part}\n" for part in line.split("\n"))
        else:
            text = line + "\n"
        with self._lock:
            self._pending.append(text)
            if len(self._pending) > 1:
                return  # a flush is already on its way
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop in this thread: write now
            self.flush()

    def flush(self) -> None:
        with self._lock:
            text, self._pending = "".join(self._pending), []
        if not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except UnicodeEncodeError:
            self.stream.write(text.encode("ascii", "backslashreplace").decode())
        except (OSError, ValueError):
            pass


class JsonLinesSink:
    """Appends one JSON line per record to a file: where record boundaries show.

    ``{"function": ..., "record": ..., "requestId": ...}``, ``record`` with its
    newlines, ``requestId`` when the record is known to belong to one invocation:
    what CloudWatch would hold as one log event.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Line-buffered: a reader sees each record as soon as it is written.
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, function: str, line: str, request_id: str | None = None) -> None:
        entry: dict[str, str] = {"function": function, "record": line}
        if request_id:
            entry["requestId"] = request_id
        text = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                self._file.write(text)
            except UnicodeEncodeError:  # lone surrogates from a runtime
                self._file.write(json.dumps(entry) + "\n")
            except (OSError, ValueError):
                pass

    def flush(self) -> None:
        pass  # line-buffered: nothing is held back

    def close(self) -> None:
        with self._lock:
            self._file.close()


class TeeSink:
    """Hands every record to each of several sinks."""

    def __init__(self, *sinks: LogSink) -> None:
        self.sinks = sinks

    def write(self, function: str, line: str, request_id: str | None = None) -> None:
        for sink in self.sinks:
            sink.write(function, line, request_id)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()
