"""Handlers at the edges of what a function may answer or write."""

import os
import sys

from lamina.runtime.streaming import http_response


def answer(event, context):
    # Function URL: return whatever the request body (JSON) says to return.
    import base64
    import json

    body = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body)
    return json.loads(body)


def nested(event, context):
    # Valid JSON, nested deeper than a parser's recursion allows.
    return b"[" * 100000 + b"]" * 100000


def unfinished_line(event, context):
    sys.stdout.write("no newline at the end")
    sys.stdout.flush()
    return "ok"


def long_line(event, context):
    os.write(1, b"x" * (600 * 1024) + b"\n")
    return "ok"


def big_stream(event, context):
    for _ in range(8):
        yield b"y" * (1024 * 1024)


def empty_stream(event, context):
    return
    yield


def late_prelude(event, context):
    yield "data first"
    yield http_response(200)


def leave_behind(event, context):
    # A process in a session of its own: the environment's process group does not
    # hold it.
    import subprocess

    child = subprocess.Popen(["sleep", "301"], start_new_session=True)
    return {"pid": child.pid, "handler_pid": os.getpid()}
