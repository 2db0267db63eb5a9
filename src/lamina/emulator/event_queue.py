"""Durable ``Event`` invokes: a SQLite queue, and the worker that runs it.

An accepted ``Event`` invoke is written to the queue (one SQLite file in WAL mode,
``events.sqlite3`` under ``lamina serve --state-dir``) before its 202 is answered.
One worker per service takes the events that are due, as many per function as its
reserved concurrency allows, and runs each as Lambda does:

- a function error, timeout or crash is retried up to ``MaximumRetryAttempts``
  times, the n-th retry ``retry_delay * 2 ** (n - 1)`` seconds after the failure
  (Lambda: about one minute, then two);
- a throttled invoke (``TooManyRequests``) goes back to the queue after a short
  backoff and does not count as an attempt;
- an event older than ``MaximumEventAgeInSeconds`` is dropped (``EventAgeExceeded``);
- after a success the invocation record goes to the on-success destination; after
  the last failure it goes to the on-failure destination, and the event alone to the
  ``DeadLetterQueue``.

Delivery guarantees, across a crash of the service (``kill -9``):

- Every accepted event is run until it succeeds or fails for good: taking an event
  commits it as ``running`` with its attempt counted, and on the next start the
  events still ``running`` go back to the queue. That interrupted run counts as an
  attempt, so an event interrupted on its last attempt ends as ``RetriesExhausted``.
- An event is marked ``succeeded`` in the same transaction that records its
  destinations, so once a success is recorded the handler never sees that event
  again, and its records are sent. A handler that returned but whose success was not
  yet recorded when the service died is run again: delivery to a handler that
  succeeds is exactly once *after* its success is recorded, and at least once
  overall. Handlers should be idempotent, as on Lambda.
- A destination that is a function gets its record as a new event of this queue, in
  that same transaction. A record for a file is kept in the database until it has
  been appended, so a crash between the two appends it again on the next start:
  files get every record at least once.

One service at a time may use a state folder; two would run each event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lamina.emulator.errors import ServiceError, TooManyRequests
from lamina.emulator.function import LATEST, Destination, FunctionConfig
from lamina.emulator.invocation import Outcome

logger = logging.getLogger(__name__)

DATABASE_NAME = "events.sqlite3"
SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
# Finished events are kept this long for a look with the sqlite3 shell.
KEEP_FINISHED_S = 6 * 3600
_THROTTLE_BACKOFF = (0.05, 1.0)
_IDLE_WAKE_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    request_id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    payload BLOB NOT NULL,
    client_context TEXT,
    tenant_id TEXT,
    accepted_at REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued'
);
CREATE INDEX IF NOT EXISTS events_due ON events (state, function, due_at);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    line TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class QueuedEvent:
    request_id: str
    function: str
    payload: bytes
    accepted_at: float
    attempts: int = 0
    client_context: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One record on its way: a line for a file, or an event for a function."""

    destination: Destination
    body: str


class EventQueue:
    """The events of one service, in SQLite. Each method is one short transaction.

    Methods block; the worker calls them through ``asyncio.to_thread``.
    """

    def __init__(self, path: Path | str) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        # One writer of files at a time, so no record is appended twice.
        self._send_lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # A committed transaction survives the process being killed.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, event: QueuedEvent, due_at: float | None = None) -> None:
        with self._lock, self._db:
            self._insert(event, event.accepted_at if due_at is None else due_at)

    def recover(self, now: float) -> int:
        """Put back the events a stopped service was running; forget old finished ones."""
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM events WHERE state NOT IN ('queued', 'running') "
                "AND accepted_at < ?",
                (now - KEEP_FINISHED_S,),
            )
            cursor = self._db.execute(
                "UPDATE events SET state = 'queued', due_at = ? WHERE state = 'running'",
                (now,),
            )
            return cursor.rowcount

    def take(self, function: str, limit: int, now: float) -> list[QueuedEvent]:
        """Up to ``limit`` due events of ``function``, marked running, attempt counted."""
        if limit <= 0:
            return []
        with self._lock, self._db:
            rows = self._db.execute(
                "SELECT request_id, function, payload, accepted_at, attempts, "
                "client_context, tenant_id FROM events WHERE state = 'queued' "
                "AND function = ? AND due_at <= ? ORDER BY due_at LIMIT ?",
                (function, now, limit),
            ).fetchall()
            self._db.executemany(
                "UPDATE events SET state = 'running', attempts = attempts + 1 "
                "WHERE request_id = ?",
                [(row[0],) for row in rows],
            )
        return [
            QueuedEvent(
                request_id=row[0],
                function=row[1],
                payload=bytes(row[2]),
                accepted_at=row[3],
                attempts=row[4] + 1,
                client_context=row[5],
                tenant_id=row[6],
            )
            for row in rows
        ]

    def take_expired(self, function: str, oldest: float) -> list[QueuedEvent]:
        """The queued events of ``function`` accepted before ``oldest``, now dropped."""
        with self._lock, self._db:
            rows = self._db.execute(
                "SELECT request_id, function, payload, accepted_at, attempts "
                "FROM events WHERE state = 'queued' AND function = ? "
                "AND accepted_at < ?",
                (function, oldest),
            ).fetchall()
            self._db.executemany(
                "UPDATE events SET state = 'dropped' WHERE request_id = ?",
                [(row[0],) for row in rows],
            )
        return [
            QueuedEvent(row[0], row[1], bytes(row[2]), row[3], row[4]) for row in rows
        ]

    def retry(self, request_id: str, due_at: float, *, counted: bool = True) -> None:
        """Queue a run again; an uncounted one (throttled) gives its attempt back."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE events SET state = 'queued', due_at = ?, "
                "attempts = attempts - ? WHERE request_id = ?",
                (due_at, 0 if counted else 1, request_id),
            )

    def finish(
        self, request_id: str, state: str, deliveries: list[Delivery], now: float
    ) -> None:
        """Record how an event ended, with the records it sends, in one transaction."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE events SET state = ? WHERE request_id = ?", (state, request_id)
            )
            for delivery in deliveries:
                target = delivery.destination.target
                if delivery.destination.is_function:
                    event = QueuedEvent(
                        str(uuid.uuid4()), target, delivery.body.encode(), now
                    )
                    self._insert(event, now)
                else:
                    self._db.execute(
                        "INSERT INTO records (path, line) VALUES (?, ?)",
                        (target, delivery.body),
                    )

    def send_records(self) -> int:
        """Append the records waiting for a file; each is forgotten once written."""
        with self._send_lock:
            return self._send_records()

    def _send_records(self) -> int:
        with self._lock:
            rows = self._db.execute("SELECT id, path, line FROM records").fetchall()
        for record_id, path, line in rows:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as file:
                    file.write(line + "\n")
            except OSError:
                logger.error(
                    "cannot write an invocation record to %s", path, exc_info=True
                )
                continue
            with self._lock, self._db:
                self._db.execute("DELETE FROM records WHERE id = ?", (record_id,))
        return len(rows)

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(due_at) FROM events WHERE state = 'queued'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def states(self) -> dict[str, str]:
        """Every event's state by request id (for tests and a look from outside)."""
        with self._lock:
            rows = self._db.execute("SELECT request_id, state FROM events").fetchall()
        return dict(rows)

    def unfinished(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM events WHERE state IN ('queued', 'running')"
            ).fetchone()
        return int(row[0])

    def _insert(self, event: QueuedEvent, due_at: float) -> None:
        self._db.execute(
            "INSERT INTO events (request_id, function, payload, client_context, "
            "tenant_id, accepted_at, due_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.request_id,
                event.function,
                event.payload,
                event.client_context,
                event.tenant_id,
                event.accepted_at,
                due_at,
                event.attempts,
            ),
        )


def invocation_record(
    event: QueuedEvent,
    function_arn: str,
    condition: str,
    outcome: Outcome | None,
    now: float,
) -> dict[str, Any]:
    """The record Lambda sends to a destination, in AWS's shape."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": stamp + "Z",
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": f"{function_arn}:{LATEST}",
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": _json_or_text(event.payload),
    }
    if outcome is not None:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": LATEST}
        if outcome.is_error:
            response["functionError"] = "Unhandled"
        record["responseContext"] = response
        record["responsePayload"] = _json_or_text(outcome.payload)
    return record


def _json_or_text(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


RunEvent = Callable[[QueuedEvent], Awaitable[Outcome]]


class EventWorker:
    """Runs the due events of a queue against the service's functions."""

    def __init__(
        self,
        queue: EventQueue,
        functions: Mapping[str, FunctionConfig],
        run: RunEvent,
        *,
        retry_delay: float = 60.0,
        concurrency_limit: int = 1000,
    ) -> None:
        self.queue = queue
        self.functions = functions
        self.run = run
        self.retry_delay = retry_delay
        self.concurrency_limit = concurrency_limit
        self._wake = asyncio.Event()
        self._active: dict[str, int] = {}
        self._throttled: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.queue.recover, time.time())
        if recovered:
            logger.warning(
                "retrying %d async invokes a stopped service had begun", recovered
            )
        await asyncio.to_thread(self.queue.send_records)
        self._loop_task = asyncio.get_running_loop().create_task(self._work())

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking events; the ones running stay recorded as running."""
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        while True:
            unfinished = await asyncio.to_thread(self.queue.unfinished)
            if not unfinished and not self._tasks:
                return
            await asyncio.sleep(0.02)

    async def _work(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._dispatch()
            except sqlite3.Error:
                logger.error("the async invoke queue failed", exc_info=True)
            due = await asyncio.to_thread(self.queue.next_due)
            wait = _IDLE_WAKE_S if due is None else due - time.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, _IDLE_WAKE_S))

    async def _dispatch(self) -> None:
        now = time.time()
        for name, config in self.functions.items():
            oldest = now - config.event_invoke.max_event_age_s
            for event in await asyncio.to_thread(self.queue.take_expired, name, oldest):
                await self._fail(event, EVENT_AGE_EXCEEDED, None)
            room = self.concurrency_limit - sum(self._active.values())
            if config.reserved_concurrency is not None:
                room = min(
                    room, config.reserved_concurrency - self._active.get(name, 0)
                )
            for event in await asyncio.to_thread(self.queue.take, name, room, now):
                self._active[name] = self._active.get(name, 0) + 1
                task = asyncio.get_running_loop().create_task(self._attempt(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _attempt(self, event: QueuedEvent) -> None:
        config = self.functions[event.function]
        try:
            if event.attempts > config.event_invoke.max_retry_attempts + 1:
                # Its last attempt was cut short by a stopped service.
                await self._fail(event, RETRIES_EXHAUSTED, None)
                return
            try:
                outcome = await self.run(event)
            except TooManyRequests:
                await self._throttle(event)
                return
            except ServiceError:
                # The service could not start the invoke: not the function's failure.
                logger.error(
                    "%s: async invoke %s not started",
                    event.function,
                    event.request_id,
                    exc_info=True,
                )
                await self._throttle(event)
                return
            self._throttled.pop(event.request_id, None)
            if not outcome.is_error:
                await self._succeed(event, outcome)
            elif event.attempts <= config.event_invoke.max_retry_attempts:
                delay = self.retry_delay * 2 ** (event.attempts - 1)
                logger.warning(
                    "%s: async invoke %s failed (attempt %d); retrying in %.1f s",
                    event.function,
                    event.request_id,
                    event.attempts,
                    delay,
                )
                await asyncio.to_thread(
                    self.queue.retry, event.request_id, time.time() + delay
                )
            else:
                await self._fail(event, RETRIES_EXHAUSTED, outcome)
        finally:
            self._active[event.function] -= 1
            self._wake.set()

    async def _throttle(self, event: QueuedEvent) -> None:
        count = self._throttled.get(event.request_id, 0)
        self._throttled[event.request_id] = count + 1
        low, high = _THROTTLE_BACKOFF
        due = time.time() + min(low * 2**count, high)
        await asyncio.to_thread(self.queue.retry, event.request_id, due, counted=False)

    async def _succeed(self, event: QueuedEvent, outcome: Outcome) -> None:
        config = self.functions[event.function]
        now = time.time()
        deliveries = []
        if config.event_invoke.on_success is not None:
            record = invocation_record(event, config.arn, SUCCESS, outcome, now)
            deliveries.append(
                Delivery(config.event_invoke.on_success, json.dumps(record))
            )
        await self._finish(event, "succeeded", deliveries, now)

    async def _fail(
        self, event: QueuedEvent, condition: str, outcome: Outcome | None
    ) -> None:
        config = self.functions[event.function]
        now = time.time()
        logger.warning(
            "%s: async invoke %s given up (%s after %d attempts)",
            event.function,
            event.request_id,
            condition,
            event.attempts,
        )
        settings = config.event_invoke
        deliveries = []
        if settings.on_failure is not None:
            record = invocation_record(event, config.arn, condition, outcome, now)
            deliveries.append(Delivery(settings.on_failure, json.dumps(record)))
        if settings.dead_letter is not None:
            # A dead-letter queue gets the event alone.
            body = json.dumps(_json_or_text(event.payload))
            deliveries.append(Delivery(settings.dead_letter, body))
        state = "dropped" if condition == EVENT_AGE_EXCEEDED else "failed"
        await self._finish(event, state, deliveries, now)

    async def _finish(
        self, event: QueuedEvent, state: str, deliveries: list[Delivery], now: float
    ) -> None:
        await asyncio.to_thread(
            self.queue.finish, event.request_id, state, deliveries, now
        )
        if any(delivery.destination.is_function for delivery in deliveries):
            self._wake.set()
        if any(not delivery.destination.is_function for delivery in deliveries):
            await asyncio.to_thread(self.queue.send_records)
