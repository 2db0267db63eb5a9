"""A small asyncio HTTP/1.1 server: keep-alive, Content-Length and chunked bodies.

Parsing is kept free of I/O (``parse_head``, ``render_response``) so it can be
tested without sockets; ``serve`` puts it on a listening socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


class StreamAborted(Exception):
    """Raised by a response stream to end the connection without finishing the body.

    The caller sees a truncated response: how a failure part-way through a streamed
    answer reaches an HTTP client that has already been sent a status.
    """


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.1 request we can answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    path: str = ""
    query: list[tuple[str, str]] = field(default_factory=list)
    peer: tuple[str, int] | None = None
    # Repeated headers (for Cookie, X-Foo: a / X-Foo: b) in arrival order.
    header_list: list[tuple[str, str]] = field(default_factory=list)
    # A chunked body the handler reads as it arrives (see ``serve(streaming=...)``).
    stream: BodyStream | None = None
    version: str = "HTTP/1.1"

    def wants_keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told not to; HTTP/1.0 only if asked."""
        connection = self.header("connection").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    # When set, the body is sent chunk by chunk as the iterator yields it.
    stream: AsyncIterator[bytes] | None = None


Handler = Callable[[Request], Awaitable[Response]]
StreamingPredicate = Callable[[Request], bool]


class BodyStream:
    """A chunked request body, read as it arrives; its trailers once it has ended."""

    def __init__(self, reader: asyncio.StreamReader, limit: int = MAX_BODY) -> None:
        self._reader = reader
        self._limit = limit
        self._total = 0
        self.trailers: dict[str, str] = {}
        self.done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while not self.done:
            chunk = await self._next_chunk()
            if chunk:
                yield chunk

    async def _next_chunk(self) -> bytes:
        try:
            line = await self._reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            raise BadRequest("chunk size line too long") from exc
        digits = line.split(b";", 1)[0].strip()
        if not digits or any(c not in b"0123456789abcdefABCDEF" for c in digits):
            raise BadRequest("malformed chunk size")
        size = int(digits, 16)
        if size == 0:
            while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                self.trailers[name.strip().lower()] = value.strip()
            self.done = True
            return b""
        self._total += size
        if self._total > self._limit:
            raise BadRequest("request body too large", 413)
        chunk = await self._reader.readexactly(size)
        await self._reader.readexactly(2)
        return chunk

    async def read(self) -> bytes:
        """The rest of the body, joined."""
        return b"".join([chunk async for chunk in self])


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (without the final blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest("undecodable request head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line: {lines[0][:100]!r}")
    method, target, version = parts
    if not method.isalpha() or not target:
        raise BadRequest(f"malformed request line: {lines[0][:100]!r}")

    headers: dict[str, str] = {}
    header_list: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or " " in name:
            raise BadRequest(f"malformed header line: {line[:100]!r}")
        # Only space and tab are optional white space around a field value.
        key, value = name.lower(), value.strip(" \t")
        header_list.append((key, value))
        headers[key] = f"{headers[key]},{value}" if key in headers else value

    plain = target.startswith("/") and not target.startswith("//")
    if plain and "?" not in target and "%" not in target:
        # The common case (every Runtime API call) needs no URL parsing.
        path, query = target, []
    else:
        try:
            split = urlsplit(target)
        except ValueError as exc:
            raise BadRequest(f"malformed request target: {target[:100]!r}") from exc
        path, query = (
            unquote(split.path),
            parse_qsl(split.query, keep_blank_values=True),
        )
    return Request(
        method=method,
        target=target,
        headers=headers,
        path=path,
        query=query,
        header_list=header_list,
        version=version,
    )


@functools.cache
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    """The Date header's value, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def render_response(response: Response, *, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    names = set()
    for name, value in response.headers:
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "date" not in names:
        lines.append("Date: " + _date())
    lines.append(f"Content-Length: {len(response.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


async def read_request(
    reader: asyncio.StreamReader,
    streaming: StreamingPredicate | None = None,
    writer: asyncio.StreamWriter | None = None,
) -> Request | None:
    """Read one request; ``None`` when the peer closed between requests.

    A chunked body is left for the handler to read as it arrives when
    ``streaming(request)`` says so; otherwise it is read whole.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("connection closed mid-request") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large", 431) from exc

    request = parse_head(head[:-4])
    if writer is not None and request.header("expect").lower() == "100-continue":
        # curl and others wait a second for this before sending a large body.
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in request.header("transfer-encoding").lower():
        request.stream = BodyStream(reader)
        if streaming is None or not streaming(request):
            request.body = await request.stream.read()
            request.stream = None
    else:
        raw_length = request.header("content-length", "0") or "0"
        if not (raw_length.isascii() and raw_length.isdigit()):
            raise BadRequest("malformed Content-Length")
        length = int(raw_length)
        if length > MAX_BODY:
            raise BadRequest("request body too large", 413)
        if length:
            request.body = await reader.readexactly(length)
    return request


def render_head(response: Response, *, keep_alive: bool) -> bytes:
    """Status line and headers of a response whose body is sent chunked."""
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append("Date: " + _date())
    lines.append("Transfer-Encoding: chunked")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_stream(
    writer: asyncio.StreamWriter, response: Response, keep_alive: bool
) -> None:
    assert response.stream is not None
    writer.write(render_head(response, keep_alive=keep_alive))
    await writer.drain()
    async for chunk in response.stream:
        if chunk:
            writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await writer.drain()
    writer.write(b"0\r\n\r\n")


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    streaming: StreamingPredicate | None = None,
) -> None:
    peer = writer.get_extra_info("peername")
    try:
        while True:
            try:
                request = await read_request(reader, streaming, writer)
            except BadRequest as exc:
                body = json.dumps({"message": str(exc)}).encode()
                writer.write(
                    render_response(Response(exc.status, body), keep_alive=False)
                )
                break
            if request is None:
                break
            request.peer = peer
            response = await handler(request)
            if request.stream is not None and not request.stream.done:
                await request.stream.read()  # the next request starts after it
            keep_alive = not response.close and request.wants_keep_alive()
            if response.stream is not None:
                try:
                    await _write_stream(writer, response, keep_alive)
                except StreamAborted:
                    break
            else:
                writer.write(render_response(response, keep_alive=keep_alive))
            if not keep_alive:
                break
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, BadRequest):
        pass
    finally:
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


async def serve(
    handler: Handler,
    host: str,
    port: int,
    *,
    streaming: StreamingPredicate | None = None,
) -> asyncio.Server:
    """Listen on host:port (0 picks a free port) and answer with ``handler``."""

    async def on_connect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # A connection still open when the loop shuts down (a runtime long-polling
        # /next) is cancelled; that is its normal end, not an error to report.
        with contextlib.suppress(asyncio.CancelledError):
            await serve_connection(reader, writer, handler, streaming)

    return await asyncio.start_server(
        on_connect, host, port, limit=MAX_HEAD, reuse_address=True
    )
