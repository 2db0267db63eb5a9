"""The event loop the service runs on: uvloop where it is installed, else asyncio's.

The service's warm-invoke overhead is mostly event-loop and socket work; uvloop
does that work in C.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def wait_first(waiters: set[asyncio.Future[Any]], deadline: float) -> None:
    """Until one of ``waiters`` is done, or ``deadline`` (``perf_counter``) passed.

    The event loop may fire a timer a little early (within its clock resolution);
    a timeout is only a timeout once the whole time has gone by.
    """
    while not any(waiter.done() for waiter in waiters):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return
        await asyncio.wait(
            waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
