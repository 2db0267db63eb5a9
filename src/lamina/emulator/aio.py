"""The event loop the service runs on: uvloop where it is installed, else asyncio's.

The service's warm-invoke overhead is mostly event-loop and socket work; uvloop
does that work in C.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
