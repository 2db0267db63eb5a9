"""Handlers for Event invokes: each appends what it saw to the file in ASYNC_OUT."""

import json
import os
import time


def _append(entry):
    with open(os.environ["ASYNC_OUT"], "a") as out:
        out.write(json.dumps(entry) + "\n")


def record(event, context):
    """Sleeps ``pause`` seconds, then notes the event's id: one line per run."""
    time.sleep(event.get("pause", 0))
    _append(
        {
            "id": event.get("id"),
            "request_id": context.aws_request_id,
            "pid": os.getpid(),
        }
    )
    return {"id": event.get("id")}


def flaky(event, context):
    """Fails until its ``succeed_on``-th run for this request id, then succeeds."""
    _append({"id": event.get("id"), "request_id": context.aws_request_id})
    with open(os.environ["ASYNC_OUT"]) as out:
        runs = sum(context.aws_request_id in line for line in out)
    if runs < event.get("succeed_on", 1):
        raise RuntimeError(f"run {runs} fails")
    return {"runs": runs}


def collect(event, context):
    """A destination: notes the record it was sent."""
    _append({"record": event, "request_id": context.aws_request_id})
