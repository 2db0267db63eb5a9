"""An invoke as the Invoke API takes it: its request, the checks on its payload and
client context, and the ids Lambda gives it."""

from __future__ import annotations

import base64
import json
import random
import time
from dataclasses import dataclass

from lamina.emulator.errors import InvalidRequestContent, RequestTooLarge
from lamina.emulator.function import FunctionRef

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
CLIENT_CONTEXT_LIMIT = 3583


@dataclass(frozen=True)
class InvokeRequest:
    ref: FunctionRef
    payload: bytes = b""
    client_context: str | None = None  # base64 JSON, as the Invoke API takes it
    tenant_id: str | None = None
    # The id the caller was given (x-amzn-RequestId), when it was given one first.
    request_id: str | None = None


def trace_id() -> str:
    # Trace and request ids need to be unique, not secret: no system call each.
    root = f"1-{int(time.time()):08x}-{random.getrandbits(96):024x}"
    return f"Root={root};Parent={random.getrandbits(64):016x};Sampled=0"


def new_request_id() -> str:
    """A random (version 4) UUID, as Lambda's request ids are."""
    bits = random.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)
    bits = bits & ~(0xC000 << 48) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def validate_payload(payload: bytes, limit: int, operation: str) -> bytes:
    """The event bytes to deliver, or the Invoke API's error for them."""
    if len(payload) > limit:
        raise RequestTooLarge(
            f"Request must be smaller than {limit} bytes for the {operation} operation"
        )
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestContent(
            f"Could not parse request body into json: Could not parse payload into json: "
            f"{exc}"
        ) from exc
    return payload


def _not_json(name: str) -> None:
    # NaN and Infinity are JavaScript, not JSON: Lambda refuses them in a payload.
    raise ValueError(f"Non-standard token '{name}'")


def decode_client_context(raw: str | None) -> str | None:
    if not raw:
        return None
    if len(raw) > CLIENT_CONTEXT_LIMIT:
        raise InvalidRequestContent(
            f"Client context must be at most {CLIENT_CONTEXT_LIMIT} bytes"
        )
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
        if not isinstance(json.loads(text), dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise InvalidRequestContent(
            "Client context must be a valid Base64-encoded JSON object."
        ) from exc
    return text
