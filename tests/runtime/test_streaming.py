"""Streamed responses: the runtime client's chunked POST against a real Runtime API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.runtime.streaming import (
    PRELUDE_END,
    ResponseWriter,
    http_response,
    streaming,
)
from tests.runtime.conftest import InvokeThroughAPI


def pieces(event: Any, context: Any) -> Iterator[Any]:
    yield b"bytes,"
    yield "text,"
    yield {"json": 1}


def empty(event: Any, context: Any) -> Iterator[bytes]:
    yield from ()


def for_http(event: Any, context: Any) -> Iterator[Any]:
    yield http_response(201, {"Content-Type": "text/plain"}, ["a=1"])
    yield "created"


@streaming
def writes(event: Any, stream: ResponseWriter, context: Any) -> None:
    stream.http_response(200, {"X-Kind": "writer"})
    stream.write("written")


@pytest.mark.parametrize(
    ("handler", "body"),
    [
        pytest.param(pieces, b'bytes,text,{"json": 1}', id="generator"),
        pytest.param(empty, b"", id="empty-generator"),
        pytest.param(
            for_http,
            b'{"statusCode": 201, "headers": {"Content-Type": "text/plain"}, '
            b'"cookies": ["a=1"]}' + PRELUDE_END + b"created",
            id="http-prelude",
        ),
        pytest.param(
            writes,
            b'{"statusCode": 200, "headers": {"X-Kind": "writer"}, "cookies": []}'
            + PRELUDE_END
            + b"written",
            id="streaming-writer",
        ),
    ],
)
def test_a_stream_arrives_whole(
    invoke_through_api: InvokeThroughAPI, handler: Any, body: bytes
) -> None:
    result = invoke_through_api(handler)

    assert result.ok
    assert result.body == body


def fails_midway(event: Any, context: Any) -> Iterator[bytes]:
    yield b"first"
    raise ValueError("midway")


def fails_at_once(event: Any, context: Any) -> Iterator[bytes]:
    raise ValueError("at once")
    yield b"never"


@streaming
def writer_fails_at_once(event: Any, stream: ResponseWriter, context: Any) -> None:
    raise ValueError("at once")


def prelude_late(event: Any, context: Any) -> Iterator[Any]:
    yield b"body first"
    yield http_response(200)


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        # Once the stream has begun, the error travels in its trailers.
        pytest.param(fails_midway, "ValueError", "midway", id="after-a-chunk"),
        # Before the first chunk, the error is posted as any other.
        pytest.param(fails_at_once, "ValueError", "at once", id="before-a-chunk"),
        pytest.param(writer_fails_at_once, "ValueError", "at once", id="writer"),
        pytest.param(
            prelude_late,
            "TypeError",
            "http_response(...) must be the first item of a stream",
            id="late-prelude",
        ),
    ],
)
def test_a_failing_stream_is_a_function_error(
    invoke_through_api: InvokeThroughAPI,
    handler: Any,
    error_type: str,
    message: str,
) -> None:
    result = invoke_through_api(handler)

    assert not result.ok
    assert result.error_type == f"Function.{error_type}"
    document = json.loads(result.body)
    assert (document["errorType"], document["errorMessage"]) == (error_type, message)
