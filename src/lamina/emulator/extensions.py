"""The extensions of an execution environment: their processes and their lifecycle.

What Lambda does, and lamina with it:

- init: every file in ``/opt/extensions`` (here: each layer's ``extensions/``
  folder, a later layer's file over an earlier one's) starts before the runtime,
  with the function's variables and its log. The runtime starts once every one of
  them registered; init is over when the runtime and every extension wait for
  their first event.
- invoke: each extension subscribed to INVOKE gets the event along with the
  runtime; the invoke ends (REPORT, and room for the next one) when each is back
  at ``/event/next``, bounded by the function's timeout.
- shutdown: 0 ms without extensions (lamina keeps its short grace period there),
  500 ms with internal extensions only, 2,000 ms with external ones. The runtime
  gets SIGTERM and 300 ms of it (500 ms when it also hosts an internal extension),
  then the external extensions subscribed to SHUTDOWN get the event and the rest
  of the time; whatever still runs then is killed.
"""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.emulator.extensions_api import (
    INVOKE,
    LAUNCH_ERROR,
    READY,
    SHUTDOWN,
    Extension,
    ExtensionFailure,
    ExtensionsAPI,
    FunctionInfo,
    invoke_event,
    shutdown_event,
)
from lamina.emulator.function import LATEST, FunctionConfig, Layer
from lamina.emulator.process import ChildProcess, exit_reason, signal_groups

if TYPE_CHECKING:
    from lamina.emulator.invocation import PendingInvocation
    from lamina.emulator.runtime_api import RuntimeAPIHandler
    from lamina.emulator.sandbox import Launcher

SPINDOWN = "spindown"
TIMEOUT = "timeout"
FAILURE = "failure"
EXTERNAL_SHUTDOWN_S = 2.0
INTERNAL_SHUTDOWN_S = 0.5
RUNTIME_SHUTDOWN_S = 0.3  # the runtime's share when external extensions wait too
# The runtime's log pipe is the runtime's alone.
_RUNTIME_ONLY = ("_LAMBDA_TELEMETRY_LOG_FD",)

Marks = list[tuple[Extension, int]]


def find_extensions(layers: Iterable[Layer]) -> dict[str, Path]:
    """The external extensions of a function, by name, in the order Lambda starts them."""
    found: dict[str, Path] = {}
    for layer in layers:
        folder = layer.path / "extensions"
        if folder.is_dir():
            # Layers unpack into /opt in order: a later file takes an earlier's place.
            found.update({entry.name: entry for entry in folder.iterdir()})
    return {name: found[name] for name in sorted(found) if found[name].is_file()}


def exit_message(returncode: int) -> str:
    return "exit code 0" if returncode == 0 else exit_reason(returncode)


class Extensions:
    """One environment's extensions: the API they talk to, and the processes."""

    def __init__(self, config: FunctionConfig) -> None:
        self.paths = find_extensions(config.layers)
        self.api = ExtensionsAPI(
            FunctionInfo(config.name, LATEST, config.handler), self.paths
        )
        self._processes: dict[str, ChildProcess] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutdown_started: float | None = None
        self._shut_down: asyncio.Future[None] | None = None

    @property
    def failure(self) -> ExtensionFailure | None:
        return self.api.failure

    @property
    def failed(self) -> asyncio.Future[None]:
        return self.api.failed

    def pids(self) -> list[int]:
        """The external extensions still running; each leads its own process group."""
        return [p.pid for p in self._processes.values() if p.returncode is None]

    # -- init phase ------------------------------------------------------------

    async def start(
        self,
        env: dict[str, str],
        output_fd: int,
        cwd: str,
        deadline: float,
        launcher: Launcher,
    ) -> ExtensionFailure | None:
        """Start the external extensions; wait until each registered or one failed.

        ``deadline`` is on ``time.perf_counter``'s clock.
        """
        if not self.paths:
            return None
        env = {name: value for name, value in env.items() if name not in _RUNTIME_ONLY}
        for name, path in self.paths.items():
            try:
                process = launcher.spawn([str(path)], env, cwd, output_fd)
            except OSError as exc:
                reason = {
                    errno.ENOEXEC: "exec format error",
                    errno.EACCES: "permission denied",
                }.get(exc.errno or 0, exc.strerror or str(exc))
                ext = next(e for e in self.api.extensions if e.name == name)
                self.api.fail(ext, LAUNCH_ERROR, f"fork/exec {path}: {reason}")
                return self.api.failure
            self._processes[name] = process
            self.track(self._watch(name, process))
        await self.api.wait_until(
            self.api.are_external_registered, deadline - time.perf_counter()
        )
        return self.api.failure

    async def _watch(self, name: str, process: ChildProcess) -> None:
        code = await process.wait()
        self.api.process_exited(name, f"Extension {name} exited: {exit_message(code)}")

    def _notice_exits(self) -> None:
        """Extensions that ended while idle, known before an event goes out, not
        after: the loop may not yet have run the watch of one that just died."""
        for name, process in self._processes.items():
            code = process.poll()
            if code is not None:
                message = f"Extension {name} exited: {exit_message(code)}"
                self.api.process_exited(name, message)

    def ready(self, runtime_ready: asyncio.Future[None]) -> asyncio.Future[None]:
        """Done when the runtime is ready and every extension waits for an event."""

        def closed(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                self.api.runtime_ready()

        runtime_ready.add_done_callback(closed)
        return self.api.init_complete

    def init_records(self, is_json: bool) -> list[str]:
        """The EXTENSION lines Lambda logs at the end of the init phase."""
        return [_extension_record(ext, is_json) for ext in self.api.extensions]

    # -- invoke phase ----------------------------------------------------------

    def dispatch(self, runtime: RuntimeAPIHandler, pending: PendingInvocation) -> Marks:
        """The event to the runtime and to the extensions subscribed to INVOKE.

        After an extension failed, the runtime gets nothing: the invoke fails with
        the extension's error.
        """
        self._notice_exits()
        if self.api.failure is not None:
            return []
        runtime.dispatch(pending)
        if not self.api.registered:
            return []
        body = invoke_event(
            pending.request_id,
            pending.deadline_ms,
            pending.function_arn,
            pending.trace_id,
        )
        return self.api.deliver(body, INVOKE)

    def is_behind(self, marks: Marks) -> bool:
        """Not yet done with an invoke: an extension still busy with it, or failed."""
        if self.api.failure is not None:
            return True
        return any(not ext.is_done_with(number) for ext, number in marks)

    async def wait_back(self, marks: Marks, timeout_s: float) -> bool:
        """Wait for the extensions to be done with an invoke: False on failure or timeout."""
        return await self.api.wait_until(lambda: not self.is_behind(marks), timeout_s)

    def failed_invoke(self, request_id: str) -> tuple[bytes, str]:
        """The invoke's error payload and log line after an extension failed."""
        assert self.api.failure is not None
        error_type = self.api.failure.error_type
        message = f"RequestId: {request_id} Error: {self.api.failure.message}"
        payload = json.dumps({"errorType": error_type, "errorMessage": message})
        return payload.encode(), f"{message}\n{error_type}"

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; shutdown waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- shutdown --------------------------------------------------------------

    def begin_shutdown(self, grace_s: float) -> float:
        """The shutdown phase starts: the runtime's grace period within it."""
        self.api.is_shutting_down = True
        if self._shutdown_started is None:
            self._shutdown_started = time.monotonic()
        if grace_s <= 0 or not self.api.registered:
            return grace_s
        if not self.api.has_external:
            return INTERNAL_SHUTDOWN_S
        return INTERNAL_SHUTDOWN_S if self.api.has_internal else RUNTIME_SHUTDOWN_S

    async def shutdown(self, reason: str) -> None:
        """SHUTDOWN to the external extensions that asked for it, then SIGKILL."""
        if self._shut_down is not None:
            await asyncio.shield(self._shut_down)
            return
        self._shut_down = asyncio.get_running_loop().create_future()
        try:
            await self._shutdown(reason)
        finally:
            self._shut_down.set_result(None)

    async def _shutdown(self, reason: str) -> None:
        started = self._shutdown_started or time.monotonic()
        budget = EXTERNAL_SHUTDOWN_S if self.api.has_external else 0.0
        deadline = started + budget
        listening = [
            ext
            for ext in self.api.registered
            if ext.is_external
            and ext.is_running
            and ext.state == READY
            and ext.is_subscribed(SHUTDOWN)
        ]
        names = {ext.name for ext in listening}
        # Extensions that did not ask for SHUTDOWN are not waited for.
        for name, process in self._processes.items():
            if name not in names:
                signal_groups([process.pid], signal.SIGKILL)
        deadline_ms = int((time.time() + deadline - time.monotonic()) * 1000)
        body = shutdown_event(reason, deadline_ms)
        for ext in listening:
            ext.push(body)

        exits = [
            asyncio.ensure_future(self._processes[ext.name].wait()) for ext in listening
        ]
        if exits:
            await asyncio.wait(exits, timeout=max(0.0, deadline - time.monotonic()))
        # What is left, and whatever the extensions started.
        for process in self._processes.values():
            signal_groups([process.pid], signal.SIGKILL)
        await asyncio.gather(*exits, *(p.wait() for p in self._processes.values()))
        self.api.close()
        current = asyncio.current_task()
        await asyncio.gather(
            *(task for task in self._tasks if task is not current),
            return_exceptions=True,
        )


def _extension_record(ext: Extension, is_json: bool) -> str:
    if is_json:
        from datetime import UTC, datetime

        record: dict[str, object] = {
            "name": ext.name,
            "state": ext.state,
            "events": list(ext.events),
        }
        if ext.error_type:
            record["errorType"] = ext.error_type
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return json.dumps(
            {"time": stamp, "type": "platform.extension", "record": record}
        )
    line = f"EXTENSION\tName: {ext.name}\tState: {ext.state}\tEvents: [{','.join(ext.events)}]"
    if ext.error_type:
        line += f"\tError Type: {ext.error_type}"
    return line
