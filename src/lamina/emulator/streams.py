"""A response on its way from the runtime to the caller, chunk by chunk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

STREAM_LIMIT = 200 * 1024 * 1024  # what Lambda lets one streamed response carry


@dataclass(frozen=True)
class StreamError:
    error_type: str
    body: bytes  # the error document, JSON


class ResponseStream:
    """Chunks as the runtime posts them; ends with success or a ``StreamError``.

    A stream nobody listens to (``live=False``: a buffered Invoke) keeps no chunks;
    the joined body comes with the invoke's outcome instead.
    """

    def __init__(self, *, live: bool = False) -> None:
        self.live = live
        self.content_type = "application/json"
        self.is_streaming = False
        self.error: StreamError | None = None
        self.closed = False
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def push(self, chunk: bytes) -> None:
        if self.live and chunk and not self.closed:
            self._queue.put_nowait(chunk)

    def close(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.error = error
        self._queue.put_nowait(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk
