"""What Lambda accepts in a function's configuration, checked without I/O.

A check that fails raises ``Refused`` with the field at fault and a message in
Lambda's terms; the template reader adds the file and the resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# The python3.x runtimes Lambda has: python3.8 to python3.14.
PYTHON_RUNTIMES = tuple(f"python3.{minor}" for minor in range(8, 15))
FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
VARIABLE_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
ENVIRONMENT_LIMIT = 4096  # bytes of names and values, all variables together
# Set by Lambda itself; a function's configuration may not set them.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


class Refused(Exception):
    """A value Lambda would refuse: ``field`` is where, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_python_runtime(runtime: str) -> None:
    """Refuse a ``python3.N`` that Lambda never had, such as ``python3.99``."""
    if runtime not in PYTHON_RUNTIMES:
        raise Refused(
            "Runtime",
            f"{runtime} is not a Lambda runtime; the Python ones are "
            f"{PYTHON_RUNTIMES[0]} to {PYTHON_RUNTIMES[-1]}",
        )


def check_function_name(name: str) -> None:
    if not FUNCTION_NAME.fullmatch(name):
        raise Refused(
            "FunctionName",
            f"{name!r} is not a valid function name: 1 to 64 letters, digits, "
            "hyphens (-) or underscores (_)",
        )


def environment_variables(variables: dict[Any, Any]) -> dict[str, str]:
    """``Environment.Variables`` as the strings the function will see."""
    field = "Environment.Variables"
    result: dict[str, str] = {}
    for name, value in variables.items():
        if name in RESERVED_VARIABLES:
            raise Refused(field, f"{name} is reserved: Lambda sets it itself")
        if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
            raise Refused(
                field,
                f"{name!r} is not a valid variable name: a letter, then at least "
                "one more letter, digit or underscore",
            )
        result[name] = _variable_value(f"{field}.{name}", value)

    size = sum(len(k.encode()) + len(v.encode()) for k, v in result.items())
    if size > ENVIRONMENT_LIMIT:
        raise Refused(
            field,
            f"{size} bytes of names and values is over Lambda's limit of 4 KB "
            f"({ENVIRONMENT_LIMIT} bytes)",
        )
    return result


def _variable_value(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise Refused(field, "has no value; write '' for an empty one")
    if isinstance(value, dict | list):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        raise Refused(field, f"expected a string, number or boolean, not {kind}")
    return str(value)  # numbers, and dates YAML read from plain text


@dataclass(frozen=True)
class Bounded:
    """A whole-number property and the range Lambda accepts for it."""

    name: str
    default: int
    low: int
    high: int
    unit: str
    parent: str = ""  # the property it sits in, as in EphemeralStorage.Size


class BadValue(Exception):
    """A property's value that cannot be read; the caller names the property."""
