"""Event invokes through a real ``lamina serve``: retries, destinations, restarts."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.emulator.event_queue import DATABASE_NAME, EventQueue, QueuedEvent
from tests.conftest import (
    Served,
    code_dir,
    function_yaml,
    pid_alive,
    start_serve,
    stop_process,
    wait_for,
)


@pytest.fixture
def started() -> Iterator[list[Served]]:
    """Every ``lamina serve`` a test starts, stopped after it."""
    services: list[Served] = []
    yield services
    for served in services:
        stop_process(served.process)


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def template(tmp_path: Path, *functions: str) -> Path:
    code_dir(tmp_path)
    path = tmp_path / "template.yaml"
    path.write_text("Resources:" + "".join(functions))
    return path


def out_env(path: Path) -> str:
    return f"{{Variables: {{ASYNC_OUT: {path}}}}}"


def serve(started: list[Served], path: Path, state: Path, delay: str = "0.2") -> Served:
    served = start_serve(path, "--state-dir", str(state), "--async-retry-delay", delay)
    started.append(served)
    return served


def send(served: Served, name: str, event: dict[str, object]) -> str:
    answer = served.client().invoke(  # type: ignore[attr-defined]
        FunctionName=name, InvocationType="Event", Payload=json.dumps(event)
    )
    assert answer["StatusCode"] == 202
    return str(answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])


def serve_flaky(
    tmp_path: Path, started: list[Served], runs: Path, config: str
) -> Served:
    """A service with one function, Flaky, whose runs go to ``runs``."""
    path = template(
        tmp_path,
        function_yaml(
            "Flaky",
            "async_events.flaky",
            Environment=out_env(runs),
            EventInvokeConfig=config,
        ),
    )
    return serve(started, path, tmp_path / "state")


def test_failed_event_is_retried_then_succeeds(
    tmp_path: Path, started: list[Served]
) -> None:
    runs, successes = tmp_path / "runs.jsonl", tmp_path / "ok.jsonl"
    config = (
        f"{{DestinationConfig: {{OnSuccess: {{Type: SQS, Destination: {successes}}}}}}}"
    )
    served = serve_flaky(tmp_path, started, runs, config)

    request_id = send(served, "Flaky", {"id": 1, "succeed_on": 3})

    (record,) = wait_for(lambda: lines(successes), 15, "the success record")
    assert [run["request_id"] for run in lines(runs)] == [request_id] * 3
    assert record["requestContext"] == {  # type: ignore[index]
        "requestId": request_id,
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:Flaky:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"id": 1, "succeed_on": 3}  # type: ignore[index]
    assert record["responsePayload"] == {"runs": 3}  # type: ignore[index]
    served.output.wait("async invoke .* failed \\(attempt 2\\); retrying in 0.4 s")


@pytest.mark.parametrize(
    ("retries", "runs_expected"),
    [
        pytest.param(None, 3, id="default-two-retries"),
        pytest.param(0, 1, id="no-retries"),
    ],
)
def test_retries_exhausted_go_to_the_failure_destination(
    tmp_path: Path, started: list[Served], retries: int | None, runs_expected: int
) -> None:
    runs = tmp_path / "runs.jsonl"
    limit = "" if retries is None else f"MaximumRetryAttempts: {retries}, "
    config = (
        f"{{{limit}DestinationConfig: "
        "{OnFailure: {Type: SQS, Destination: failures.jsonl}}}"
    )
    served = serve_flaky(tmp_path, started, runs, config)

    request_id = send(served, "Flaky", {"id": 1, "succeed_on": 99})

    failures = tmp_path / "failures.jsonl"  # relative to the template's folder
    (record,) = wait_for(lambda: lines(failures), 15, "the failure record")
    context = record["requestContext"]  # type: ignore[index]
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == runs_expected
    assert context["requestId"] == request_id
    assert record["responseContext"]["functionError"] == "Unhandled"  # type: ignore[index]
    assert record["responsePayload"]["errorType"] == "RuntimeError"  # type: ignore[index]
    time.sleep(1.0)  # longer than any retry delay: no run after the last
    assert len(lines(runs)) == runs_expected


def test_success_record_goes_to_another_function(
    tmp_path: Path, started: list[Served]
) -> None:
    runs, sink = tmp_path / "runs.jsonl", tmp_path / "sink.jsonl"
    config = "{DestinationConfig: {OnSuccess: {Type: Lambda, Destination: !GetAtt Sink.Arn}}}"
    path = template(
        tmp_path,
        function_yaml(
            "Record",
            "async_events.record",
            Environment=out_env(runs),
            EventInvokeConfig=config,
        ),
        function_yaml("Sink", "async_events.collect", Environment=out_env(sink)),
    )
    served = serve(started, path, tmp_path / "state")

    request_id = send(served, "Record", {"id": 7})

    (seen,) = wait_for(lambda: lines(sink), 15, "the record at the destination")
    record = seen["record"]
    assert record["requestContext"]["requestId"] == request_id  # type: ignore[index]
    assert record["requestContext"]["condition"] == "Success"  # type: ignore[index]
    assert record["responsePayload"] == {"id": 7}  # type: ignore[index]
    assert seen["request_id"] != request_id


def test_an_event_too_old_is_dropped_to_the_failure_destination(
    tmp_path: Path, started: list[Served]
) -> None:
    runs, failures = tmp_path / "runs.jsonl", tmp_path / "failures.jsonl"
    config = (
        "{MaximumEventAgeInSeconds: 60, DestinationConfig: "
        f"{{OnFailure: {{Type: SQS, Destination: 'file://{failures}'}}}}}}"
    )
    path = template(
        tmp_path,
        function_yaml(
            "Record",
            "async_events.record",
            Environment=out_env(runs),
            EventInvokeConfig=config,
        ),
    )
    # An event accepted two minutes ago by a service that stopped since.
    state = tmp_path / "state"
    queue = EventQueue(state / DATABASE_NAME)
    queue.put(QueuedEvent("old-event", "Record", b'{"id": 1}', time.time() - 120))
    queue.close()

    served = serve(started, path, state)

    (record,) = wait_for(lambda: lines(failures), 15, "the failure record")
    assert record["requestContext"]["condition"] == "EventAgeExceeded"  # type: ignore[index]
    assert record["requestContext"]["requestId"] == "old-event"  # type: ignore[index]
    assert record["requestContext"]["approximateInvokeCount"] == 0  # type: ignore[index]
    assert "responseContext" not in record
    served.output.wait("old-event given up \\(EventAgeExceeded")
    assert lines(runs) == []


def test_a_throttled_function_still_gets_every_event_once(
    tmp_path: Path, started: list[Served]
) -> None:
    runs = tmp_path / "runs.jsonl"
    path = template(
        tmp_path,
        function_yaml(
            "Record",
            "async_events.record",
            Environment=out_env(runs),
            ReservedConcurrentExecutions=1,
        ),
    )
    served = serve(started, path, tmp_path / "state")

    sent = [send(served, "Record", {"id": n, "pause": 0.2}) for n in range(6)]
    wait_for(lambda: len(lines(runs)) == 6, 30, "every event to run")

    assert sorted(run["request_id"] for run in lines(runs)) == sorted(sent)  # type: ignore[type-var]
    assert "given up" not in served.output.text()


def test_accepted_events_survive_a_killed_service(
    tmp_path: Path, started: list[Served]
) -> None:
    runs = tmp_path / "runs.jsonl"
    path = template(
        tmp_path,
        function_yaml("Record", "async_events.record", Environment=out_env(runs)),
    )
    state = tmp_path / "state"
    first = serve(started, path, state)
    ids = list(range(20))
    for n in ids:
        send(first, "Record", {"id": n, "pause": 0.3 + 0.05 * n})

    # Kill it with events done, in flight and not yet started.
    wait_for(lambda: len(lines(runs)) >= 3, 30, "some events to run")
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    queue = EventQueue(state / DATABASE_NAME)
    recorded = {key for key, value in queue.states().items() if value == "succeeded"}
    queue.close()
    assert 0 < len(recorded) < 20

    # The killed service's environments end with it (the kernel ends them).
    pids = [int(run["pid"]) for run in lines(runs)]  # type: ignore[call-overload]
    wait_for(
        lambda: not any(pid_alive(pid) for pid in pids),
        10,
        "the old environments to end",
    )

    second = serve(started, path, state)
    wait_for(lambda: {run["id"] for run in lines(runs)} == set(ids), 60, "every event")
    queue = EventQueue(state / DATABASE_NAME)
    wait_for(lambda: set(queue.states().values()) == {"succeeded"}, 30, "every success")
    queue.close()

    counts = Counter(str(run["request_id"]) for run in lines(runs))
    assert len(counts) == 20  # every accepted event, at least once
    assert all(counts[request_id] == 1 for request_id in recorded)
    assert "retrying" in second.output.text()
