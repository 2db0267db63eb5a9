"""The runtime loop: next event → handler → response or error, for ever."""

from __future__ import annotations

import os
import sys

from lamina.runtime import jsonfast
from lamina.runtime.api import Invocation, RuntimeAPI, StreamingPost
from lamina.runtime.context import LambdaContext, request_id_var, trace_id_var
from lamina.runtime.faults import (
    MARSHAL_ERROR,
    UNMARSHAL_ERROR,
    Fault,
    exception_payload,
    header_error_type,
    xray_cause,
)
from lamina.runtime.handler import load_handler
from lamina.runtime.logging_setup import configure_logging
from lamina.runtime.logsink import flush_output, log_error, sink
from lamina.runtime.streaming import (
    DEFAULT_CONTENT_TYPE,
    HTTP_INTEGRATION,
    HttpPrelude,
    ResponseWriter,
    is_stream,
    is_streaming_handler,
    to_bytes,
)

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, NoReturn

    from lamina.runtime.handler import Handler

_TRACE_ENV = "_X_AMZN_TRACE_ID"


class _Decimals:
    """Encodes ``Decimal`` as AWS's runtime does: its exact digits, as a JSON number.

    The C encoder cannot write raw text, so each Decimal goes out as a marker
    string that is swapped for its digits afterwards. The marker holds a NUL
    (which JSON escapes) and a per-process nonce: no real string looks like it.
    """

    nonce = ""

    def __init__(self) -> None:
        self.found: list[str] = []

    def default(self, value: Any) -> Any:
        # Decimal is what DynamoDB hands back; only look for it when it is loaded.
        decimal = sys.modules.get("decimal")
        if decimal is None or not isinstance(value, decimal.Decimal):
            name = type(value).__name__
            raise TypeError(f"Object of type {name} is not JSON serializable")
        if value.is_nan():
            return float("nan")
        if not _Decimals.nonce:
            _Decimals.nonce = os.urandom(6).hex()
        self.found.append(str(value))
        return f"\0{_Decimals.nonce}:{len(self.found) - 1}\0"

    def restore(self, text: str) -> str:
        for index, digits in enumerate(self.found):
            marker = f'"\\u0000{_Decimals.nonce}:{index}\\u0000"'
            text = text.replace(marker, digits, 1)
        return text


def marshal(result: Any) -> tuple[bytes, str]:
    """The handler's return value as response bytes and their content type."""
    if isinstance(result, (bytes, bytearray)):
        return bytes(result), "application/unknown"
    decimals = _Decimals()
    try:
        text = jsonfast.dumps(result, decimals.default)
    except (TypeError, ValueError, RecursionError) as exc:
        raise Fault(MARSHAL_ERROR, f"Unable to marshal response: {exc}") from exc
    if decimals.found:
        text = decimals.restore(text)
    return text.encode("utf-8", "surrogatepass"), "application/json"


def unmarshal(invocation: Invocation) -> Any:
    if invocation.content_type not in ("application/json", ""):
        return invocation.body
    try:
        return jsonfast.loads(invocation.body)
    except ValueError as exc:
        raise Fault(UNMARSHAL_ERROR, f"Unable to unmarshal input: {exc}") from exc


def write_log(text: str) -> None:
    """Write a runtime message to the function's log as one record."""
    sink().write(text)


def _parse_json_header(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = jsonfast.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Runner:
    """Runs one handler against one Runtime API connection."""

    def __init__(
        self,
        api: RuntimeAPI,
        handler: Handler,
        *,
        concurrent: bool = False,
        shared_loop: Any = None,
    ) -> None:
        self.api = api
        self.handler = handler
        # One invocation at a time may use the process environment for the trace
        # id, as Lambda's runtimes do; several at once may not.
        self.sets_trace_env = not concurrent
        self._shared_loop = shared_loop
        self._event_loop: Any = None
        self._writes_stream = is_streaming_handler(handler)

    def _await(self, awaitable: Any) -> Any:
        if self._shared_loop is not None:
            # Several invocations share one event loop in the main thread; this
            # worker thread waits for its own coroutine there, under its own ids.
            import asyncio

            ids = (request_id_var.get(), trace_id_var.get())
            future = asyncio.run_coroutine_threadsafe(
                _in_context(awaitable, *ids), self._shared_loop
            )
            return future.result()
        # One event loop for the life of the environment, created on first need, so
        # that an async handler can keep clients bound to it between invokes.
        if self._event_loop is None:
            import asyncio

            self._event_loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._event_loop)
        return self._event_loop.run_until_complete(awaitable)

    def handle(self, invocation: Invocation) -> Invocation | None:
        """Run one invocation; the next one, when it came with the answer."""
        request_id = invocation.request_id
        request_id_var.set(request_id)
        trace_id_var.set(invocation.trace_id)
        if self.sets_trace_env:
            if invocation.trace_id:
                os.environ[_TRACE_ENV] = invocation.trace_id
            else:
                os.environ.pop(_TRACE_ENV, None)
        context = LambdaContext(
            request_id,
            invocation.deadline_ms,
            invocation.function_arn,
            identity=_parse_json_header(invocation.cognito_identity),
            client_context=_parse_json_header(invocation.client_context),
            tenant_id=invocation.tenant_id,
            trace_id=invocation.trace_id,
        )
        stream: _Stream | None = None
        try:
            event = unmarshal(invocation)
            if self._writes_stream:
                stream = _Stream(self.api, request_id)
                writes: Callable[..., Any] = self.handler
                writes(event, ResponseWriter(stream.send), context)
                stream.finish()
                return None
            result = self.handler(event, context)
            if is_stream(result):
                stream = _Stream(self.api, request_id)
                for item in self._items(result):
                    stream.send_item(item)
                stream.finish()
                return None
            if hasattr(result, "__await__"):
                result = self._await(result)
            body, content_type = marshal(result)
        except Exception as exc:
            if stream is None or stream.post is None:
                self.report(request_id, exc)
            else:
                stream.fail(exc)
            return None
        # The service orders the function's output before END: it must be written
        # before the response is.
        flush_output()
        return self.api.respond_then_next(request_id, body, content_type)

    def _items(self, result: Any) -> Iterator[Any]:
        """Items of a generator, or of an async generator driven on the event loop."""
        if not hasattr(result, "__anext__"):
            yield from result
            return
        while True:
            try:
                yield self._await(result.__anext__())
            except StopAsyncIteration:
                return

    def report(self, request_id: str, exc: Exception) -> None:
        error_type, document = logged_error(exc, request_id)
        cause = "" if isinstance(exc, Fault) else xray_cause(exc)
        self.api.post_error(request_id, document, header_error_type(error_type), cause)

    def serve_forever(self) -> NoReturn:
        next_invocation, handle = self.api.next, self.handle
        invocation = next_invocation()
        while True:
            invocation = handle(invocation) or next_invocation()


class _Stream:
    """One streamed response: the chunked POST starts with the first piece."""

    def __init__(self, api: RuntimeAPI, request_id: str) -> None:
        self.api = api
        self.request_id = request_id
        self.post: StreamingPost | None = None

    def send(self, chunk: bytes, content_type: str) -> None:
        if self.post is None:
            flush_output()
            self.post = self.api.start_stream(self.request_id, content_type)
        self.post.send(chunk)

    def send_item(self, item: Any) -> None:
        if isinstance(item, HttpPrelude):
            if self.post is not None:
                raise TypeError("http_response(...) must be the first item of a stream")
            self.send(item.encode(), HTTP_INTEGRATION)
        else:
            self.send(to_bytes(item), DEFAULT_CONTENT_TYPE)

    def finish(self) -> None:
        if self.post is None:  # an empty stream is an empty response
            self.send(b"", DEFAULT_CONTENT_TYPE)
        flush_output()
        assert self.post is not None
        self.post.finish()

    def fail(self, exc: Exception) -> None:
        error_type, document = logged_error(exc, self.request_id)
        assert self.post is not None
        self.post.fail(header_error_type(error_type), document)


def logged_error(exc: BaseException, request_id: str = "") -> tuple[str, bytes]:
    """Log the error record for ``exc``; its type and JSON document for the API."""
    payload = exception_payload(exc, request_id)
    log_error(payload)
    document = jsonfast.dumps(payload).encode("utf-8", "backslashreplace")
    return str(payload["errorType"]), document


def _make_output_safe() -> None:
    # A handler's print() must never be what breaks an invoke: unencodable text is
    # escaped instead of raising, and output reaches the log as it is written.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace", line_buffering=True)


async def _in_context(
    awaitable: Any, request_id: str | None, trace_id: str | None
) -> Any:
    request_id_var.set(request_id)
    trace_id_var.set(trace_id)
    return await awaitable


def concurrency_from_env() -> int:
    raw = os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def _is_async(handler: Handler) -> bool:
    code = getattr(handler, "__code__", None)
    if code is None:  # a callable object: look at its __call__
        code = getattr(type(handler).__call__, "__code__", None)
    # CO_COROUTINE or CO_ASYNC_GENERATOR, read without importing inspect.
    return code is not None and bool(code.co_flags & (0x80 | 0x200))


def serve(
    handler: Handler, address: str, concurrency: int, api: RuntimeAPI | None = None
) -> None:
    """Poll ``/next`` with ``concurrency`` workers at once. Does not return.

    Sync handlers run on the workers' threads; async handlers all run on one event
    loop in the main thread, each invocation in its own task.
    """
    if concurrency <= 1:
        Runner(api or RuntimeAPI(address), handler).serve_forever()
        return
    import threading

    loop = None
    if _is_async(handler):
        import asyncio

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

    def work() -> None:
        try:
            runner = Runner(
                RuntimeAPI(address), handler, concurrent=True, shared_loop=loop
            )
            runner.serve_forever()
        except BaseException as exc:
            # The Runtime API went away: the environment is ending.
            write_log(f"lamina.runtime: worker stopped: {exc!r}")
            os._exit(1)

    for index in range(concurrency):
        threading.Thread(
            target=work, name=f"lamina-invoke-{index}", daemon=True
        ).start()
    if loop is not None:
        loop.run_forever()
    threading.Event().wait()


def run(handler: Handler, *, concurrency: int | None = None) -> None:
    """Run ``handler`` as this process's Lambda runtime. Does not return.

    ``concurrency`` (default: ``AWS_LAMBDA_MAX_CONCURRENCY``, else 1) is how many
    invocations may be in flight at once.
    """
    address = _runtime_api_address()
    _make_output_safe()
    configure_logging()
    serve(handler, address, concurrency or concurrency_from_env())


def _runtime_api_address() -> str:
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.exit(
            "lamina.runtime: AWS_LAMBDA_RUNTIME_API is not set; run this under "
            "Lambda, `lamina invoke` or `lamina serve`"
        )
    return address


def init_error(api: RuntimeAPI, exc: Exception) -> NoReturn:
    """Report a failed init phase and leave: Lambda starts a fresh environment."""
    _, document = logged_error(exc)
    error_type = exc.error_type if isinstance(exc, Fault) else "Runtime.Unknown"
    api.post_init_error(document, error_type)
    sys.exit(1)


def main() -> None:
    """``python -m lamina.runtime``: run the handler that ``_HANDLER`` names."""
    address = _runtime_api_address()
    _make_output_safe()
    configure_logging()
    api = RuntimeAPI(address)
    try:
        handler = load_handler(
            os.environ.get("_HANDLER", ""),
            os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd(),
        )
    except Exception as exc:
        init_error(api, exc)
    serve(handler, address, concurrency_from_env(), api)
