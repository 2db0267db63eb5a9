"""Response streaming: a handler sends its response in pieces, as it produces them.

Two ways to stream:

- return a generator (or an async generator); each item is sent as it is yielded.
  For an HTTP caller (a function URL), yield ``http_response(...)`` first to set the
  status, headers and cookies;
- decorate the handler with ``@streaming`` and write to the stream it is given::

      @streaming
      def handler(event, stream, context):
          stream.http_response(200, {"Content-Type": "text/plain"})
          stream.write(b"hello ")
          stream.write("world")

Items are ``bytes`` or ``str`` (sent as UTF-8); anything else is sent as JSON.
"""

from __future__ import annotations

from lamina.runtime import jsonfast

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
PRELUDE_END = b"\0" * 8


class HttpPrelude:
    """Status, headers and cookies of an HTTP response, sent before its body."""

    __slots__ = ("cookies", "headers", "status_code")

    def __init__(
        self,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        cookies: list[str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers or {}
        self.cookies = cookies or []

    def encode(self) -> bytes:
        document = {
            "statusCode": self.status_code,
            "headers": self.headers,
            "cookies": self.cookies,
        }
        return jsonfast.dumps(document).encode("utf-8") + PRELUDE_END


def http_response(
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    cookies: list[str] | None = None,
) -> HttpPrelude:
    """The first item of a stream meant for an HTTP caller."""
    return HttpPrelude(status_code, headers, cookies)


def to_bytes(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    return jsonfast.dumps(item).encode("utf-8")


def streaming(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``handler(event, stream, context)`` as one that writes to a stream."""
    handler._lamina_streaming = True  # type: ignore[attr-defined]
    return handler


def is_streaming_handler(handler: Callable[..., Any]) -> bool:
    return getattr(handler, "_lamina_streaming", False) is True


def is_stream(result: Any) -> bool:
    """A generator or async generator: the handler streams its response."""
    return hasattr(result, "__anext__") or (
        hasattr(result, "__next__") and hasattr(result, "send")
    )


class ResponseWriter:
    """What a ``@streaming`` handler writes to. The request starts on first write."""

    def __init__(self, send: Callable[[bytes, str], None]) -> None:
        self._send = send
        self._content_type: str | None = None
        self.started = False

    def set_content_type(self, content_type: str) -> None:
        if self.started:
            raise RuntimeError("the content type must be set before the first write")
        self._content_type = content_type

    def http_response(
        self,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        cookies: list[str] | None = None,
    ) -> None:
        self.set_content_type(HTTP_INTEGRATION)
        self.write(HttpPrelude(status_code, headers, cookies).encode())

    def write(self, data: Any) -> None:
        chunk = to_bytes(data)
        self.started = True
        self._send(chunk, self._content_type or DEFAULT_CONTENT_TYPE)
