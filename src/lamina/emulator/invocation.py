"""The values an execution environment works with: what to start, what to run, and
what came of it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from lamina.emulator.streams import ResponseStream

if TYPE_CHECKING:
    from lamina.emulator.logs import Report
    from lamina.emulator.runtime_api import RuntimeResult


class State(Enum):
    NEW = "new"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@dataclass(frozen=True)
class LaunchSpec:
    """How to start the ``bootstrap``: argv, environment variables, working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: str


@dataclass
class PendingInvocation:
    """An event on its way to the runtime, and the future its answer lands in."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    stream: ResponseStream = field(default_factory=ResponseStream)
    result: asyncio.Future[RuntimeResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class InitFailure:
    error_type: str
    payload: bytes
    status: str  # "error" or "timeout"


@dataclass(frozen=True)
class Outcome:
    """What an invoke came to, for the caller and for the log."""

    request_id: str
    payload: bytes
    is_error: bool
    log: list[str]
    report: Report
    pid: int | None = None


def platform_error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()
