"""The Invoke API, as boto3 and the AWS CLI speak it (rest-json, 2015-03-31)."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

from lamina.emulator.errors import InvalidParameterValue, ServiceError
from lamina.emulator.function import LATEST, parse_function_name
from lamina.emulator.http import Request, Response
from lamina.emulator.logs import tail
from lamina.emulator.service import InvokeRequest, LambdaService

logger = logging.getLogger(__name__)

FUNCTIONS = "/2015-03-31/functions/"
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
        request_id = str(uuid.uuid4())
        try:
            return await self._route(request, request_id)
        except ServiceError as error:
            logger.info("%s %s → %s", request.method, request.path, error.error_type)
            return error_response(error, request_id)

    async def _route(self, request: Request, request_id: str) -> Response:
        path = request.path
        if path.startswith(FUNCTIONS):
            rest = path[len(FUNCTIONS) :]
            name, _, action = rest.partition("/")
            if action == "invocations" and request.method == "POST":
                return await self.invoke(name, request)
            if rest in ("", "/") and request.method == "GET":
                return self.list_functions(request_id)
        elif path.rstrip("/") == FUNCTIONS.rstrip("/") and request.method == "GET":
            return self.list_functions(request_id)
        error = ServiceError(f"No operation at {request.method} {path}")
        error.error_type, error.status, error.kind = (
            "UnknownOperationException",
            404,
            "User",
        )
        raise error

    async def invoke(self, raw_name: str, request: Request) -> Response:
        qualifier = dict(request.query).get("Qualifier")
        ref = parse_function_name(raw_name, qualifier)
        invocation_type = _enum(
            request.header("x-amz-invocation-type") or "RequestResponse",
            INVOCATION_TYPES,
            "invocationType",
        )
        log_type = _enum(
            request.header("x-amz-log-type") or "None", LOG_TYPES, "logType"
        )
        invoke = InvokeRequest(
            ref=ref,
            payload=request.body,
            client_context=request.header("x-amz-client-context") or None,
        )

        if invocation_type == "DryRun":
            self.service.dry_run(invoke)
            return Response(204, b"", [("x-amzn-RequestId", str(uuid.uuid4()))])
        if invocation_type == "Event":
            request_id = self.service.invoke_async(invoke)
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
