"""The Extensions API (2020-01-01) of one execution environment.

Extensions register during the init phase, then long-poll ``/event/next`` for
INVOKE and SHUTDOWN events. An external extension is a process started from
``/opt/extensions`` and registers under its file's name; any other name is an
internal extension, a thread of the runtime process, which may only subscribe to
INVOKE. Error types and statuses are the ones Lambda's own implementation
answers with (all refusals are 403).

The state is plain counters and futures; ``ExtensionsAPI.handle`` puts it on the
wire, and the environment drives the lifecycle through the other methods.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lamina.emulator.function import ACCOUNT_ID
from lamina.emulator.http import Request, Response

logger = logging.getLogger(__name__)

PREFIX = "/2020-01-01/extension/"
INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"
NAME_HEADER = "lambda-extension-name"
IDENTIFIER_HEADER = "lambda-extension-identifier"
ERROR_TYPE_HEADER = "lambda-extension-function-error-type"
ACCEPT_FEATURE_HEADER = "lambda-extension-accept-feature"
MAX_EXTENSIONS = 10

# What an extension's failure is reported as, to the invoker and in REPORT lines.
INIT_ERROR = "Extension.InitError"
EXIT_ERROR = "Extension.ExitError"
CRASH = "Extension.Crash"
LAUNCH_ERROR = "Extension.LaunchError"

# An extension's state, by the names Lambda logs in EXTENSION lines.
LAUNCHED = "Launched"
REGISTERED = "Registered"
READY = "Ready"
INIT_ERROR_STATE = "InitError"
EXIT_ERROR_STATE = "ExitError"
EXITED = "Exited"

_JSON = ("Content-Type", "application/json")
_ACCEPTED = Response(202, b'{"status":"OK"}', [_JSON])


def _refuse(error_type: str, message: str, status: int = 403) -> Response:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return Response(status, body, [_JSON])


@dataclass(frozen=True)
class FunctionInfo:
    """What a registration is answered with."""

    name: str
    version: str
    handler: str


@dataclass(frozen=True)
class ExtensionFailure:
    """An extension that failed the environment: Lambda's error type, and why."""

    name: str
    error_type: str
    message: str


@dataclass(eq=False)
class Extension:
    """One extension: a launched process not yet registered, or a registered one."""

    name: str
    is_external: bool
    state: str = LAUNCHED
    identifier: str = ""
    events: tuple[str, ...] = ()
    # The error type the extension itself posted to init/error or exit/error.
    error_type: str | None = None
    is_running: bool = True  # its process (or, internal, its runtime) is alive
    # Events handed to it so far, and its calls to /event/next: the n-th event is
    # done with when it calls /event/next for the (n+1)-th time.
    handed: int = 0
    polls: int = 0
    _queue: deque[bytes] = field(default_factory=deque)
    _waiting: asyncio.Future[bytes] | None = None

    def is_subscribed(self, event: str) -> bool:
        return event in self.events

    def push(self, body: bytes) -> int:
        """Queue an event; the number it is known by for ``is_done_with``."""
        self.handed += 1
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(body)
            self._waiting = None
        else:
            self._queue.append(body)
        return self.handed

    def is_done_with(self, number: int) -> bool:
        return self.polls > number or not self.is_running

    async def next_event(self) -> bytes:
        if self._queue:
            return self._queue.popleft()
        self._waiting = asyncio.get_running_loop().create_future()
        return await self._waiting

    def close(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()


def invoke_event(
    request_id: str, deadline_ms: int, function_arn: str, trace_id: str
) -> bytes:
    return json.dumps(
        {
            "eventType": INVOKE,
            "deadlineMs": deadline_ms,
            "requestId": request_id,
            "invokedFunctionArn": function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
        }
    ).encode()


def shutdown_event(reason: str, deadline_ms: int) -> bytes:
    return json.dumps(
        {"eventType": SHUTDOWN, "shutdownReason": reason, "deadlineMs": deadline_ms}
    ).encode()


class ExtensionsAPI:
    """Registration, events and errors of one environment's extensions."""

    def __init__(self, function: FunctionInfo, external: Iterable[str] = ()) -> None:
        loop = asyncio.get_running_loop()
        self.function = function
        self.extensions: list[Extension] = [Extension(name, True) for name in external]
        self.is_registration_open = True
        self.is_shutting_down = False
        self.failure: ExtensionFailure | None = None
        self.failed: asyncio.Future[None] = loop.create_future()
        # Done once the runtime and every extension wait for their first event.
        self.init_complete: asyncio.Future[None] = loop.create_future()
        self._is_runtime_ready = False
        self._changed = asyncio.Event()

    # -- what the environment asks -------------------------------------------

    @property
    def registered(self) -> list[Extension]:
        return [ext for ext in self.extensions if ext.identifier]

    @property
    def has_external(self) -> bool:
        return any(ext.is_external for ext in self.registered)

    @property
    def has_internal(self) -> bool:
        return any(not ext.is_external for ext in self.registered)

    def are_external_registered(self) -> bool:
        return all(ext.state != LAUNCHED for ext in self.extensions if ext.is_external)

    def runtime_ready(self) -> None:
        """The runtime asked for its first event: registration is over."""
        self.is_registration_open = False
        self._is_runtime_ready = True
        self._notify()

    def fail(self, ext: Extension, error_type: str, message: str) -> None:
        """The first failure is the one the environment reports."""
        if self.failure is None and not self.is_shutting_down:
            logger.warning("extension %s: %s: %s", ext.name, error_type, message)
            self.failure = ExtensionFailure(ext.name, error_type, message)
            self.failed.set_result(None)
        self._notify()

    def process_exited(self, name: str, message: str) -> None:
        for ext in self.extensions:
            if ext.is_external and ext.name == name:
                ext.is_running = False
                if not self.is_shutting_down:
                    self.fail(ext, CRASH, message)
                ext.state = EXITED if ext.state in (READY, REGISTERED) else ext.state
        self._notify()

    def deliver(self, body: bytes, event: str) -> list[tuple[Extension, int]]:
        """Hand an event to every running extension subscribed to it."""
        marks = []
        for ext in self.registered:
            if ext.is_running and ext.is_subscribed(event):
                marks.append((ext, ext.push(body)))
        return marks

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait for ``condition``, a failure or the timeout; whether it came true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            remaining = deadline - loop.time()
            if self.failure is not None or remaining <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return condition()
        return True

    def close(self) -> None:
        """The environment is gone: nothing is waited for any more."""
        self.is_registration_open = False
        self.is_shutting_down = True
        for ext in self.extensions:
            ext.is_running = False
            ext.close()
        if not self.init_complete.done():
            self.init_complete.cancel()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        if self.init_complete.done() or self.failure is not None:
            return
        if (
            self._is_runtime_ready
            and self.are_external_registered()
            and all(ext.polls for ext in self.registered)
        ):
            self.init_complete.set_result(None)

    # -- the wire -------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        route = request.path[len(PREFIX) :]
        routes = {
            "register": "POST",
            "event/next": "GET",
            "init/error": "POST",
            "exit/error": "POST",
        }
        if route not in routes:
            return _refuse("InvalidRequest", f"No such route: {request.path}", 404)
        if request.method != routes[route]:
            message = f"{request.method} is not allowed on {request.path}"
            return _refuse("MethodNotAllowed", message, 405)
        if route == "register":
            return self._register(request)

        ext = self._identify(request)
        if isinstance(ext, Response):
            return ext
        if route == "event/next":
            return await self._next(ext)
        error_type = request.header(ERROR_TYPE_HEADER)
        if not error_type:
            return _refuse(
                "Extension.MissingHeader",
                "Lambda-Extension-Function-Error-Type not found",
            )
        if route == "init/error":
            return self._init_error(ext, error_type)
        return self._exit_error(ext, error_type)

    def _identify(self, request: Request) -> Extension | Response:
        raw = request.header(IDENTIFIER_HEADER)
        if not raw:
            return _refuse(
                "Extension.MissingExtensionIdentifier",
                "Missing Lambda-Extension-Identifier header",
            )
        try:
            uuid.UUID(raw)
        except ValueError:
            return _refuse(
                "Extension.InvalidExtensionIdentifier",
                "Invalid Lambda-Extension-Identifier",
            )
        for ext in self.extensions:
            if ext.identifier == raw:
                return ext
        return _refuse(
            "Extension.UnknownExtensionIdentifier", f"Unknown extension {raw}"
        )

    def _register(self, request: Request) -> Response:
        name = request.header(NAME_HEADER)
        if not name:
            return _refuse("Extension.InvalidExtensionName", "Empty extension name")
        events = _read_events(request.body)
        if isinstance(events, Response):
            return events
        ext = next(
            (e for e in self.extensions if e.is_external and e.name == name), None
        )
        refused = _check_events(events, ext is not None)
        if refused is not None:
            return refused

        if ext is not None:
            if ext.state != LAUNCHED:
                return _refuse(
                    "Extension.InvalidExtensionState",
                    f"State transition from {ext.state} to {REGISTERED} failed "
                    f"for extension {name}",
                )
        elif not self.is_registration_open:
            return _refuse(
                "Extension.RegistrationClosed", "Extension registration closed already"
            )
        elif any(e.name == name for e in self.extensions):
            return _refuse(
                "Extension.InvalidExtensionState",
                "Extension with this name already registered",
            )
        elif len(self.extensions) >= MAX_EXTENSIONS:
            return _refuse(
                "Extension.TooManyExtensions",
                f"Extension limit ({MAX_EXTENSIONS}) reached",
            )
        else:
            ext = Extension(name, False)
            self.extensions.append(ext)

        ext.state, ext.events = REGISTERED, tuple(events)
        ext.identifier = str(uuid.uuid4())
        logger.debug("extension %s registered for %s", name, ext.events)
        self._notify()
        answer: dict[str, str] = {
            "functionName": self.function.name,
            "functionVersion": self.function.version,
            "handler": self.function.handler,
        }
        if "accountId" in request.header(ACCEPT_FEATURE_HEADER):
            answer["accountId"] = ACCOUNT_ID
        headers = [_JSON, ("Lambda-Extension-Identifier", ext.identifier)]
        return Response(200, json.dumps(answer).encode(), headers)

    async def _next(self, ext: Extension) -> Response:
        if ext.state not in (REGISTERED, READY):
            return _refuse(
                "Extension.InvalidExtensionState",
                f"State transition from {ext.state} to {READY} failed "
                f"for extension {ext.identifier}",
            )
        ext.state = READY
        ext.polls += 1
        self._notify()
        body = await ext.next_event()
        headers = [_JSON, ("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))]
        return Response(200, body, headers)

    def _init_error(self, ext: Extension, error_type: str) -> Response:
        if self.init_complete.done():
            return _refuse(
                "Extension.InvalidExtensionState",
                f"State transition from {ext.state} to {INIT_ERROR_STATE} failed "
                f"for extension {ext.identifier}: init is over",
            )
        ext.state, ext.error_type = INIT_ERROR_STATE, error_type
        self.fail(ext, INIT_ERROR, f"Extension {ext.name} failed to init: {error_type}")
        return _ACCEPTED

    def _exit_error(self, ext: Extension, error_type: str) -> Response:
        ext.state, ext.error_type = EXIT_ERROR_STATE, error_type
        self.fail(ext, EXIT_ERROR, f"Extension {ext.name} is exiting: {error_type}")
        return _ACCEPTED


def _read_events(body: bytes) -> list[str] | Response:
    try:
        document = json.loads(body)
    except ValueError as exc:
        return _refuse("InvalidRequestFormat", str(exc))
    events = document.get("events") if isinstance(document, dict) else None
    if events is None:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return _refuse("InvalidRequestFormat", "events must be a list of strings")
    return events


def _check_events(events: list[str], is_external: bool) -> Response | None:
    for event in events:
        if event == SHUTDOWN and not is_external:
            return _refuse(
                "Extension.InvalidEventType",
                f"{event}: internal extensions cannot subscribe to {SHUTDOWN}",
            )
        if event not in (INVOKE, SHUTDOWN):
            return _refuse("Extension.InvalidEventType", f"{event}: no such event")
    return None
