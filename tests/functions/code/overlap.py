"""Handlers that read back their own invocation after others have run meanwhile."""

import asyncio
import os
import random
import threading
import time

from lamina.runtime.context import current_request_id, current_trace_id


def _report(context, started, seen_before):
    return {
        "request_id": context.aws_request_id,
        "seen_request_id": current_request_id(),
        "trace_before": seen_before,
        "trace_after": current_trace_id(),
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
        "remaining": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "started": started,
        "ended": time.time(),
    }


def sync(event, context):
    started, trace = time.time(), current_trace_id()
    time.sleep(random.uniform(0.01, 0.05))
    return _report(context, started, trace)


async def asynchronous(event, context):
    started, trace = time.time(), current_trace_id()
    await asyncio.sleep(random.uniform(0.01, 0.05))
    return _report(context, started, trace)
