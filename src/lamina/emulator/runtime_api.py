"""The Runtime API (2018-06-01) that one execution environment's runtime talks to."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lamina.emulator.http import Request, Response
from lamina.emulator.streams import STREAM_LIMIT, StreamError

if TYPE_CHECKING:
    from lamina.emulator.extensions_api import ExtensionsAPI
    from lamina.emulator.invocation import PendingInvocation

logger = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime/"
EXTENSION_PREFIX = "/2020-01-01/extension/"  # served alongside, on the same address
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # what Lambda lets a runtime post
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
ERROR_BODY_HEADER = "lambda-runtime-function-error-body"
RESPONSE_MODE_HEADER = "lambda-runtime-function-response-mode"
_JSON = ("Content-Type", "application/json")
_REMEMBERED = 1024


@dataclass(frozen=True)
class RuntimeResult:
    """What the runtime posted for an invocation (or what Lambda decided for it)."""

    ok: bool
    body: bytes
    error_type: str | None = None
    platform_error: bool = False
    message: str = ""


def response_too_large_message(size: int) -> str:
    return (
        f"Response payload size ({size} bytes) exceeded maximum allowed "
        f"payload size ({MAX_RESPONSE_BYTES} bytes)."
    )


def too_large(message: str) -> RuntimeResult:
    """The platform's ``Function.ResponseSizeTooLarge`` in place of an answer."""
    body = json.dumps({"errorMessage": message, "errorType": RESPONSE_TOO_LARGE})
    return RuntimeResult(False, body.encode(), RESPONSE_TOO_LARGE, True, message)


def _answer(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return Response(status, body, [_JSON])


_ACCEPTED = Response(202, b'{"status":"OK"}\n', [_JSON])


_ERROR_TYPE = re.compile(r"(Runtime|Function|Extension)\.[A-Za-z0-9_.-]+")


def error_category(raw: str | None, category: str) -> str:
    """The error type Lambda records: ``Category.Reason``, else ``Category.Unknown``."""
    if raw and _ERROR_TYPE.fullmatch(raw):
        return raw
    return f"{category}.Unknown"


def error_document(body: bytes, error_type: str | None) -> bytes:
    """The runtime's error body when it is a JSON object; else one built around it."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        return body
    text = body.decode("utf-8", "replace")
    return json.dumps(
        {"errorMessage": text, "errorType": error_type or "Runtime.Unknown"}
    ).encode()


class RuntimeAPIHandler:
    """Routes one environment's Runtime API calls to its invocations."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.init_error: asyncio.Future[RuntimeResult] = loop.create_future()
        self._queue: asyncio.Queue[PendingInvocation] = asyncio.Queue()
        # Invocations handed out by /next, newest last; finished ones are kept for a
        # while so that a second answer for one gets 403 rather than 400.
        self._handed: OrderedDict[str, PendingInvocation] = OrderedDict()
        self._abandoned: set[str] = set()
        self.extensions: ExtensionsAPI | None = None

    def dispatch(self, pending: PendingInvocation) -> None:
        self._queue.put_nowait(pending)

    def abandon(self, request_id: str) -> None:
        """The invoke is over (timed out): late answers for it are refused."""
        self._abandoned.add(request_id)

    def close(self) -> None:
        for future in (self.ready, self.init_error):
            if not future.done():
                future.cancel()

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith(EXTENSION_PREFIX) and self.extensions is not None:
            return await self.extensions.handle(request)
        if not path.startswith(PREFIX):
            return _answer(404, "InvalidRequest", f"No such route: {path}")
        route = path[len(PREFIX) :]
        method = request.method

        if route == "invocation/next" and method == "GET":
            return await self._next()
        if route == "init/error" and method == "POST":
            return self._post_init_error(request)
        if route.startswith("invocation/") and method == "POST":
            request_id, _, action = route[len("invocation/") :].rpartition("/")
            if action == "response":
                return await self._post_response(request_id, request)
            if action == "error":
                return self._post_error(request_id, request)
        if route in ("invocation/next", "init/error") or route.startswith(
            "invocation/"
        ):
            return _answer(
                405, "MethodNotAllowed", f"{method} is not allowed on {path}"
            )
        return _answer(404, "InvalidRequest", f"No such route: {path}")

    async def _next(self) -> Response:
        if not self.ready.done():
            self.ready.set_result(None)
        pending = await self._queue.get()
        self._handed[pending.request_id] = pending
        while len(self._handed) > _REMEMBERED:
            forgotten, _ = self._handed.popitem(last=False)
            self._abandoned.discard(forgotten)
        headers = [
            _JSON,
            ("Lambda-Runtime-Aws-Request-Id", pending.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(pending.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", pending.function_arn),
            ("Lambda-Runtime-Trace-Id", pending.trace_id),
        ]
        if pending.client_context:
            headers.append(("Lambda-Runtime-Client-Context", pending.client_context))
        if pending.tenant_id:
            headers.append(("Lambda-Runtime-Aws-Tenant-Id", pending.tenant_id))
        if pending.cognito_identity:
            headers.append(
                ("Lambda-Runtime-Cognito-Identity", pending.cognito_identity)
            )
        return Response(200, pending.payload, headers)

    def _invocation(self, request_id: str) -> PendingInvocation | Response:
        pending = self._handed.get(request_id)
        if pending is None:
            return _answer(400, "InvalidRequestID", "Invalid request ID")
        if pending.result.done() or request_id in self._abandoned:
            return _answer(
                403,
                "InvalidStateTransition",
                f"State transition is not allowed: {request_id} already has a result",
            )
        return pending

    async def _post_response(self, request_id: str, request: Request) -> Response:
        pending = self._invocation(request_id)
        if isinstance(pending, Response):
            return pending
        if request.stream is not None:
            return await self._stream_response(pending, request)
        stream = pending.stream
        stream.content_type = request.header("content-type") or "application/json"
        size = len(request.body)
        if size > MAX_RESPONSE_BYTES:
            result = too_large(response_too_large_message(size))
            pending.result.set_result(result)
            stream.close(StreamError(RESPONSE_TOO_LARGE, result.body))
            return _answer(413, "RequestEntityTooLarge", result.message)
        stream.push(request.body)
        stream.close()
        pending.result.set_result(RuntimeResult(True, request.body))
        return _ACCEPTED

    async def _stream_response(
        self, pending: PendingInvocation, request: Request
    ) -> Response:
        """Pass a streamed response on chunk by chunk; trailers carry a late error."""
        assert request.stream is not None
        stream = pending.stream
        stream.is_streaming = True
        stream.content_type = (
            request.header("content-type") or "application/octet-stream"
        )
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream:
            if pending.result.done():  # ended meanwhile: timed out or abandoned
                continue
            size += len(chunk)
            if size > STREAM_LIMIT:
                result = too_large(f"Response stream exceeded {STREAM_LIMIT} bytes.")
                stream.close(StreamError(RESPONSE_TOO_LARGE, result.body))
                pending.result.set_result(result)
                continue
            parts.append(chunk)
            stream.push(chunk)
        if pending.result.done():
            return _ACCEPTED

        trailers = request.stream.trailers
        error_type = trailers.get(ERROR_TYPE_HEADER)
        if error_type:
            try:
                body = base64.b64decode(trailers.get(ERROR_BODY_HEADER, ""))
            except ValueError:
                body = b""
            body = error_document(body, error_type)
            stream.close(StreamError(error_type, body))
            pending.result.set_result(RuntimeResult(False, body, error_type))
            return _ACCEPTED
        stream.close()
        pending.result.set_result(RuntimeResult(True, b"".join(parts)))
        return _ACCEPTED

    def _post_error(self, request_id: str, request: Request) -> Response:
        pending = self._invocation(request_id)
        if isinstance(pending, Response):
            return pending
        error_type = error_category(request.header(ERROR_TYPE_HEADER), "Function")
        body = error_document(request.body, error_type)
        pending.stream.close(StreamError(error_type, body))
        pending.result.set_result(RuntimeResult(False, body, error_type))
        return _ACCEPTED

    def _post_init_error(self, request: Request) -> Response:
        if self.ready.done() or self.init_error.done():
            return _answer(
                403,
                "InvalidStateTransition",
                "Init errors are only accepted during init",
            )
        error_type = error_category(request.header(ERROR_TYPE_HEADER), "Runtime")
        body = error_document(request.body, error_type)
        self.init_error.set_result(RuntimeResult(False, body, error_type))
        return _ACCEPTED


def is_streamed_response(request: Request) -> bool:
    """Leave a streamed response's body to the handler, to pass on as it arrives."""
    return request.header(RESPONSE_MODE_HEADER).lower() == "streaming"
