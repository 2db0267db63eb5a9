"""AWS's event-stream framing, as ``InvokeWithResponseStream`` answers with it.

A message is a prelude (total length, headers length, CRC32 of those eight bytes),
headers (name, type 7 = string, value), the payload, and a CRC32 of all before it.
"""

from __future__ import annotations

import json
import struct
import zlib

_STRING = 7


def encode_headers(headers: dict[str, str]) -> bytes:
    return b"".join(
        bytes([len(name)])
        + name.encode()
        + bytes([_STRING])
        + struct.pack(">H", len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )


def encode_message(encoded: bytes, payload: bytes) -> bytes:
    """One message, its headers given already encoded (``encode_headers``)."""
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


# Every chunk of a stream carries the same headers: encoded once, not per chunk.
_PAYLOAD_CHUNK = encode_headers(
    {
        ":event-type": "PayloadChunk",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
)
_INVOKE_COMPLETE = encode_headers(
    {
        ":event-type": "InvokeComplete",
        ":content-type": "application/json",
        ":message-type": "event",
    }
)


def payload_chunk(data: bytes) -> bytes:
    return encode_message(_PAYLOAD_CHUNK, data)


def invoke_complete(
    error_code: str | None = None,
    error_details: str | None = None,
    log_result: str | None = None,
) -> bytes:
    document = {
        key: value
        for key, value in (
            ("ErrorCode", error_code),
            ("ErrorDetails", error_details),
            ("LogResult", log_result),
        )
        if value is not None
    }
    return encode_message(_INVOKE_COMPLETE, json.dumps(document).encode())
