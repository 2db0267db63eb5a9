"""An external extension for the tests: it records every event it gets, one JSON line each.

A test copies this file into a layer's ``extensions/`` folder under a shebang that
names the test's interpreter; Lambda (lamina) starts it before the runtime. It
sees the function's variables: EXTENSION_RECORD is the file it appends to, and
EXTENSION_MODE picks a behaviour:

- ``record`` (the default): register for INVOKE and SHUTDOWN, record, exit on SHUTDOWN
- ``init-error``: register, then report an init error and exit
- ``exit-in-init``: exit before registering
- ``crash-on-invoke``: exit as soon as an INVOKE arrives
- ``slow``: take EXTENSION_SLOW_S seconds over each INVOKE
"""

import json
import os
import sys
import time

from lamina.runtime.extensions import ExtensionClient

MODE = os.environ.get("EXTENSION_MODE", "record")
NAME = os.path.basename(sys.argv[0])


def record(entry):
    with open(os.environ["EXTENSION_RECORD"], "a") as out:
        out.write(json.dumps({"extension": NAME, **entry}) + "\n")


if MODE == "exit-in-init":
    print(f"{NAME}: giving up before registering", flush=True)
    sys.exit(2)

client = ExtensionClient()
registration = client.register(events=["INVOKE", "SHUTDOWN"])
record({"registered": registration, "pid": os.getpid()})

if MODE == "init-error":
    client.init_error(
        "Extension.ConfigInvalid",
        {"errorMessage": "no configuration", "errorType": "ConfigInvalid"},
    )
    sys.exit(1)

print(f"{NAME}: ready", flush=True)
while True:
    event = client.next_event()
    record({"event": event})
    if event["eventType"] == "SHUTDOWN":
        print(f"{NAME}: shutting down ({event['shutdownReason']})", flush=True)
        break
    if MODE == "crash-on-invoke":
        os._exit(5)
    if MODE == "slow":
        time.sleep(float(os.environ.get("EXTENSION_SLOW_S", "1")))
