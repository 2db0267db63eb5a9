"""A function's configuration, as Lambda holds it, and the names it answers to."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lamina.emulator.errors import InvalidParameterValue, ResourceNotFound

ACCOUNT_ID = "123456789012"
LATEST = "$LATEST"

MEMORY_RANGE = (128, 10240)
RETRY_ATTEMPTS_RANGE = (0, 2)
EVENT_AGE_RANGE = (60, 21600)
TIMEOUT_RANGE = (1, 900)
INIT_TIMEOUT_S = 10.0

# The FunctionName forms the Invoke API accepts: name, name:qualifier,
# 123456789012:function:name, and the full ARN, each with an optional qualifier.
_NAME = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?"
    r"(?P<name>[a-zA-Z0-9_-]{1,140})(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)


def region() -> str:
    return (
        os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def function_arn(name: str) -> str:
    """The unqualified ARN of the function called ``name``, in this account and region."""
    return f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{name}"


@dataclass(frozen=True)
class Layer:
    name: str
    path: Path


@dataclass(frozen=True)
class LogSettings:
    """``LoggingConfig``: the log format, and the levels that filter the log."""

    format: str = "Text"  # "Text" or "JSON"
    application_level: str | None = None  # TRACE, DEBUG, INFO, WARN, ERROR, FATAL
    system_level: str | None = None  # DEBUG, INFO, WARN
    group: str | None = None

    @property
    def is_json(self) -> bool:
        return self.format == "JSON"

    def environment(self) -> dict[str, str]:
        """The variables Lambda sets for the runtime from this configuration."""
        if not self.is_json:
            return {}
        # With the JSON format Lambda always filters, at INFO unless told otherwise.
        return {
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": self.application_level or "INFO",
        }


@dataclass(frozen=True)
class Destination:
    """Where a record of an async invoke goes: a function of the template, or a file.

    ``kind`` is ``"function"`` (``target`` is its name) or ``"file"`` (``target`` is
    an absolute path; one JSON line is appended per record).
    """

    kind: str
    target: str

    @property
    def is_function(self) -> bool:
        return self.kind == "function"


@dataclass(frozen=True)
class EventInvokeConfig:
    """How Lambda treats a function's ``Event`` invokes (``EventInvokeConfig``)."""

    max_retry_attempts: int = 2
    max_event_age_s: int = 21600
    on_success: Destination | None = None
    on_failure: Destination | None = None
    # ``DeadLetterQueue``: gets the event alone, after the last failure.
    dead_letter: Destination | None = None


@dataclass(frozen=True)
class FunctionConfig:
    """One function: what a template declares, after defaults and validation."""

    name: str
    runtime: str
    code_dir: Path
    handler: str = ""
    memory_mb: int = 128
    timeout_s: float = 3.0
    environment: dict[str, str] = field(default_factory=dict)
    architecture: str = "x86_64"
    layers: tuple[Layer, ...] = ()
    reserved_concurrency: int | None = None
    ephemeral_storage_mb: int = 512
    # Invocations one execution environment takes at once (AWS_LAMBDA_MAX_CONCURRENCY).
    max_concurrency: int = 1
    # "BUFFERED" or "RESPONSE_STREAM" when the function has a function URL.
    url_invoke_mode: str | None = None
    # Bundled sample events to try the function with (Metadata.Lamina.SampleEvents).
    sample_events: tuple[str, ...] = ()
    log_settings: LogSettings = LogSettings()
    # The resource's name in the template, when FunctionName gives it another.
    logical_id: str = ""
    event_invoke: EventInvokeConfig = EventInvokeConfig()

    @functools.cached_property
    def arn(self) -> str:
        return function_arn(self.name)

    @property
    def is_python(self) -> bool:
        return self.runtime.startswith("python3")

    @property
    def python_version(self) -> str:
        """``python3.12`` → ``3.12``."""
        return self.runtime.removeprefix("python")


def function_named(
    functions: Mapping[str, FunctionConfig], name: str
) -> FunctionConfig | None:
    """The function called ``name``, else the one whose logical id is ``name``."""
    if name in functions:
        return functions[name]
    return next((c for c in functions.values() if c.logical_id == name), None)


@dataclass(frozen=True)
class FunctionRef:
    """What an Invoke request names: a function and the qualifier it asked for."""

    name: str
    qualifier: str


def parse_function_name(raw: str, qualifier: str | None = None) -> FunctionRef:
    """Read any FunctionName form the Invoke API accepts."""
    match = _NAME.match(raw)
    if match is None:
        raise InvalidParameterValue(
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?"
            "(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    named = match.group("qualifier")
    if named and qualifier and named != qualifier:
        raise InvalidParameterValue(
            "The derived qualifier from the function name does not match the "
            "specified qualifier."
        )
    return FunctionRef(match.group("name"), named or qualifier or LATEST)


def not_found(ref: FunctionRef) -> ResourceNotFound:
    arn = function_arn(ref.name)
    if ref.qualifier != LATEST:
        arn += f":{ref.qualifier}"
    return ResourceNotFound(f"Function not found: {arn}")
