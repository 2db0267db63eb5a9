"""The telemetry log pipe: records a runtime writes whole, one frame each.

Lambda gives the runtime a pipe and names it in ``_LAMBDA_TELEMETRY_LOG_FD``. AWS's
Python runtime client and lamina's write each log record there as a frame, big-endian:
a 4-byte type (0xA55A.... — the low bits hold the record's level and format), a 4-byte
payload length, an 8-byte timestamp in microseconds, then the payload. A record that
spans lines, such as a traceback, is therefore one log event.

``FrameReader`` does no I/O: it takes bytes however the reads cut them and hands
back whole records. A stream that stops making sense as frames is read as text lines
from there on, so that whatever the function wrote still reaches its log.
``TelemetryPipe`` is the I/O on top: one pipe per runtime process, read on the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

logger = logging.getLogger(__name__)

TELEMETRY_FD_ENV = "_LAMBDA_TELEMETRY_LOG_FD"
HEADER_BYTES = 16
_MAGIC = bytes([0xA5, 0x5A])  # the first two bytes of every frame type
# Far above any real record (Lambda cuts log events at 256 KB): a length beyond
# this is garbage, not a record still on its way.
MAX_RECORD_BYTES = 64 * 1024 * 1024


def _decode(payload: bytes) -> str:
    # Runtimes end a logging record with a newline; the log keeps records, not lines.
    text = payload.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text


class FrameReader:
    """Turns the bytes of a telemetry pipe into records, in order."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max_record_bytes = max_record_bytes
        # Why the stream stopped being frames; None while it still is.
        self.error: str | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        """The records completed by ``data``; an incomplete one waits for more."""
        self._buffer += data
        records: list[str] = []
        while self.error is None:
            # A wrong first byte is enough to know: no need to wait for a header.
            if not _MAGIC.startswith(bytes(self._buffer[:2])):
                self.error = f"{bytes(self._buffer[:4])!r} where a frame should start"
                break
            if len(self._buffer) < HEADER_BYTES:
                break
            length = int.from_bytes(self._buffer[4:8], "big")
            if length > self.max_record_bytes:
                self.error = f"a frame claims {length} bytes"
                break
            end = HEADER_BYTES + length
            if len(self._buffer) < end:
                break
            records.append(_decode(bytes(self._buffer[HEADER_BYTES:end])))
            del self._buffer[:end]
        if self.error is not None:
            records += self._lines()
        return records

    def finish(self) -> list[str]:
        """What is left when the pipe closes: a cut-off record or line."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        if self.error is not None:
            return [rest.rstrip(b"\r").decode("utf-8", "replace")] if rest else []
        if rest:
            self.error = "the pipe closed in the middle of a frame"
        payload = rest[HEADER_BYTES:]
        return [_decode(payload)] if payload else []

    def _lines(self) -> list[str]:
        # Text from here on: whole lines now, the last part when its end comes.
        *lines, rest = bytes(self._buffer).split(b"\n")
        self._buffer = bytearray(rest)
        return [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines]


class TelemetryPipe:
    """The telemetry pipe of one runtime process; each record goes to ``on_record``.

    ``write_fd`` is for the child (``pass_fds``), named in its environment by
    ``environment()``; close it here once the child has it, so that the pipe ends
    when the child does.
    """

    def __init__(self, on_record: Callable[[str], None], function: str) -> None:
        self.on_record = on_record
        self.function = function
        self.reader = FrameReader()
        self._read_fd, self.write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned = False

    def environment(self) -> dict[str, str]:
        return {TELEMETRY_FD_ENV: str(self.write_fd)}

    def listen(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read_fd, self.drain)

    def close_write_end(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def drain(self) -> None:
        """Hand on every record already written; close the pipe at its end."""
        if self._read_available():
            self.close()

    def close(self) -> None:
        """Read what is left, hand on a cut-off last record, and let the pipe go."""
        if self._read_fd < 0:
            return
        self._read_available()
        if self._loop is not None:
            self._loop.remove_reader(self._read_fd)
        os.close(self._read_fd)
        self._read_fd = -1
        self.close_write_end()
        self._deliver(self.reader.finish())

    def _read_available(self) -> bool:
        """Read until the pipe is empty; True when it has ended."""
        while self._read_fd >= 0:
            try:
                data = os.read(self._read_fd, 65536)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not data:
                return True
            self._deliver(self.reader.feed(data))
        return True

    def _deliver(self, records: list[str]) -> None:
        if self.reader.error is not None and not self._warned:
            self._warned = True
            logger.warning(
                "%s: the telemetry log pipe does not hold frames (%s); "
                "reading the rest as text",
                self.function,
                self.reader.error,
            )
        for record in records:
            self.on_record(record)
