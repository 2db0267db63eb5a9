"""Handlers that meet Lambda's limits: memory, open files, freezing between invokes."""

import os
import resource
import threading
import time

_ticker = None


def allocate(event, context):
    # One touched megabyte at a time, so resident memory grows as it goes.
    blocks = [b"\x01" * (1 << 20) for _ in range(event["mb"])]
    return {"mb": len(blocks), "pid": os.getpid()}


def open_files(event, context):
    return list(resource.getrlimit(resource.RLIMIT_NOFILE))


def tick(path):
    while True:
        with open(path, "ab") as counter:
            counter.write(b".")
        time.sleep(0.05)


def ticker(event, context):
    """Starts a thread that adds a byte to a file every 50 ms, and lets it run."""
    global _ticker
    if _ticker is None:
        _ticker = threading.Thread(target=tick, args=(event["path"],), daemon=True)
        _ticker.start()
    time.sleep(event.get("wait", 0))
    return {"pid": os.getpid()}
