"""Function URLs: HTTP requests as payload format 2.0 events, and answers back.

Everything here is free of I/O: an HTTP request goes in, an event comes out; a
function's payload (or the prelude of its stream) goes in, status, headers and body
come out.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from lamina.emulator.function import region
from lamina.emulator.http import Request

PREFIX = "/lambda-url/"
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_END = b"\0" * 8
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


BAD_GATEWAY = HttpAnswer(
    502,
    [("Content-Type", "application/json")],
    b'{"message":"Internal Server Error"}',
)


def split_target(target: str, function_name: str) -> tuple[str, str]:
    """The raw path after ``/lambda-url/{name}`` and the raw query string."""
    path, _, query = target.partition("?")
    rest = path[len(PREFIX) + len(function_name) :]
    return rest or "/", query


@functools.cache
def url_id(function_name: str) -> str:
    """A stable, URL-id-like host label for a function (32 lower-case characters)."""
    return (
        base64.b32encode(function_name.encode())
        .decode()
        .lower()
        .rstrip("=")[:32]
        .ljust(32, "a")
    )


def _is_text(content_type: str) -> bool:
    lowered = content_type.lower()
    return any(marker in lowered for marker in _TEXT_TYPES)


def request_event(
    request: Request,
    function_name: str,
    *,
    request_id: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event a function URL sends for ``request``."""
    now = time.time() if now is None else now
    raw_path, raw_query = split_target(request.target, function_name)

    # Repeated headers arrive joined with commas, as parsing left them; cookies are
    # taken from each Cookie header apart, since a comma is no cookie separator.
    headers = {
        name: value for name, value in request.headers.items() if name != "cookie"
    }
    cookies = [
        part.strip()
        for name, value in request.header_list
        if name == "cookie"
        for part in value.split(";")
        if part.strip()
    ]

    label = url_id(function_name)
    domain = f"{label}.lambda-url.{region()}.on.aws"
    headers.setdefault("host", domain)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers

    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params

    peer = request.peer[0] if request.peer else "127.0.0.1"
    event["requestContext"] = {
        "accountId": "anonymous",
        "apiId": label,
        "domainName": domain,
        "domainPrefix": label,
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": peer,
            "userAgent": request.header("user-agent"),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }

    body = request.body
    if body:
        if _is_text(request.header("content-type")):
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
                return event
            except UnicodeDecodeError:
                pass
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Framing is lamina's to decide: a function cannot set these for the connection.
_FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def _header_list(headers: Any, cookies: Any) -> list[tuple[str, str]] | None:
    """The function's headers as HTTP allows them; ``None`` when they cannot be sent."""
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        return None
    out = []
    for name, value in headers.items():
        text = _header_value(value)
        if not isinstance(name, str) or not _TOKEN.fullmatch(name) or text is None:
            return None
        if name.lower() not in _FRAMING:
            out.append((name, text))
    if cookies is not None:
        if not isinstance(cookies, list):
            return None
        # One Set-Cookie each: joining cookies with commas would break their attributes.
        for cookie in cookies:
            text = _header_value(cookie)
            if text is None:
                return None
            out.append(("Set-Cookie", text))
    if not any(name.lower() == "content-type" for name, _ in out):
        out.append(("Content-Type", "application/json"))
    return out


def _header_value(value: Any) -> str | None:
    """A scalar as a header value; ``None`` for what no header can carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        return None
    text = str(value)
    if any(c in text for c in "\r\n\0"):
        return None
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return text


def _status(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def response_from_payload(payload: bytes) -> HttpAnswer:
    """How a function URL answers a buffered function's payload."""
    try:
        result = json.loads(payload)
    except (ValueError, RecursionError):
        return BAD_GATEWAY
    if not (isinstance(result, dict) and "statusCode" in result):
        # Not a structured answer: Lambda infers 200 and a JSON body.
        return HttpAnswer(200, [("Content-Type", "application/json")], payload)

    status = _status(result.get("statusCode"))
    headers = _header_list(result.get("headers"), result.get("cookies"))
    if status is None or headers is None:
        return BAD_GATEWAY
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        data = json.dumps(body).encode()
    elif result.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error:
            return BAD_GATEWAY
    else:
        data = body.encode("utf-8")
    return HttpAnswer(status, headers, data)


def split_prelude(buffer: bytes) -> tuple[HttpAnswer, bytes] | None:
    """The HTTP prelude of a streamed response and the body bytes after it.

    ``None`` while the eight NUL bytes that end the prelude have not arrived yet.
    """
    end = buffer.find(PRELUDE_END)
    if end < 0:
        return None
    rest = buffer[end + len(PRELUDE_END) :]
    try:
        prelude = json.loads(buffer[:end] or b"{}")
    except (ValueError, RecursionError):
        return BAD_GATEWAY, b""
    if not isinstance(prelude, dict):
        return BAD_GATEWAY, b""
    status = _status(prelude.get("statusCode", 200))
    headers = _header_list(prelude.get("headers"), prelude.get("cookies"))
    if status is None or headers is None:
        return BAD_GATEWAY, b""
    return HttpAnswer(status, headers), rest
