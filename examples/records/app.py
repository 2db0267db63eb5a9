"""Summarise a batch of S3 notifications or SQS messages.

The kind of batch is read from the first record's ``eventSource``. Any other
event is answered with an empty summary rather than an error, so that invoking
the function with the wrong sample shows what it expects.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote_plus

# Module state survives between invokes in the same execution environment, so this
# counts warm reuse: it restarts at 1 whenever Lambda starts a fresh environment.
_invokes = 0


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _invokes
    _invokes += 1

    source = _event_source(event)
    if source == "aws:s3":
        items = [_s3_object(record) for record in event["Records"]]
    elif source == "aws:sqs":
        items = [_sqs_message(record) for record in event["Records"]]
    else:
        print(f"request {context.aws_request_id}: not an S3 or SQS batch, skipped")
        return {"source": None, "processed": 0}

    print(
        f"request {context.aws_request_id}: {len(items)} record(s) from {source}, "
        f"invoke {_invokes} in this environment"
    )
    return {
        "source": source,
        "processed": len(items),
        "items": items,
        "tablePrefix": os.environ.get("TABLE_PREFIX"),
        "invokesInThisEnvironment": _invokes,
    }


def _event_source(event: Any) -> str | None:
    if not isinstance(event, dict):
        return None
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return None
    first = records[0]
    source = first.get("eventSource") if isinstance(first, dict) else None
    return source if source in ("aws:s3", "aws:sqs") else None


def _s3_object(record: dict[str, Any]) -> dict[str, Any]:
    bucket = record["s3"]["bucket"]["name"]
    # S3 sends object keys URL-encoded, with '+' for a space.
    key = unquote_plus(record["s3"]["object"]["key"])
    size = record["s3"]["object"].get("size", 0)
    print(f"s3://{bucket}/{key} ({size} bytes, {record['eventName']})")
    return {"bucket": bucket, "key": key, "size": size}


def _sqs_message(record: dict[str, Any]) -> dict[str, Any]:
    body = record["body"]
    try:
        decoded: Any = json.loads(body)
        kind = "json"
    except ValueError:
        decoded = body
        kind = "text"
    print(f"sqs message {record['messageId']}: {kind}, {len(body)} chars")
    return {"messageId": record["messageId"], "body": decoded}
