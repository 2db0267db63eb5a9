"""An execution environment: one ``bootstrap`` process and the Runtime API it talks to.

Lifecycle, as Lambda runs it: ``start`` (init phase, bounded at 10 s) → ``invoke``
one event at a time (the invoke phase, bounded by the function's timeout) → ``stop``
(shutdown). A timeout or a crash ends the environment; the pool starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lamina.emulator import aio, http
from lamina.emulator.extensions import (
    FAILURE,
    SPINDOWN,
    TIMEOUT,
    Extensions,
    Marks,
)
from lamina.emulator.extensions_api import ExtensionFailure
from lamina.emulator.function import INIT_TIMEOUT_S, FunctionConfig
from lamina.emulator.invocation import (
    InitFailure,
    LaunchSpec,
    Outcome,
    PendingInvocation,
    State,
    platform_error,
)
from lamina.emulator.logs import (
    LogSink,
    PlatformLog,
    Report,
    timeout_line,
)
from lamina.emulator.process import ChildProcess, exit_reason, signal_groups
from lamina.emulator.runtime_api import (
    RuntimeAPIHandler,
    RuntimeResult,
    is_streamed_response,
)
from lamina.emulator.streams import StreamError
from lamina.emulator.telemetry import TelemetryPipe

if TYPE_CHECKING:
    from lamina.emulator.sandbox import Backend

logger = logging.getLogger(__name__)

EXIT_ERROR = "Runtime.ExitError"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
TIMED_OUT = "Sandbox.Timedout"
SHUTDOWN_GRACE_S = 0.5
MAX_EVENT_BYTES = 256 * 1024


class ExecutionEnvironment:
    """One ``bootstrap`` process, its Runtime API endpoint, and its log."""

    def __init__(
        self, config: FunctionConfig, spec: LaunchSpec, sink: LogSink, backend: Backend
    ) -> None:
        self.config = config
        self.spec = spec
        self.sink = sink
        self.state = State.NEW
        self.pid: int | None = None
        self.init_duration_ms: float | None = None
        self._process: ChildProcess | None = None
        self._server: asyncio.Server | None = None
        self._api: RuntimeAPIHandler | None = None
        self._exited: asyncio.Future[int] | None = None
        self._output_fd = -1
        self._partial = b""
        self._lines: list[str] = []
        self._active: dict[str, list[str]] = {}
        self.capacity = max(1, config.max_concurrency)
        self.in_flight = 0  # invokes taken on, from the moment they chose it
        self.idle_since = time.monotonic()
        self._started: asyncio.Future[InitFailure | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._max_memory_mb = 1
        self._is_out_of_memory = False
        # Memory, processes, files, and freezing between invokes.
        self._limits = backend.limits(config, self._process_groups, self._out_of_memory)
        self._launcher = backend.launcher(config, self._limits)
        self._reported_cold = False
        # Its extensions: their API shares the runtime's address.
        self._extensions = Extensions(config)
        # Records the runtime writes whole (logging, its errors), one frame each.
        self._telemetry: TelemetryPipe | None = None
        # In the format the function's runtime was told to log in.
        self.platform = PlatformLog(
            spec.env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON",
            config.log_settings.system_level,
        )

    def is_alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    # -- output ----------------------------------------------------------------

    def _emit(self, line: str) -> None:
        """A line of the environment's log: it belongs to every invocation in flight."""
        owner = next(iter(self._active)) if len(self._active) == 1 else None
        self.sink.write(self.config.name, line, owner)
        if self._active:
            for lines in self._active.values():
                lines.append(line)
        else:
            self._lines.append(line)

    def _emit_own(self, request_id: str, line: str) -> None:
        """A platform line about one invocation: only its log gets it."""
        self.sink.write(self.config.name, line, request_id)
        self._active[request_id].append(line)

    def _on_output(self) -> None:
        self._read_output(once=True)

    def _drain_output(self) -> None:
        """Read what the runtime wrote before it answered, so it lands before END."""
        self._read_output(once=False)
        if self._partial:
            # Written without a final newline: still this invoke's, so it is
            # logged now rather than in front of the next invoke's lines.
            self._emit(self._partial.rstrip(b"\r").decode("utf-8", "replace"))
            self._partial = b""
        # Records come after the output: the runtime flushes stdout before each.
        if self._telemetry is not None:
            self._telemetry.drain()

    def _read_output(self, *, once: bool) -> None:
        """Read the bootstrap's stdout and stderr; one log event per line."""
        while self._output_fd >= 0:
            try:
                data = os.read(self._output_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_output()
                return
            *lines, partial = (self._partial + data).split(b"\n")
            # Lambda cuts a log event at 256 KB; a longer line is several events.
            while len(partial) > MAX_EVENT_BYTES:
                lines.append(partial[:MAX_EVENT_BYTES])
                partial = partial[MAX_EVENT_BYTES:]
            self._partial = partial
            for raw in lines:
                line = raw.rstrip(b"\r")
                for start in range(0, max(len(line), 1), MAX_EVENT_BYTES):
                    piece = line[start : start + MAX_EVENT_BYTES]
                    self._emit(piece.decode("utf-8", "replace"))
            if once:
                return

    def _close_output(self) -> None:
        if self._output_fd >= 0:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._output_fd)
            if self._partial:
                self._emit(self._partial.decode("utf-8", "replace"))
                self._partial = b""
            os.close(self._output_fd)
            self._output_fd = -1
        if self._telemetry is not None:
            self._telemetry.close()

    # -- init phase ------------------------------------------------------------

    async def start(self, timeout_s: float = INIT_TIMEOUT_S) -> InitFailure | None:
        """Run the init phase: spawn and wait for the first ``/next``."""
        try:
            failure = await self._start(timeout_s)
        except BaseException:
            self._started.set_result(None)
            self.state = State.DEAD
            raise
        self._started.set_result(failure)
        return failure

    async def wait_started(self) -> InitFailure | None:
        """For an invoke that joined this environment while its init phase ran."""
        return await asyncio.shield(self._started)

    @property
    def has_room(self) -> bool:
        """Can take one more invoke, now or as soon as its init phase is over."""
        if self.state is State.DEAD or self.in_flight >= self.capacity:
            return False
        return self.state is State.NEW or self.is_alive()

    def reserve(self) -> None:
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle_since = time.monotonic()

    def idle_for(self, now: float) -> float:
        """Seconds since the environment last had an invoke in flight (0 if busy)."""
        if self.in_flight or self.state is not State.IDLE:
            return 0.0
        return now - self.idle_since

    async def _start(self, timeout_s: float) -> InitFailure | None:
        loop = asyncio.get_running_loop()
        self._api = RuntimeAPIHandler()
        self._api.extensions = self._extensions.api
        self._server = await http.serve(
            self._api.handle, "127.0.0.1", 0, streaming=is_streamed_response
        )
        port = self._server.sockets[0].getsockname()[1]
        env = dict(self.spec.env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}")

        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._output_fd = read_fd
        loop.add_reader(read_fd, self._on_output)
        self._telemetry = TelemetryPipe(self._emit, self.config.name)
        self._telemetry.listen()
        env.update(self._telemetry.environment())
        started = time.perf_counter()
        # Extension init comes first: the runtime starts once each registered.
        extension_failure = await self._extensions.start(
            env, write_fd, self.spec.cwd, started + timeout_s, self._launcher
        )
        if extension_failure is not None:
            os.close(write_fd)
            self._telemetry.close_write_end()
            self.init_duration_ms = (time.perf_counter() - started) * 1000
            self._log_extensions()
            await self.stop(reason=FAILURE)
            return _extension_init_failure(extension_failure)
        try:
            self._process = self._launcher.spawn(
                self.spec.argv,
                env,
                self.spec.cwd,
                write_fd,
                pass_fds=(self._telemetry.write_fd,),
            )
        except OSError as exc:
            os.close(write_fd)
            self._telemetry.close_write_end()
            await self.stop()
            return self._entrypoint_failure(exc)
        os.close(write_fd)
        self._telemetry.close_write_end()
        self.pid = self._process.pid
        self._limits.started(self._process, self._extensions.pids)
        self._exited = loop.create_task(self._process.wait())
        # The limit holds in the init phase too: a module may allocate at import.
        self._limits.watch()

        # Init is over when the runtime and every extension wait for an event.
        ready = self._extensions.ready(self._api.ready)
        init_error = self._api.init_error
        waiters: set[asyncio.Future[Any]] = {ready, init_error, self._exited}
        waiters.add(self._extensions.failed)
        await aio.wait_first(waiters, started + timeout_s)
        self.init_duration_ms = (time.perf_counter() - started) * 1000
        self._log_extensions()
        if ready.done() and not init_error.done():
            self.state = State.IDLE
            self._settle()
            return None

        failure = await self._init_failure(init_error, timeout_s)
        await self.stop(reason=FAILURE)
        return failure

    def _entrypoint_failure(self, exc: OSError) -> InitFailure:
        reason = {
            errno.ENOEXEC: "exec format error",
            errno.EACCES: "permission denied",
            errno.ENOENT: "no such file or directory",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        message = f"fork/exec {self.spec.argv[0]}: {reason}"
        if exc.errno == errno.ENOENT:
            message = f"Couldn't find valid bootstrap(s): [{self.spec.argv[0]} /opt/bootstrap]"
        self._emit(f"Error: {message}\n{INVALID_ENTRYPOINT}")
        return InitFailure(
            INVALID_ENTRYPOINT, platform_error(INVALID_ENTRYPOINT, message), "error"
        )

    async def _init_failure(
        self, init_error: asyncio.Future[RuntimeResult], timeout_s: float
    ) -> InitFailure:
        if init_error.done():
            result = init_error.result()
            # Let the runtime finish writing why, then end it.
            with contextlib.suppress(TimeoutError):
                assert self._exited is not None
                await asyncio.wait_for(asyncio.shield(self._exited), 0.5)
            self._drain_output()
            return InitFailure(
                result.error_type or "Runtime.Unknown", result.body, "error"
            )
        if self._extensions.failure is not None:
            self._drain_output()
            return _extension_init_failure(self._extensions.failure)
        assert self._exited is not None
        if self._exited.done():
            self._drain_output()
            message = _exit_message(self._exited.result())
            error_type = OUT_OF_MEMORY if self._was_out_of_memory() else EXIT_ERROR
            return InitFailure(error_type, platform_error(error_type, message), "error")
        return InitFailure(
            TIMED_OUT,
            platform_error(
                TIMED_OUT, f"Init phase did not complete in {timeout_s:.2f} seconds"
            ),
            "timeout",
        )

    def _log_extensions(self) -> None:
        for line in self._extensions.init_records(self.platform.is_json):
            self._emit(line)

    def log_init_report(self, failure: InitFailure, phase: str) -> None:
        for line in self.platform.init_report(
            self.init_duration_ms or 0.0, phase, failure.status, failure.error_type
        ):
            self._emit(line)

    def take_lines(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    # -- invoke phase ----------------------------------------------------------

    async def invoke(self, pending: PendingInvocation, timeout_s: float) -> Outcome:
        """Hand one event to the runtime and wait for its answer, a crash or the timeout."""
        assert self._api is not None and self._exited is not None
        assert self.pid is not None
        request_id = pending.request_id
        # Lines written before this invoke (the init phase's) open its log.
        self._active[request_id], self._lines = self._lines, []
        for line in self.platform.start(request_id):
            self._emit_own(request_id, line)
        started = time.perf_counter()
        self._limits.watch()
        marks = self._extensions.dispatch(self._api, pending)

        waiters: set[asyncio.Future[Any]] = {pending.result, self._exited}
        waiters.add(self._extensions.failed)
        await aio.wait_first(waiters, started + timeout_s)
        duration_ms = (time.perf_counter() - started) * 1000
        init_ms = None
        if not self._reported_cold:
            init_ms, self._reported_cold = self.init_duration_ms, True

        payload, is_error, status, error_type = await self._conclude(pending, timeout_s)
        if not pending.stream.closed:  # a crash or timeout part-way through a stream
            pending.stream.close(StreamError(error_type or TIMED_OUT, payload))

        report = Report(
            request_id=request_id,
            duration_ms=duration_ms,
            memory_mb=self.config.memory_mb,
            max_memory_mb=self._max_memory_mb,
            init_duration_ms=init_ms,
            status=status,
            error_type=error_type,
        )
        if self._extensions.is_behind(marks) and self.state is not State.DEAD:
            # The caller has its answer; the invoke (its REPORT, and the room for
            # the next one) ends when the extensions are done with it.
            work = self._finish_with_extensions(report, marks, started, timeout_s)
            self._extensions.track(work)
            log = list(self._active[request_id])
            return Outcome(request_id, payload, is_error, log, report, self.pid)
        log = self._end_invoke(report)
        if self.state is State.DEAD:
            await self.stop(grace_s=0, reason=FAILURE)
        else:
            self.state = State.IDLE
            self._settle()
        return Outcome(request_id, payload, is_error, log, report, self.pid)

    async def _finish_with_extensions(
        self, report: Report, marks: Marks, started: float, timeout_s: float
    ) -> None:
        """Wait, within the timeout, for the extensions; then END and REPORT."""
        request_id = report.request_id
        remaining = started + timeout_s - time.perf_counter()
        is_back = await self._extensions.wait_back(marks, remaining)
        is_stopped = self.state is State.DEAD  # the service stopped it meanwhile
        status, error_type, reason = report.status, report.error_type, TIMEOUT
        if not is_back and not is_stopped:
            self.state = State.DEAD
            if self._extensions.failure is not None:
                status, error_type = "error", self._extensions.failure.error_type
                reason = FAILURE
                self._emit_own(
                    request_id, self._extensions.failed_invoke(request_id)[1]
                )
            else:
                status = "timeout"
                self._emit_own(request_id, timeout_line(request_id, timeout_s))
        self._drain_output()
        report = replace(
            report,
            duration_ms=(time.perf_counter() - started) * 1000,
            status=status,
            error_type=error_type,
        )
        self._end_invoke(report)
        if self.state is State.DEAD and not is_stopped:
            await self.stop(grace_s=0, reason=reason)
        elif not is_stopped:
            self._settle()

    def _end_invoke(self, report: Report) -> list[str]:
        """END and REPORT, room for the next invoke; returns the invoke's log."""
        request_id = report.request_id
        for line in self.platform.end(request_id) + self.platform.report(report):
            self._emit_own(request_id, line)
        self.release()
        return self._active.pop(request_id)

    def _settle(self) -> None:
        """No invoke runs any more: stop watching, and freeze until the next one."""
        if not self._active and not self.in_flight and self.state is State.IDLE:
            self._limits.rest()

    def _process_groups(self) -> list[int]:
        groups = self._extensions.pids()
        if self._process is not None:
            # Even with its leader gone, what it started may be left in the group.
            groups.append(self._process.pid)
        return groups

    def _was_out_of_memory(self) -> bool:
        if not self._is_out_of_memory and self._limits.was_out_of_memory():
            # The kernel's OOM killer ended a process of the environment.
            self._is_out_of_memory = True
            self._max_memory_mb = self.config.memory_mb
        return self._is_out_of_memory

    def _out_of_memory(self, used_mb: int) -> None:
        """Over ``MemorySize``: the environment is killed, as Lambda's cgroup would."""
        logger.warning(
            "%s used %d MB of %d MB: killing its environment",
            self.config.name,
            used_mb,
            self.config.memory_mb,
        )
        self._is_out_of_memory = True
        self._max_memory_mb = self.config.memory_mb
        self._limits.kill()

    async def _conclude(
        self, pending: PendingInvocation, timeout_s: float
    ) -> tuple[bytes, bool, str | None, str | None]:
        """What the invoke came to: an answer, a crash, or the timeout."""
        assert self._api is not None and self._exited is not None
        request_id = pending.request_id
        status = error_type = None
        if self._is_out_of_memory or (
            self._exited.done() and self._was_out_of_memory()
        ):
            self._drain_output()
            message = f"RequestId: {request_id} Error: {_exit_message(-signal.SIGKILL)}"
            payload = platform_error(OUT_OF_MEMORY, message)
            is_error, status, error_type = True, "error", OUT_OF_MEMORY
            self._api.abandon(request_id)
            self._emit_own(request_id, f"{message}\n{OUT_OF_MEMORY}")
            self.state = State.DEAD
        elif pending.result.done():
            result = pending.result.result()
            payload, is_error = result.body, not result.ok
            if result.platform_error:
                status, error_type = "error", result.error_type
                self._emit_own(
                    request_id, f"RequestId: {request_id} Error: {result.message}"
                )
            self._max_memory_mb = max(self._max_memory_mb, self._limits.peak_mb())
            self._drain_output()
        elif self._exited.done():
            self._drain_output()
            message = _exit_message(self._exited.result())
            payload = platform_error(
                EXIT_ERROR, f"RequestId: {request_id} Error: {message}"
            )
            is_error, status, error_type = True, "error", EXIT_ERROR
            self._emit_own(
                request_id, f"RequestId: {request_id} Error: {message}\n{EXIT_ERROR}"
            )
            self.state = State.DEAD
        elif self._extensions.failure is not None:
            payload, line = self._extensions.failed_invoke(request_id)
            is_error, status = True, "error"
            error_type = self._extensions.failure.error_type
            self._api.abandon(request_id)
            self._emit_own(request_id, line)
            self.state = State.DEAD
        else:
            self._max_memory_mb = max(self._max_memory_mb, self._limits.peak_mb())
            message = f"Task timed out after {timeout_s:.2f} seconds"
            payload = platform_error(
                TIMED_OUT, f"RequestId: {request_id} Error: {message}"
            )
            is_error, status, error_type = True, "timeout", None
            self._api.abandon(request_id)
            await self.stop(grace_s=0, reason=TIMEOUT)
            self._emit_own(request_id, timeout_line(request_id, timeout_s))
        return payload, is_error, status, error_type

    # -- shutdown --------------------------------------------------------------

    async def stop(
        self, grace_s: float = SHUTDOWN_GRACE_S, reason: str = SPINDOWN
    ) -> None:
        """End the environment: SIGTERM, a grace period, then SIGKILL to its group.

        With extensions this is Lambda's shutdown phase, and ``reason`` what the
        SHUTDOWN event tells them: ``spindown``, ``timeout`` or ``failure``.
        """
        self.state = State.DEAD
        self._limits.freezer.thaw()
        grace_s = self._extensions.begin_shutdown(grace_s)
        process = self._process
        if process is not None and process.returncode is None:
            if grace_s > 0:
                # SIGTERM goes to the runtime process alone, as Lambda sends it;
                # whatever else runs in the environment ends with the SIGKILL.
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), grace_s)
            signal_groups([process.pid], signal.SIGKILL)
            await process.wait()
        elif process is not None:
            # The leader is gone; anything it left in its group goes with it.
            signal_groups([process.pid], signal.SIGKILL)
        await self._extensions.shutdown(reason)
        # Whatever else still runs in the environment ends with it.
        self._limits.kill()
        self._limits.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._api is not None:
            self._api.close()
        self._drain_output()
        self._close_output()


def _extension_init_failure(failure: ExtensionFailure) -> InitFailure:
    payload = platform_error(failure.error_type, failure.message)
    return InitFailure(failure.error_type, payload, "error")


def _exit_message(returncode: int) -> str:
    if returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: {exit_reason(returncode)}"
