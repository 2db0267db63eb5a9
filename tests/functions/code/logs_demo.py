"""Handlers that write to the function's log: print(), logging, and errors.

Only the standard library: they run under lamina's runtime client and AWS's.
"""

import logging
import time

logger = logging.getLogger("demo")


def ordered(event, context):
    """Output in order, within its own invocation, then a failure."""
    if event.get("quiet"):
        return "quiet"
    print("a")
    time.sleep(event.get("pause", 1))
    print("b")
    raise RuntimeError("ordered failed")


def two_lines(event, context):
    print("x\ny")
    return context.aws_request_id


def traceback_record(event, context):
    try:
        {}["missing"]
    except KeyError:
        logger.exception("lookup failed")
    return context.aws_request_id


def levels(event, context):
    logger.debug("debug message")
    logger.info("info message")
    logger.warning("warning message")
    logger.error("error message", extra={"order": 7})
    return context.aws_request_id


def overlapping(event, context):
    """Records from invocations in flight at once, each naming its own."""
    logger.warning("begin %s", context.aws_request_id)
    time.sleep(event.get("pause", 0.5))
    logger.warning("end %s", context.aws_request_id)
    return context.aws_request_id
