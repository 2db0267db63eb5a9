"""The queue of Event invokes on a real SQLite file, without a service."""

from __future__ import annotations

import json
from pathlib import Path

from lamina.emulator.event_queue import (
    DATABASE_NAME,
    Delivery,
    EventQueue,
    QueuedEvent,
    invocation_record,
)
from lamina.emulator.function import Destination
from lamina.emulator.invocation import Outcome


def event(request_id: str, accepted_at: float = 100.0) -> QueuedEvent:
    return QueuedEvent(request_id, "fn", b'{"id": 1}', accepted_at)


def test_taken_events_count_an_attempt_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    queue = EventQueue(path)
    queue.put(event("a"))
    queue.put(event("b"), due_at=500.0)

    (taken,) = queue.take("fn", 10, now=200.0)
    assert (taken.request_id, taken.attempts) == ("a", 1)
    assert queue.take("fn", 10, now=200.0) == []
    queue.close()

    # A service that died with "a" running: the next one runs it again.
    reopened = EventQueue(path)
    assert reopened.recover(now=300.0) == 1
    (again,) = reopened.take("fn", 10, now=300.0)
    assert (again.request_id, again.attempts) == ("a", 2)
    assert reopened.states() == {"a": "running", "b": "queued"}


def test_a_throttled_run_gives_its_attempt_back(tmp_path: Path) -> None:
    queue = EventQueue(tmp_path / DATABASE_NAME)
    queue.put(event("a"))
    queue.take("fn", 1, now=200.0)
    queue.retry("a", due_at=201.0, counted=False)

    assert queue.take("fn", 1, now=200.5) == []
    (taken,) = queue.take("fn", 1, now=201.0)
    assert taken.attempts == 1


def test_finishing_records_destinations_in_the_same_transaction(
    tmp_path: Path,
) -> None:
    queue = EventQueue(tmp_path / DATABASE_NAME)
    queue.put(event("a"))
    queue.take("fn", 1, now=200.0)
    out = tmp_path / "records.jsonl"
    queue.finish(
        "a",
        "succeeded",
        [
            Delivery(Destination("file", str(out)), '{"n": 1}'),
            Delivery(Destination("function", "sink"), '{"n": 2}'),
        ],
        now=201.0,
    )

    assert not out.exists()  # written by send_records, after the commit
    assert queue.send_records() == 1
    assert queue.send_records() == 0
    assert out.read_text() == '{"n": 1}\n'
    (sent,) = queue.take("sink", 1, now=201.0)
    assert json.loads(sent.payload) == {"n": 2}
    assert queue.states()["a"] == "succeeded"


def test_old_events_are_dropped(tmp_path: Path) -> None:
    queue = EventQueue(tmp_path / DATABASE_NAME)
    queue.put(event("old", accepted_at=10.0))
    queue.put(event("new", accepted_at=90.0))

    assert [each.request_id for each in queue.take_expired("fn", 50.0)] == ["old"]
    assert queue.states() == {"old": "dropped", "new": "queued"}
    assert queue.unfinished() == 1


def test_invocation_record_has_aws_shape() -> None:
    outcome = Outcome("a", b'{"errorType": "E"}', True, [], None, None)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    record = invocation_record(
        QueuedEvent("a", "fn", b'{"id": 1}', 0.0, 3),
        arn,
        "RetriesExhausted",
        outcome,
        0.0,
    )

    assert record == {
        "version": "1.0",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "requestContext": {
            "requestId": "a",
            "functionArn": arn + ":$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"id": 1},
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {"errorType": "E"},
    }
