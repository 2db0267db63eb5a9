"""The Invoke API, as boto3 and the AWS CLI speak it (rest-json, 2015-03-31)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator

from lamina.emulator import eventstream, function_url
from lamina.emulator.errors import InvalidParameterValue, ServiceError
from lamina.emulator.function import LATEST, FunctionRef, parse_function_name
from lamina.emulator.http import Request, Response, StreamAborted
from lamina.emulator.invoke_request import InvokeRequest, new_request_id
from lamina.emulator.logs import tail
from lamina.emulator.service import LambdaService
from lamina.emulator.streams import ResponseStream

logger = logging.getLogger(__name__)

FUNCTIONS = "/2015-03-31/functions/"
STREAMING_FUNCTIONS = "/2021-11-15/functions/"
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
LOG_TYPES = ("None", "Tail")
_JSON = ("Content-Type", "application/json")


def error_response(error: ServiceError, request_id: str) -> Response:
    headers = [
        _JSON,
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", error.error_type),
    ]
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    return Response(error.status, error.body(), headers)


def _enum(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidParameterValue(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return value


class InvokeAPI:
    """Routes Invoke API requests to a ``LambdaService``."""

    def __init__(self, service: LambdaService) -> None:
        self.service = service

    async def handle(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except ServiceError as error:
            logger.info("%s %s → %s", request.method, request.path, error.error_type)
            return error_response(error, new_request_id())
        except Exception:
            # A fault of lamina's own: the caller gets Lambda's 500, the log the cause.
            logger.error("%s %s failed", request.method, request.path, exc_info=True)
            return error_response(
                ServiceError("An internal error occurred in the local Lambda service."),
                new_request_id(),
            )

    async def _route(self, request: Request) -> Response:
        path = request.path
        if path.startswith(function_url.PREFIX):
            return await self.function_url(request, new_request_id())
        if path.startswith(STREAMING_FUNCTIONS) and request.method == "POST":
            name, _, action = path[len(STREAMING_FUNCTIONS) :].partition("/")
            if action == "response-streaming-invocations":
                return await self.invoke_stream(name, request)
        if path.startswith(FUNCTIONS):
            rest = path[len(FUNCTIONS) :]
            name, _, action = rest.partition("/")
            if action == "invocations" and request.method == "POST":
                return await self.invoke(name, request)
            if rest in ("", "/") and request.method == "GET":
                return self.list_functions(new_request_id())
        elif path.rstrip("/") == FUNCTIONS.rstrip("/") and request.method == "GET":
            return self.list_functions(new_request_id())
        error = ServiceError(f"No operation at {request.method} {path}")
        error.error_type, error.status, error.kind = (
            "UnknownOperationException",
            404,
            "User",
        )
        raise error

    def _read_invoke(
        self, raw_name: str, request: Request
    ) -> tuple[InvokeRequest, str, str]:
        qualifier = dict(request.query).get("Qualifier")
        invocation_type = _enum(
            request.header("x-amz-invocation-type") or "RequestResponse",
            INVOCATION_TYPES,
            "invocationType",
        )
        log_type = _enum(
            request.header("x-amz-log-type") or "None", LOG_TYPES, "logType"
        )
        invoke = InvokeRequest(
            ref=parse_function_name(raw_name, qualifier),
            payload=request.body,
            client_context=request.header("x-amz-client-context") or None,
            tenant_id=request.header("x-amz-tenant-id") or None,
        )
        return invoke, invocation_type, log_type

    def _dry_run(self, invoke: InvokeRequest) -> Response:
        self.service.dry_run(invoke)
        return Response(204, b"", [("x-amzn-RequestId", new_request_id())])

    async def invoke(self, raw_name: str, request: Request) -> Response:
        invoke, invocation_type, log_type = self._read_invoke(raw_name, request)
        ref = invoke.ref

        if invocation_type == "DryRun":
            return self._dry_run(invoke)
        if invocation_type == "Event":
            request_id = await self.service.invoke_async(invoke)
            logger.info("%s: accepted async invoke %s", ref.name, request_id)
            return Response(202, b"", [("x-amzn-RequestId", request_id), _JSON])

        started = time.perf_counter()
        outcome = await self.service.invoke(invoke)
        headers = [
            _JSON,
            ("x-amzn-RequestId", outcome.request_id),
            ("X-Amz-Executed-Version", LATEST),
        ]
        if outcome.is_error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        if log_type == "Tail":
            headers.append(
                ("X-Amz-Log-Result", base64.b64encode(tail(outcome.log)).decode())
            )
        logger.info(
            "%s %s %s in %.1f ms",
            ref.name,
            outcome.request_id,
            "error" if outcome.is_error else "ok",
            (time.perf_counter() - started) * 1000,
        )
        return Response(200, outcome.payload, headers)

    def list_functions(self, request_id: str) -> Response:
        functions = [
            {
                "FunctionName": config.name,
                "FunctionArn": config.arn,
                "Runtime": config.runtime,
                "Handler": config.handler,
                "MemorySize": config.memory_mb,
                "Timeout": int(config.timeout_s),
                "Architectures": [config.architecture],
                "Version": LATEST,
                "PackageType": "Zip",
                "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
            }
            for config in self.service.functions.values()
        ]
        body = json.dumps({"Functions": functions}).encode()
        return Response(200, body, [_JSON, ("x-amzn-RequestId", request_id)])

    async def invoke_stream(self, raw_name: str, request: Request) -> Response:
        """InvokeWithResponseStream: chunks as event-stream messages as they come."""
        invoke, invocation_type, log_type = self._read_invoke(raw_name, request)
        if invocation_type == "DryRun":
            return self._dry_run(invoke)
        if invocation_type == "Event":
            raise InvalidParameterValue(
                "InvokeWithResponseStream does not take InvocationType Event"
            )
        invoke = dataclasses.replace(invoke, request_id=new_request_id())
        accepted = self.service.accept(invoke)
        stream = ResponseStream(live=True)
        task = asyncio.get_running_loop().create_task(accepted.run(stream))

        async def messages() -> AsyncIterator[bytes]:
            async for chunk in stream.chunks():
                yield eventstream.payload_chunk(chunk)
            outcome = await task
            code = details = None
            if outcome.is_error:
                code, details = _error_fields(outcome.payload)
            log = (
                base64.b64encode(tail(outcome.log)).decode()
                if log_type == "Tail"
                else None
            )
            yield eventstream.invoke_complete(code, details, log)

        headers = [
            ("Content-Type", "application/vnd.amazon.eventstream"),
            ("x-amzn-RequestId", invoke.request_id or ""),
            ("X-Amz-Executed-Version", LATEST),
        ]
        return Response(200, b"", headers, stream=messages())

    async def function_url(self, request: Request, request_id: str) -> Response:
        """A function URL: the request as a 2.0 event; the answer as HTTP."""
        name = request.path[len(function_url.PREFIX) :].split("/", 1)[0]
        config = self.service.functions.get(name)
        if config is None or config.url_invoke_mode is None:
            message = f"No function URL for {name!r}: add FunctionUrlConfig to it"
            return Response(404, json.dumps({"Message": message}).encode(), [_JSON])
        event = function_url.request_event(request, name, request_id=request_id)
        invoke = InvokeRequest(FunctionRef(name, LATEST), json.dumps(event).encode())
        if config.url_invoke_mode == "RESPONSE_STREAM":
            return await self._url_stream(invoke)
        stream = ResponseStream()
        outcome = await self.service.invoke(invoke, stream)
        prelude = stream.content_type == function_url.HTTP_INTEGRATION
        return _http(_buffered_answer(outcome.payload, outcome.is_error, prelude))

    async def _url_stream(self, invoke: InvokeRequest) -> Response:
        accepted = self.service.accept(invoke)
        stream = ResponseStream(live=True)
        task = asyncio.get_running_loop().create_task(accepted.run(stream))
        chunks = stream.chunks()

        # The status line waits for the prelude (or, for a plain stream, the first
        # chunk); the body then flows as it is produced.
        buffer = b""
        first: function_url.HttpAnswer | None = None
        rest = b""
        async for chunk in chunks:
            if not stream.is_streaming:
                continue  # a buffered answer: taken whole from the outcome below
            if stream.content_type != function_url.HTTP_INTEGRATION:
                first = function_url.HttpAnswer(
                    200, [("Content-Type", stream.content_type)]
                )
                rest = chunk
                break
            buffer += chunk
            split = function_url.split_prelude(buffer)
            if split is not None:
                first, rest = split
                break
        if first is None:
            outcome = await task
            prelude = stream.content_type == function_url.HTTP_INTEGRATION
            if stream.is_streaming and not prelude and not outcome.is_error:
                # An empty stream is an empty answer.
                return Response(200, b"", [("Content-Type", stream.content_type)])
            return _http(_buffered_answer(outcome.payload, outcome.is_error, prelude))
        if first is function_url.BAD_GATEWAY:  # a prelude HTTP cannot carry
            async for _ in chunks:
                pass
            await task
            return _http(first)

        async def body() -> AsyncIterator[bytes]:
            if rest:
                yield rest
            async for chunk in chunks:
                yield chunk
            await task
            if stream.error is not None:
                raise StreamAborted(stream.error.error_type)

        return Response(first.status, b"", first.headers, stream=body())


def _error_fields(payload: bytes) -> tuple[str, str]:
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict):
        return str(document.get("errorType", "Unhandled")), str(
            document.get("errorMessage", "")
        )
    return "Unhandled", payload.decode("utf-8", "replace")


def _buffered_answer(
    payload: bytes, is_error: bool, prelude: bool
) -> function_url.HttpAnswer:
    if is_error:
        return function_url.BAD_GATEWAY
    if prelude:
        split = function_url.split_prelude(payload)
        if split is None:
            return function_url.BAD_GATEWAY
        answer, rest = split
        return function_url.HttpAnswer(answer.status, answer.headers, rest)
    return function_url.response_from_payload(payload)


def _http(answer: function_url.HttpAnswer) -> Response:
    return Response(answer.status, answer.body, list(answer.headers))
