"""A handler that registers a shutdown hook at import: it writes a marker file."""

import os
import time

from lamina.runtime import on_shutdown

_started = time.monotonic()


@on_shutdown
def _mark() -> None:
    with open(os.environ["SHUTDOWN_MARKER"], "w") as marker:
        marker.write(f"pid={os.getpid()}\n")


def handler(event, context):
    return {"pid": os.getpid()}
