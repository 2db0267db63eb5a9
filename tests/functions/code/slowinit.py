"""An init phase that never finishes in time."""

import time

print("slowinit: starting a very long init")
time.sleep(60)


def handler(event, context):
    return "unreachable"
