"""The local Lambda service: functions, their execution environments, invokes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lamina.emulator import pythonrt
from lamina.emulator.environment import ExecutionEnvironment
from lamina.emulator.errors import (
    ServiceError,
    TooManyRequests,
)
from lamina.emulator.event_queue import (
    DATABASE_NAME,
    EventQueue,
    EventWorker,
    QueuedEvent,
)
from lamina.emulator.function import (
    LATEST,
    FunctionConfig,
    FunctionRef,
    not_found,
    region,
)
from lamina.emulator.invocation import (
    InitFailure,
    LaunchSpec,
    Outcome,
    PendingInvocation,
    State,
)
from lamina.emulator.invoke_request import (
    ASYNC_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    InvokeRequest,
    decode_client_context,
    new_request_id,
    trace_id,
    validate_payload,
)
from lamina.emulator.logs import (
    LogSink,
    Report,
    StreamSink,
)
from lamina.emulator.process import ChildProcess, become_subreaper, end_orphans
from lamina.emulator.runtime_api import MAX_RESPONSE_BYTES as MAX_RESPONSE
from lamina.emulator.runtime_api import response_too_large_message, too_large
from lamina.emulator.sandbox import backend
from lamina.emulator.streams import ResponseStream, StreamError

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY_LIMIT = 1000
DEFAULT_IDLE_TIMEOUT_S = 600.0
LAMBDA_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"


class FunctionPool:
    """The execution environments of one function: reuse warm ones, start cold ones."""

    def __init__(self, service: LambdaService, config: FunctionConfig) -> None:
        self.service = service
        self.config = config
        # Started environments of this function, the most recently used last.
        self.warm: list[ExecutionEnvironment] = []
        self.busy = 0
        self.spec: LaunchSpec | None = None

    def check_capacity(self) -> None:
        if self.service.closing:
            raise ServiceError("The Lambda service is stopping; no new invokes start.")
        reserved = self.config.reserved_concurrency
        if reserved is not None and self.busy >= reserved:
            raise TooManyRequests(
                "Rate Exceeded.", "ReservedFunctionConcurrentInvocationLimitExceeded"
            )
        # The account's limit counts the invokes of every function together.
        in_flight = sum(pool.busy for pool in self.service.pools.values())
        if in_flight >= self.service.concurrency_limit:
            raise TooManyRequests("Rate Exceeded.", "ConcurrentInvocationLimitExceeded")

    def take_warm(self) -> ExecutionEnvironment | None:
        """An environment with room for one more invoke, the most recent first.

        One still in its init phase counts: with several invokes per environment,
        a burst waits for the environments already starting instead of starting
        one each.
        """
        for env in reversed(self.warm):
            if env.has_room:
                env.reserve()
                return env
        self.warm = [env for env in self.warm if env.state is not State.DEAD]
        return None

    async def _cold_start(
        self, stream: ResponseStream, request_id: str
    ) -> tuple[ExecutionEnvironment, list[str], float | None] | Outcome:
        """Start an environment for this invoke; retry a failed init once."""
        env = self.new_environment()
        failure = await env.start()
        if failure is None:
            return env, [], None
        if self.service.closing:  # stopped under it: no second try
            env.release()
            stream.close(StreamError(failure.error_type, failure.payload))
            return self._failed_init(request_id, env, failure, [])
        # Lambda retries a failed init once, inside the invoke and under the
        # function's timeout (the "suppressed init").
        env.log_init_report(failure, "init")
        init_lines = env.take_lines()
        env.release()
        env = self.new_environment()
        retried = time.perf_counter()
        failure = await env.start(timeout_s=self.config.timeout_s)
        if failure is None:
            return env, init_lines, retried
        env.log_init_report(failure, "invoke")
        env.release()
        stream.close(StreamError(failure.error_type, failure.payload))
        return self._failed_init(request_id, env, failure, init_lines)

    async def invoke(
        self,
        request: InvokeRequest,
        payload: bytes,
        client_context: str | None,
        stream: ResponseStream | None = None,
    ) -> Outcome:
        """Run an invoke whose payload and client context (decoded) were checked."""
        # Checked again, not only at accept: other invokes may have started between
        # a synchronous invoke's accept and its run, and Event invokes come here alone.
        self.check_capacity()
        self.busy += 1
        try:
            return await self._invoke(
                request, payload, client_context, stream or ResponseStream()
            )
        finally:
            self.busy -= 1

    async def _invoke(
        self,
        request: InvokeRequest,
        payload: bytes,
        client_context: str | None,
        stream: ResponseStream,
    ) -> Outcome:
        config = self.config
        request_id = request.request_id or new_request_id()
        env = self.take_warm()
        if env is not None and await env.wait_started() is not None:
            env.release()  # it failed to start: start one of our own
            env = None
        init_lines: list[str] = []
        suppressed_init_started: float | None = None
        if env is None:
            started = await self._cold_start(stream, request_id)
            if isinstance(started, Outcome):
                return started
            env, init_lines, suppressed_init_started = started

        pending = PendingInvocation(
            request_id=request_id,
            payload=payload,
            deadline_ms=int(time.time() * 1000 + config.timeout_s * 1000),
            function_arn=self.invoked_arn(request.ref),
            trace_id=trace_id(),
            client_context=client_context,
            tenant_id=request.tenant_id,
            stream=stream,
        )
        spent = 0.0
        if suppressed_init_started is not None:
            spent = time.perf_counter() - suppressed_init_started
        outcome = await env.invoke(pending, max(config.timeout_s - spent, 0.001))
        # The most recently used last, so the next invoke takes the warmest; the
        # environments that ended (timeouts, crashes, failed inits) are let go.
        if (self.warm and self.warm[-1] is not env) or env.state is State.DEAD:
            alive = env.state is not State.DEAD
            self.warm = [
                each
                for each in self.warm
                if each is not env and each.state is not State.DEAD
            ] + ([env] if alive else [])
            self.service.forget_ended()
        if init_lines:
            outcome = Outcome(
                outcome.request_id,
                outcome.payload,
                outcome.is_error,
                init_lines + outcome.log,
                outcome.report,
                outcome.pid,
            )
        return outcome

    def _failed_init(
        self,
        request_id: str,
        env: ExecutionEnvironment,
        failure: InitFailure,
        earlier: list[str],
    ) -> Outcome:
        sink = self.service.sink
        report = Report(
            request_id=request_id,
            duration_ms=env.init_duration_ms or 0.0,
            memory_mb=self.config.memory_mb,
            max_memory_mb=1,
            status="timeout" if failure.status == "timeout" else "error",
            error_type=failure.error_type,
        )
        platform = env.platform
        lines = [
            *platform.start(request_id),
            *platform.end(request_id),
            *platform.report(report),
        ]
        for line in lines:
            sink.write(self.config.name, line, request_id)
        self.service.environments.discard(env)
        log = earlier + env.take_lines() + lines
        return Outcome(request_id, failure.payload, True, log, report, env.pid)

    def invoked_arn(self, ref: FunctionRef) -> str:
        if ref.qualifier != LATEST:
            return f"{self.config.arn}:{ref.qualifier}"
        return self.config.arn

    def new_environment(self) -> ExecutionEnvironment:
        """A new environment, with a slot taken for the invoke that starts it."""
        if self.spec is None:
            self.spec = self.service.launch_spec(self.config)
        env = ExecutionEnvironment(
            self.config, self.spec, self.service.sink, self.service.backend
        )
        env.reserve()
        self.service.environments.add(env)
        self.warm.append(env)
        return env


@dataclass(frozen=True)
class Accepted:
    """An invoke that passed every check: run it (once)."""

    pool: FunctionPool
    request: InvokeRequest
    payload: bytes
    client_context: str | None  # decoded

    async def run(self, stream: ResponseStream | None = None) -> Outcome:
        outcome = await self.pool.invoke(
            self.request, self.payload, self.client_context, stream
        )
        size = len(outcome.payload)
        if (stream is None or not stream.live) and size > MAX_RESPONSE:
            # A streamed response, joined for a caller that waits for all of it,
            # is held to the buffered limit.
            too_big = too_large(response_too_large_message(size))
            outcome = dataclasses.replace(outcome, payload=too_big.body, is_error=True)
        return outcome


class LambdaService:
    """Every function of a template, ready to be invoked."""

    def __init__(
        self,
        functions: dict[str, FunctionConfig],
        *,
        sink: LogSink | None = None,
        concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT,
        state_dir: Path | None = None,
        async_retry_delay: float = 60.0,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT_S,
        sandbox: str | None = None,
        install_dependencies: bool = True,
    ) -> None:
        self.functions = functions
        # How environments are isolated and limited here (``sandbox.MODES``).
        self.backend = backend(sandbox)
        # False for built packages: their dependencies are in the package.
        self.install_dependencies = install_dependencies
        self.sink = sink or StreamSink()
        self.concurrency_limit = concurrency_limit
        self.pools = {
            name: FunctionPool(self, config) for name, config in functions.items()
        }
        self.environments: set[ExecutionEnvironment] = set()
        # Without a state folder the queue lives in memory, for one run.
        self.state_dir = state_dir
        self.async_retry_delay = async_retry_delay
        self.events: EventWorker | None = None
        self._starting: asyncio.Lock | None = None
        self.closing = False
        self._deps: dict[str, Path | None] = {}
        # Lambda ends execution environments that stay idle; None keeps them.
        self.idle_timeout = idle_timeout
        self._reaper: asyncio.Task[None] | None = None
        self.adopts_orphans = False

    # -- set-up ----------------------------------------------------------------

    def prepare(self) -> None:
        """Resolve interpreters and install dependencies before the first invoke."""
        for config in self.functions.values():
            if config.is_python:
                interpreter, exact = pythonrt.interpreter_for(config.python_version)
                if not exact:
                    logger.warning(
                        "%s: no python%s here; running it on Python %s instead",
                        config.name,
                        config.python_version,
                        ".".join(map(str, sys.version_info[:2])),
                    )
                deps = None
                if self.install_dependencies:
                    deps = pythonrt.dependencies_dir(config, interpreter)
                self._deps[config.name] = deps
                client = pythonrt.runtime_client_dir()
                if self.backend.bwrap is not None:
                    pythonrt.precompile(
                        interpreter, [client, *([deps] if deps else [])]
                    )

    def launch_spec(self, config: FunctionConfig) -> LaunchSpec:
        env = self.function_environment(config)
        if config.is_python:
            interpreter, _ = pythonrt.interpreter_for(config.python_version)
            deps = self._deps.get(config.name)
            if config.name not in self._deps:
                deps = pythonrt.dependencies_dir(config, interpreter)
            env["PYTHONPATH"] = pythonrt.python_path(config, deps)
            env["PYTHONPYCACHEPREFIX"] = str(pythonrt.cache_dir() / "pycache")
            env["PYTHONUNBUFFERED"] = "1"
            argv = [interpreter, "-S", "-m", "lamina.runtime"]
        else:
            argv = [find_bootstrap(config)]
        return LaunchSpec(argv=argv, env=env, cwd=str(config.code_dir))

    def function_environment(self, config: FunctionConfig) -> dict[str, str]:
        """The variables Lambda sets, with this machine's folders for /var/task and /opt."""
        task = str(config.code_dir)
        opt = [str(layer.path) for layer in config.layers]
        host_path = os.environ.get("PATH", "")
        env = {
            "_HANDLER": config.handler,
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": str(pythonrt.runtime_client_dir()),
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_VERSION": LATEST,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": config.log_settings.group
            or f"/aws/lambda/{config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": _log_stream_name(),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            **(
                {"AWS_LAMBDA_MAX_CONCURRENCY": str(config.max_concurrency)}
                if config.max_concurrency > 1
                else {}
            ),
            "AWS_REGION": region(),
            "AWS_DEFAULT_REGION": region(),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": os.pathsep.join(
                [f"{p}/bin" for p in opt] + [host_path or LAMBDA_PATH]
            ),
            "LD_LIBRARY_PATH": os.pathsep.join(
                [task, f"{task}/lib"] + [f"{p}/lib" for p in opt]
            ),
        }
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(config.log_settings.environment())
        env.update(config.environment)
        return env

    # -- invoking ----------------------------------------------------------------

    def pool(self, ref: FunctionRef) -> FunctionPool:
        pool = self.pools.get(ref.name)
        if pool is None or ref.qualifier != LATEST:
            raise not_found(ref)
        return pool

    async def invoke(
        self, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> Outcome:
        """A synchronous (RequestResponse) invoke; ``stream`` gets the chunks live."""
        return await self.accept(request).run(stream)

    def accept(self, request: InvokeRequest) -> Accepted:
        """Everything that can refuse an invoke before it starts, checked at once."""
        pool = self.pool(request.ref)
        payload = validate_payload(request.payload, SYNC_PAYLOAD_LIMIT, "Invoke")
        client_context = decode_client_context(request.client_context)
        pool.check_capacity()
        return Accepted(pool, request, payload, client_context)

    def dry_run(self, request: InvokeRequest) -> None:
        self.pool(request.ref)
        validate_payload(request.payload, SYNC_PAYLOAD_LIMIT, "Invoke")

    def forget_ended(self) -> None:
        """Let go of the environments that ended (timeouts, crashes, failed inits)."""
        self.environments = {
            each for each in self.environments if each.state is not State.DEAD
        }

    def adopt_orphans(self) -> None:
        """Become the parent of processes functions leave behind, to end them."""
        self.adopts_orphans = become_subreaper()

    def end_orphans(self) -> None:
        if self.adopts_orphans:
            for pid in end_orphans(ChildProcess.running):
                logger.info("ended pid %d, left behind by a function", pid)

    def start_reaper(self) -> None:
        """End idle environments and what functions left behind, in the background."""
        if self._reaper is None and (
            self.idle_timeout is not None or self.adopts_orphans
        ):
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        idle_timeout = self.idle_timeout or float("inf")
        period = min(max(idle_timeout / 4, 0.05), 1.0)
        while not self.closing:
            await asyncio.sleep(period)
            self.end_orphans()
            now = time.monotonic()
            for env in list(self.environments):
                if env.idle_for(now) > idle_timeout:
                    # A shutdown Lambda chose: the runtime and extensions hear
                    # SIGTERM / SHUTDOWN, then the environment is gone.
                    logger.info(
                        "%s: ending an environment idle for %.0f s",
                        env.config.name,
                        env.idle_for(now),
                    )
                    self.environments.discard(env)
                    await env.stop()
            for pool in self.pools.values():
                pool.warm = [each for each in pool.warm if each.state is not State.DEAD]
            self.forget_ended()

    async def start_events(self) -> EventWorker:
        """Open the queue of Event invokes and run what a stopped service left in it."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self.events is None:
                where: Path | str = ":memory:"
                if self.state_dir is not None:
                    where = self.state_dir / DATABASE_NAME
                queue = await asyncio.to_thread(EventQueue, where)
                worker = EventWorker(
                    queue,
                    self.functions,
                    self._run_event,
                    retry_delay=self.async_retry_delay,
                    concurrency_limit=self.concurrency_limit,
                )
                await worker.start()
                self.events = worker
            return self.events

    async def invoke_async(self, request: InvokeRequest) -> str:
        """An Event invoke: queued durably, then answered; the worker runs it."""
        pool = self.pool(request.ref)
        payload = validate_payload(request.payload, ASYNC_PAYLOAD_LIMIT, "InvokeAsync")
        decode_client_context(request.client_context)
        if self.closing:
            raise ServiceError("The Lambda service is stopping; no new invokes start.")
        worker = await self.start_events()
        event = QueuedEvent(
            request_id=new_request_id(),
            function=pool.config.name,
            payload=payload,
            accepted_at=time.time(),
            client_context=request.client_context,
            tenant_id=request.tenant_id,
        )
        await asyncio.to_thread(worker.queue.put, event)
        worker.wake()
        return event.request_id

    async def _run_event(self, event: QueuedEvent) -> Outcome:
        pool = self.pools[event.function]
        request = InvokeRequest(
            ref=FunctionRef(event.function, LATEST),
            payload=event.payload,
            client_context=event.client_context,
            tenant_id=event.tenant_id,
            request_id=event.request_id,
        )
        context = decode_client_context(event.client_context)
        return await pool.invoke(request, event.payload, context)

    async def wait_idle(self) -> None:
        """Wait until every accepted Event invoke has run to its end."""
        if self.events is not None:
            await self.events.wait_idle()

    async def close(self) -> None:
        """Stop every environment; invokes in flight end, none start from now on."""
        self.closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        if self.events is not None:
            # Events running now stay recorded as running: the next start retries them.
            await self.events.stop()
            await asyncio.to_thread(self.events.queue.close)
        await asyncio.gather(
            *(env.stop() for env in list(self.environments)), return_exceptions=True
        )
        self.environments.clear()
        # Give the invokes that were in flight a moment to be answered.
        deadline = asyncio.get_running_loop().time() + 1.0
        while self.in_flight() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        self.end_orphans()
        self.sink.flush()

    def in_flight(self) -> int:
        return sum(pool.busy for pool in self.pools.values())


def find_bootstrap(config: FunctionConfig) -> str:
    """The ``bootstrap`` Lambda would start: code root first, then the layers' /opt."""
    places = [config.code_dir / "bootstrap"] + [
        layer.path / "bootstrap" for layer in config.layers
    ]
    for place in places:
        if place.is_file():
            return str(place)
    return str(places[0])


def _log_stream_name() -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime())
    return f"{day}/[$LATEST]{secrets.token_hex(16)}"
