"""Handlers whose behaviour the tests check, under every runtime client and service."""

import datetime
import os
import time

_invokes = 0


def echo(event, context):
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": str(context.memory_limit_in_mb),
        "arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "log_group": context.log_group_name,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "pid": os.getpid(),
    }


def fail(event, context):
    print("naïve ✓ about to fail")
    raise ValueError("naïve ✓")


def marshal(event, context):
    return {"t": datetime.datetime.now(), "s": {1, 2}}


def counter(event, context):
    global _invokes
    _invokes += 1
    return {"invokes": _invokes, "pid": os.getpid()}


def nothing(event, context):
    return None


def sleep(event, context):
    time.sleep(event.get("seconds", 5))
    return {"slept": True, "pid": os.getpid()}


def crash(event, context):
    print("crashing now")
    os._exit(3)


def chatty(event, context):
    for index in range(100):
        print(f"line {index:03d} " + "x" * 92)
    print("the very last line")
    return {"printed": 101}


def touch(event, context):
    with open(event["path"], "w") as marker:
        marker.write(context.aws_request_id)
    return {"touched": event["path"]}


def ordered(event, context):
    print("a")
    time.sleep(0.3)
    print("b")
    raise RuntimeError("after a and b")


async def asynchronous(event, context):
    import asyncio

    await asyncio.sleep(0.01)
    return {"async": True, "event": event}


def details(event, context):
    client_context = context.client_context
    return {
        "custom": getattr(client_context, "custom", None),
        "identity_id": context.identity.cognito_identity_id,
        "tenant_id": getattr(context, "tenant_id", None),
        "log_stream": context.log_stream_name,
        "env": {
            name: os.environ.get(name)
            for name in (
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_EXECUTION_ENV",
                "AWS_LAMBDA_INITIALIZATION_TYPE",
                "AWS_REGION",
                "LAMBDA_TASK_ROOT",
                "TZ",
                "_HANDLER",
            )
        },
    }


def imports(event, context):
    import importlib

    found = {}
    for name in event["modules"]:
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, "__version__", "present")
        except ImportError:
            found[name] = None
    return found
