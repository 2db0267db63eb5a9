"""Fails at import unless the file named by INIT_OK_FILE exists."""

import os

print("initcrash: importing")
if not os.path.exists(os.environ.get("INIT_OK_FILE", "/nonexistent")):
    raise RuntimeError("cannot start: configuration missing")


def handler(event, context):
    return {"init": "ok", "pid": os.getpid()}
