"""Where the runtime's log records go, and the shape of its own error record.

Lambda may hand the runtime a pipe, named by ``_LAMBDA_TELEMETRY_LOG_FD``. Every
record written there is one frame, so a record that spans lines (a traceback) stays
one log event. Without the pipe, records go to stdout like any other output.
``print()`` never comes here: it goes to stdout and is split into lines, as on Lambda.

A frame, integers big-endian::

    type (4 bytes) | payload length (4) | timestamp in µs since the epoch (8) | payload

The type is 0xA55A0000 with the record's level and format in its low byte.

``AWS_LAMBDA_LOG_FORMAT`` (``Text``, the default, or ``JSON``) picks the format of
records; ``AWS_LAMBDA_LOG_LEVEL`` the lowest level of ``logging`` records kept.
"""

from __future__ import annotations

import os
import sys
import time
from _thread import allocate_lock

from lamina.runtime import jsonfast
from lamina.runtime.faults import log_lines

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

TELEMETRY_FD_ENV = "_LAMBDA_TELEMETRY_LOG_FD"
FRAME_MAGIC = 0xA55A0000

# Python's logging levels, without importing logging on the cold-start path.
NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL = 0, 10, 20, 30, 40, 50

# AWS_LAMBDA_LOG_LEVEL's names; Python has no TRACE, so it means DEBUG.
LEVELS = {
    "TRACE": DEBUG,
    "DEBUG": DEBUG,
    "INFO": INFO,
    "WARN": WARNING,
    "WARNING": WARNING,
    "ERROR": ERROR,
    "FATAL": CRITICAL,
    "CRITICAL": CRITICAL,
}

# The low byte of a frame type: the level in bits 2-4, then 0b10 for a JSON record
# or 0b11 for a text one.
_LEVEL_BITS = {
    NOTSET: 0x00,
    DEBUG: 0x08,
    INFO: 0x0C,
    WARNING: 0x10,
    ERROR: 0x14,
    CRITICAL: 0x18,
}


def is_json_format(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"


def level_from_env(env: Mapping[str, str] = os.environ) -> int | None:
    """The root logger's level that ``AWS_LAMBDA_LOG_LEVEL`` asks for, if any."""
    return LEVELS.get(env.get("AWS_LAMBDA_LOG_LEVEL", "").upper())


def frame_type(level: int, is_json: bool) -> int:
    rounded = min(CRITICAL, max(NOTSET, level)) // 10 * 10
    return FRAME_MAGIC | _LEVEL_BITS[rounded] | (0x02 if is_json else 0x03)


def encode_frame(payload: bytes, kind: int, timestamp_us: int) -> bytes:
    return (
        kind.to_bytes(4, "big")
        + len(payload).to_bytes(4, "big")
        + timestamp_us.to_bytes(8, "big")
        + payload
    )


def iso_time(seconds: float) -> str:
    """``2024-01-01T00:00:00.000Z``: UTC, to the millisecond."""
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def error_record(payload: dict[str, Any], is_json: bool) -> str:
    """The record the runtime logs for an error it reports to Lambda."""
    if not is_json:
        return log_lines(payload)
    record = {"timestamp": iso_time(time.time()), "level": "ERROR", **payload}
    return jsonfast.dumps(record)


def flush_output() -> None:
    """Push what the function printed so far to the log, ahead of what comes next."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RecordSink:
    """Writes whole records: one frame each on the telemetry pipe, else to stdout."""

    def __init__(self, fd: int | None, is_json: bool) -> None:
        self.fd = fd
        self.is_json = is_json
        # A frame bigger than the pipe's atomic size must not interleave with
        # another thread's.
        self._lock = allocate_lock()

    def write(self, text: str, level: int = NOTSET) -> None:
        data = text.encode("utf-8", "backslashreplace")
        # What the handler printed before this record reaches the log before it.
        flush_output()
        with self._lock:
            if self.fd is not None:
                frame = encode_frame(
                    data, frame_type(level, self.is_json), time.time_ns() // 1000
                )
                try:
                    _write_all(self.fd, frame)
                    return
                except OSError:
                    # The pipe is gone; stdout still reaches the log.
                    self.fd = None
            try:
                _write_all(1, data + b"\n")
            except OSError:
                pass


_sink: RecordSink | None = None


def sink() -> RecordSink:
    """The process's sink, opened on first use from the environment."""
    global _sink
    if _sink is None:
        _sink = _open_sink()
    return _sink


def _open_sink() -> RecordSink:
    # Taken out of the environment, as Lambda's runtimes do: processes the handler
    # starts are not the runtime and must not write frames.
    raw = os.environ.pop(TELEMETRY_FD_ENV, "")
    fd = int(raw) if raw.isdigit() else None
    if fd is not None:
        try:
            os.set_inheritable(fd, False)
        except OSError:
            fd = None  # not an open descriptor: stdout will do
    return RecordSink(fd, is_json_format())


def log_error(payload: dict[str, Any]) -> None:
    """Log the error the runtime is about to report, in the function's log format."""
    target = sink()
    target.write(error_record(payload, target.is_json), ERROR)
