"""Lambda's platform log lines, and where a function's log goes.

The formatting functions are pure; ``LogSink`` is the one place that writes.
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
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
    def write(self, function: str, line: str) -> None: ...


class StreamSink:
    """Writes every line to a stream, prefixed with the function's name when asked."""

    def __init__(self, stream: TextIO | None = None, *, prefix: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self._lock = threading.Lock()

    def write(self, function: str, line: str) -> None:
        text = f"[{function}] {line}\n" if self.prefix else line + "\n"
        with self._lock:
            try:
                self.stream.write(text)
                self.stream.flush()
            except UnicodeEncodeError:
                self.stream.write(text.encode("ascii", "backslashreplace").decode())
            except (OSError, ValueError):
                pass


class NullSink:
    def write(self, function: str, line: str) -> None:
        pass
