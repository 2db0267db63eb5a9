import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lamina.emulator.http import BodyStream, Request, Response, parse_head
from lamina.emulator.invocation import PendingInvocation
from lamina.emulator.runtime_api import (
    MAX_RESPONSE_BYTES,
    PREFIX,
    RESPONSE_TOO_LARGE,
    RuntimeAPIHandler,
    RuntimeResult,
    error_document,
    is_streamed_response,
)
from lamina.emulator.streams import ResponseStream, StreamError

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
TRACE = "Root=1-5f1b2c3d-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0"


def run(test: Callable[[RuntimeAPIHandler], Awaitable[None]]) -> None:
    """Run ``test`` against a fresh handler inside its own event loop."""

    async def main() -> None:
        api = RuntimeAPIHandler()
        try:
            await asyncio.wait_for(test(api), 5)
        finally:
            api.close()

    asyncio.run(main())


def request(
    method: str, route: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Request:
    """A request as ``parse_head`` would build it, with ``body`` attached."""
    lines = [f"{method} {PREFIX}{route} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    built = parse_head("\r\n".join(lines).encode())
    built.body = body
    return built


def invocation(request_id: str = "req-1", **extra: Any) -> PendingInvocation:
    return PendingInvocation(
        request_id=request_id,
        payload=b'{"key": "value"}',
        deadline_ms=1_700_000_003_000,
        function_arn=ARN,
        trace_id=TRACE,
        **extra,
    )


async def taken(api: RuntimeAPIHandler, **extra: Any) -> PendingInvocation:
    """Dispatch invocation ``req-1`` and take it with ``/next``, as a runtime would."""
    pending = invocation("req-1", **extra)
    api.dispatch(pending)
    await api.handle(request("GET", "invocation/next"))
    return pending


def document(response: Response) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(response.body)
    return parsed


def header(response: Response, name: str) -> str | None:
    values = [v for k, v in response.headers if k.lower() == name.lower()]
    assert len(values) <= 1
    return values[0] if values else None


# -- /next -----------------------------------------------------------------------------


def test_next_hands_out_the_event_with_its_headers() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        api.dispatch(invocation("req-1"))

        response = await api.handle(request("GET", "invocation/next"))

        assert response.status == 200
        assert response.body == b'{"key": "value"}'
        assert header(response, "Lambda-Runtime-Aws-Request-Id") == "req-1"
        assert header(response, "Lambda-Runtime-Deadline-Ms") == "1700000003000"
        assert header(response, "Lambda-Runtime-Invoked-Function-Arn") == ARN
        assert header(response, "Lambda-Runtime-Trace-Id") == TRACE
        assert header(response, "Content-Type") == "application/json"
        assert header(response, "Lambda-Runtime-Client-Context") is None
        assert header(response, "Lambda-Runtime-Cognito-Identity") is None

    run(test)


def test_next_passes_client_context_and_identity_when_there_are_some() -> None:
    context = '{"client": {"installation_id": "i-1"}}'
    identity = '{"cognitoIdentityId": "id-1"}'

    async def test(api: RuntimeAPIHandler) -> None:
        api.dispatch(invocation(client_context=context, cognito_identity=identity))

        response = await api.handle(request("GET", "invocation/next"))

        assert header(response, "Lambda-Runtime-Client-Context") == context
        assert header(response, "Lambda-Runtime-Cognito-Identity") == identity

    run(test)


def test_next_waits_for_an_event_and_marks_the_runtime_ready() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        assert not api.ready.done()

        waiting = asyncio.create_task(api.handle(request("GET", "invocation/next")))
        for _ in range(5):
            await asyncio.sleep(0)

        assert api.ready.done()
        assert not waiting.done()
        api.dispatch(invocation("late"))
        response = await waiting
        assert header(response, "Lambda-Runtime-Aws-Request-Id") == "late"

    run(test)


def test_events_are_handed_out_in_order() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        api.dispatch(invocation("first"))
        api.dispatch(invocation("second"))

        ids = []
        for _ in range(2):
            response = await api.handle(request("GET", "invocation/next"))
            ids.append(header(response, "Lambda-Runtime-Aws-Request-Id"))
            await api.handle(request("POST", f"invocation/{ids[-1]}/response"))

        assert ids == ["first", "second"]

    run(test)


# -- /response -------------------------------------------------------------------------


def test_a_response_for_the_current_invocation_is_accepted() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(
            request("POST", "invocation/req-1/response", b'{"ok": true}')
        )

        assert response.status == 202
        assert document(response) == {"status": "OK"}
        assert await pending.result == RuntimeResult(True, b'{"ok": true}')

    run(test)


def test_an_empty_response_is_a_result() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(request("POST", "invocation/req-1/response"))

        assert response.status == 202
        assert (await pending.result).body == b""

    run(test)


@pytest.mark.parametrize("action", ["response", "error"])
def test_an_answer_for_another_id_is_refused(action: str) -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(request("POST", f"invocation/other/{action}"))

        assert response.status == 400
        assert document(response)["errorType"] == "InvalidRequestID"
        assert not pending.result.done()

    run(test)


@pytest.mark.parametrize("action", ["response", "error"])
def test_an_answer_before_any_next_is_refused(action: str) -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        api.dispatch(invocation("req-1"))

        response = await api.handle(request("POST", f"invocation/req-1/{action}"))

        assert response.status == 400
        assert document(response)["errorType"] == "InvalidRequestID"

    run(test)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("response", "response", id="response-twice"),
        pytest.param("response", "error", id="error-after-response"),
        pytest.param("error", "response", id="response-after-error"),
        pytest.param("error", "error", id="error-twice"),
    ],
)
def test_a_second_answer_is_refused(first: str, second: str) -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)
        await api.handle(request("POST", f"invocation/req-1/{first}", b'{"n": 1}'))

        response = await api.handle(
            request("POST", f"invocation/req-1/{second}", b'{"n": 2}')
        )

        assert response.status == 403
        assert document(response)["errorType"] == "InvalidStateTransition"
        assert (await pending.result).body == b'{"n": 1}'

    run(test)


def test_an_answer_after_the_invoke_was_abandoned_is_refused() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)
        api.abandon("req-1")

        response = await api.handle(request("POST", "invocation/req-1/response"))

        assert response.status == 403
        assert not pending.result.done()

    run(test)


def test_a_response_over_the_limit_fails_the_invocation() -> None:
    size = MAX_RESPONSE_BYTES + 1

    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(
            request("POST", "invocation/req-1/response", b"x" * size)
        )

        assert response.status == 413
        result = await pending.result
        assert not result.ok
        assert (
            result.error_type == RESPONSE_TOO_LARGE == "Function.ResponseSizeTooLarge"
        )
        assert result.platform_error
        assert str(size) in result.message
        assert json.loads(result.body) == {
            "errorMessage": result.message,
            "errorType": "Function.ResponseSizeTooLarge",
        }
        assert document(response)["errorMessage"] == result.message

    run(test)


def test_a_response_at_the_limit_is_accepted() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(
            request("POST", "invocation/req-1/response", b"x" * MAX_RESPONSE_BYTES)
        )

        assert response.status == 202
        assert (await pending.result).ok

    run(test)


def test_the_limit_is_six_megabytes_and_a_little() -> None:
    assert MAX_RESPONSE_BYTES == 6 * 1024 * 1024 + 100


# -- /error ----------------------------------------------------------------------------


def test_an_error_keeps_the_runtimes_document_and_error_type() -> None:
    body = json.dumps(
        {
            "errorMessage": "boom",
            "errorType": "ValueError",
            "requestId": "req-1",
            "stackTrace": ['  File "/var/task/app.py", line 3, in handler\n'],
        }
    ).encode()

    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(
            request(
                "POST",
                "invocation/req-1/error",
                body,
                {"Lambda-Runtime-Function-Error-Type": "Function.ValueError"},
            )
        )

        assert response.status == 202
        assert await pending.result == RuntimeResult(False, body, "Function.ValueError")

    run(test)


@pytest.mark.parametrize(
    "header",
    [pytest.param(None, id="no-header"), pytest.param("ValueError", id="no-category")],
)
def test_an_error_type_outside_lambdas_pattern_is_unknown(header: str | None) -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        headers = {"lambda-runtime-function-error-type": header} if header else {}
        await api.handle(request("POST", "invocation/req-1/error", b"{}", headers))

        result = await pending.result
        assert (result.ok, result.body, result.error_type) == (
            False,
            b"{}",
            "Function.Unknown",
        )
        assert not result.platform_error

    run(test)


@pytest.mark.parametrize(
    ("body", "error_type", "expected"),
    [
        pytest.param(
            b"segmentation fault",
            "Runtime.Crash",
            {"errorMessage": "segmentation fault", "errorType": "Runtime.Crash"},
            id="text-with-type",
        ),
        pytest.param(
            b"oops",
            None,
            {"errorMessage": "oops", "errorType": "Runtime.Unknown"},
            id="text-without-type",
        ),
        pytest.param(
            b"",
            None,
            {"errorMessage": "", "errorType": "Runtime.Unknown"},
            id="empty",
        ),
        pytest.param(
            b'["not", "an", "object"]',
            "Function.Listy",
            {"errorMessage": '["not", "an", "object"]', "errorType": "Function.Listy"},
            id="json-array",
        ),
        pytest.param(
            b"caf\xc3\xa9 \xff",
            None,
            {"errorMessage": "café \ufffd", "errorType": "Runtime.Unknown"},
            id="bad-utf8",
        ),
    ],
)
def test_an_error_body_that_is_not_a_json_object_is_wrapped(
    body: bytes, error_type: str | None, expected: dict[str, str]
) -> None:
    assert json.loads(error_document(body, error_type)) == expected


def test_a_json_object_error_body_is_kept_byte_for_byte() -> None:
    body = b'{ "errorMessage" : "x",  "custom": [1, 2] }'

    assert error_document(body, "Function.X") is body


def test_a_wrapped_error_reaches_the_invocation() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        await api.handle(
            request(
                "POST",
                "invocation/req-1/error",
                b"Traceback: it broke",
                {"Lambda-Runtime-Function-Error-Type": "Runtime.Broken"},
            )
        )

        result = await pending.result
        assert json.loads(result.body) == {
            "errorMessage": "Traceback: it broke",
            "errorType": "Runtime.Broken",
        }
        assert result.error_type == "Runtime.Broken"

    run(test)


# -- /init/error -----------------------------------------------------------------------


def test_an_init_error_before_ready_is_accepted() -> None:
    body = b'{"errorMessage": "Unable to import module \'app\'", "errorType": "x"}'

    async def test(api: RuntimeAPIHandler) -> None:
        response = await api.handle(
            request(
                "POST",
                "init/error",
                body,
                {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
            )
        )

        assert response.status == 202
        assert await api.init_error == RuntimeResult(
            False, body, "Runtime.ImportModuleError"
        )
        assert not api.ready.done()

    run(test)


def test_an_init_error_without_a_type_is_runtime_unknown() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        await api.handle(request("POST", "init/error", b"died"))

        result = await api.init_error
        assert result.error_type == "Runtime.Unknown"
        assert json.loads(result.body) == {
            "errorMessage": "died",
            "errorType": "Runtime.Unknown",
        }

    run(test)


def test_an_init_error_after_ready_is_refused() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        waiting = asyncio.create_task(api.handle(request("GET", "invocation/next")))
        await asyncio.sleep(0)

        response = await api.handle(request("POST", "init/error", b"{}"))

        assert response.status == 403
        assert document(response)["errorType"] == "InvalidStateTransition"
        assert not api.init_error.done()
        waiting.cancel()

    run(test)


def test_a_second_init_error_is_refused() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        await api.handle(request("POST", "init/error", b'{"errorMessage": "one"}'))

        response = await api.handle(
            request("POST", "init/error", b'{"errorMessage": "two"}')
        )

        assert response.status == 403
        assert (await api.init_error).body == b'{"errorMessage": "one"}'

    run(test)


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/", 404, id="root"),
        pytest.param("GET", "/2018-06-01/ping", 404, id="outside-prefix"),
        pytest.param("GET", "/2019-01-01/runtime/invocation/next", 404, id="version"),
        pytest.param("GET", PREFIX + "invocation/nxt", 405, id="typo-under-invocation"),
        pytest.param("GET", PREFIX + "status", 404, id="unknown-route"),
        pytest.param("POST", PREFIX + "invocation/next", 405, id="post-next"),
        pytest.param("GET", PREFIX + "invocation/req-1/response", 405, id="get-resp"),
        pytest.param("PUT", PREFIX + "init/error", 405, id="put-init-error"),
        pytest.param("DELETE", PREFIX + "invocation/req-1/error", 405, id="delete"),
        pytest.param("POST", PREFIX + "invocation/req-1/other", 405, id="bad-action"),
    ],
)
def test_routes_that_do_not_exist(method: str, path: str, status: int) -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        response = await api.handle(parse_head(f"{method} {path} HTTP/1.1".encode()))

        assert response.status == status
        assert path in document(response)["errorMessage"]  # type: ignore[operator]

    run(test)


def test_close_cancels_what_nobody_answered() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        api.close()

        assert api.ready.cancelled()
        assert api.init_error.cancelled()

    run(test)


def test_close_leaves_what_was_answered() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        await api.handle(request("POST", "init/error", b"{}"))

        api.close()

        assert not api.init_error.cancelled()
        assert api.ready.cancelled()

    run(test)


# -- streamed responses ----------------------------------------------------------------

STREAMING = {"Lambda-Runtime-Function-Response-Mode": "streaming"}


def streamed(
    route: str, chunked: bytes, headers: dict[str, str] | None = None
) -> Request:
    """A streamed POST whose chunked body (and trailers) are already on the wire."""
    built = request("POST", route, headers={**STREAMING, **(headers or {})})
    reader = asyncio.StreamReader()
    reader.feed_data(chunked)
    reader.feed_eof()
    built.stream = BodyStream(reader)
    return built


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(STREAMING, True, id="streaming"),
        pytest.param(
            {"Lambda-Runtime-Function-Response-Mode": "Streaming"}, True, id="case"
        ),
        pytest.param(
            {"Lambda-Runtime-Function-Response-Mode": "buffered"}, False, id="other"
        ),
        pytest.param({}, False, id="absent"),
    ],
)
def test_is_streamed_response(headers: dict[str, str], expected: bool) -> None:
    assert (
        is_streamed_response(request("POST", "invocation/r/response", headers=headers))
        is expected
    )


def test_a_streamed_response_is_passed_on_and_joined() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api, stream=ResponseStream(live=True))

        response = await api.handle(
            streamed(
                "invocation/req-1/response",
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                {"Content-Type": "text/plain"},
            )
        )

        assert response.status == 202
        assert await pending.result == RuntimeResult(True, b"abcde")
        assert pending.stream.is_streaming
        assert pending.stream.content_type == "text/plain"
        assert [chunk async for chunk in pending.stream.chunks()] == [b"abc", b"de"]
        assert pending.stream.error is None

    run(test)


def test_an_error_in_the_trailers_fails_a_streamed_response() -> None:
    error = b'{"errorMessage": "half way", "errorType": "Boom"}'
    trailers = (
        b"0\r\nLambda-Runtime-Function-Error-Type: Function.Boom\r\n"
        b"Lambda-Runtime-Function-Error-Body: " + base64.b64encode(error) + b"\r\n\r\n"
    )

    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        response = await api.handle(
            streamed("invocation/req-1/response", b"4\r\npart\r\n" + trailers)
        )

        assert response.status == 202
        assert await pending.result == RuntimeResult(False, error, "Function.Boom")
        assert pending.stream.error == StreamError("Function.Boom", error)

    run(test)


def test_a_buffered_response_closes_the_stream_with_its_content_type() -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        await api.handle(
            request(
                "POST",
                "invocation/req-1/response",
                b"\x00\x01",
                {"Content-Type": "application/octet-stream"},
            )
        )

        assert pending.stream.closed
        assert pending.stream.error is None
        assert pending.stream.content_type == "application/octet-stream"
        assert not pending.stream.is_streaming

    run(test)


@pytest.mark.parametrize(
    ("headers", "error_type"),
    [
        pytest.param(
            {"Lambda-Runtime-Function-Error-Type": "Function.Bad"},
            "Function.Bad",
            id="named",
        ),
        pytest.param({}, "Function.Unknown", id="unnamed"),
    ],
)
def test_an_error_closes_the_stream_with_it(
    headers: dict[str, str], error_type: str
) -> None:
    async def test(api: RuntimeAPIHandler) -> None:
        pending = await taken(api)

        await api.handle(request("POST", "invocation/req-1/error", b"{}", headers))

        assert pending.stream.error == StreamError(error_type, b"{}")

    run(test)
