"""A handler whose runtime hosts an internal extension, and a shutdown hook.

At import, as Lambda wants it (registration closes when the init phase ends), it
registers an internal extension that appends each INVOKE's request id to the file
named by EXTENSION_RECORD, and a shutdown hook that writes SHUTDOWN_MARKER.
"""

import json
import os

from lamina.runtime import on_shutdown
from lamina.runtime.extensions import run_internal


def _record(event):
    with open(os.environ["EXTENSION_RECORD"], "a") as record:
        record.write(json.dumps(event) + "\n")


run_internal("recorder-thread", _record)


@on_shutdown
def _mark():
    with open(os.environ["SHUTDOWN_MARKER"], "w") as marker:
        marker.write(f"pid={os.getpid()}\n")


def handler(event, context):
    return {"pid": os.getpid(), "request_id": context.aws_request_id}
