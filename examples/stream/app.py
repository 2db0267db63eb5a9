"""Stream an HTTP response through a function URL, a line at a time.

The handler returns a generator: its first item sets the status and headers, each
line after it reaches the caller as soon as it is yielded. ``curl -N`` shows the
lines arrive a fifth of a second apart instead of all at once at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from lamina.runtime.streaming import http_response

LINES = 5


def handler(event: Any, context: Any) -> Iterator[Any]:
    path = event.get("rawPath", "/") if isinstance(event, dict) else "/"
    yield http_response(200, {"Content-Type": "text/plain; charset=utf-8"})
    for number in range(1, LINES + 1):
        yield f"line {number} of {LINES} for {path}\n"
        if number < LINES:
            time.sleep(0.2)
