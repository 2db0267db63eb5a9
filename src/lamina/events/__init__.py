"""Sample events, shaped the way AWS services deliver them to a function.

Each event is a JSON file in ``data/``, named after the service that sends it.
Values are invented (account ``123456789012``, region ``us-east-1``); the shapes,
field names and encodings are those of the real services, so a handler that works
on a sample works on the real thing.

    >>> from lamina import events
    >>> events.load("sqs")["Records"][0]["eventSource"]
    'aws:sqs'
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from typing import Any

__all__ = ["UnknownEventError", "describe", "load", "names"]

# One entry per file in data/; the test suite checks that the two agree.
_DESCRIPTIONS: dict[str, str] = {
    "apigateway-http": (
        "Amazon API Gateway HTTP API: a POST with cookies and a JSON body "
        "(payload format 2.0)"
    ),
    "apigateway-rest": (
        "Amazon API Gateway REST API: a PUT through a proxy integration "
        "(payload format 1.0)"
    ),
    "dynamodb-stream": "Amazon DynamoDB Streams: an INSERT, a MODIFY and a REMOVE",
    "eventbridge": "Amazon EventBridge: an EC2 instance state-change notification",
    "function-url": "Lambda function URL: a POST signed with IAM (payload format 2.0)",
    "kinesis": "Amazon Kinesis Data Streams: a batch of two base64-encoded records",
    "s3": "Amazon S3: one object created by a PUT",
    "sns": "Amazon SNS: one notification with message attributes",
    "sqs": "Amazon SQS: a batch of two messages",
}


class UnknownEventError(LookupError):
    """No sample event has the requested name.

    ``name`` is what was asked for; ``available`` lists the names that exist.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.available = names()
        close = difflib.get_close_matches(name, self.available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(
            f"no sample event named {name!r}.{hint} "
            f"Available: {', '.join(self.available)}"
        )


def names() -> list[str]:
    """Return the names of the bundled sample events, sorted."""
    return sorted(_DESCRIPTIONS)


def describe(name: str) -> str:
    """Return a one-line description of the sample event ``name``."""
    try:
        return _DESCRIPTIONS[name]
    except KeyError:
        raise UnknownEventError(name) from None


def load(name: str) -> dict[str, Any]:
    """Return the sample event ``name``, freshly parsed, so callers may change it."""
    if name not in _DESCRIPTIONS:
        raise UnknownEventError(name)

    path = resources.files(__name__) / "data" / f"{name}.json"
    event = json.loads(path.read_text(encoding="utf-8"))

    # Every Lambda event source sends a JSON object; anything else is a packaging bug.
    if not isinstance(event, dict):
        raise TypeError(f"sample event {name!r} is not a JSON object")
    return event
