"""Handlers that stream their responses."""

import base64
import json
import time

from lamina.runtime.streaming import http_response, streaming


def _pause(event):
    # Invoked directly the event holds the pause; through a function URL, its body.
    if "body" in event:
        body = event["body"] or "{}"
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body)
        return json.loads(body).get("pause", 1)
    return event.get("pause", 1)


def paced(event, context):
    yield http_response(
        201,
        {"Content-Type": "text/plain", "X-Kind": "paced"},
        ["a=1; Path=/", "b=2; HttpOnly"],
    )
    for index, word in enumerate(("one ", "two ", "three")):
        if index:
            time.sleep(_pause(event))
        yield word


def plain(event, context):
    yield b"raw-"
    yield "bytes"


def broken(event, context):
    yield http_response(200, {"Content-Type": "text/plain"})
    yield "partial "
    raise ValueError("broke mid-stream")


def early(event, context):
    raise ValueError("broke before the stream")
    yield "never"


async def aio(event, context):
    import asyncio

    for word in ("async ", "stream"):
        await asyncio.sleep(0)
        yield word


@streaming
def writer(event, stream, context):
    stream.http_response(200, {"Content-Type": "text/plain"})
    stream.write("written ")
    stream.write(b"bytes")


def buffered(event, context):
    return {"statusCode": 200, "headers": {"X-Mode": "buffered"}, "body": "whole"}
