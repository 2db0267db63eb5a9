"""Several invocations in flight in one execution environment, kept apart."""

from __future__ import annotations

import http.client
import json
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import Served, code_dir, wait_for

INVOKES = 200


def _template(handler: str, concurrency: int) -> str:
    return f"""Resources:
  busy:
    Type: AWS::Serverless::Function
    Metadata:
      Lamina:
        MaxConcurrency: {concurrency}
    Properties:
      Runtime: python3.11
      Handler: {handler}
      CodeUri: code
      Timeout: 30
"""


def _invoke_many(served: Served) -> list[tuple[str, dict]]:
    parts = urlsplit(served.url)

    def one(index: int) -> tuple[str, dict]:
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=60
        )
        try:
            connection.request(
                "POST",
                "/2015-03-31/functions/busy/invocations",
                body=json.dumps({"i": index}),
            )
            response = connection.getresponse()
            body = json.loads(response.read())
            assert response.status == 200, body
            assert response.getheader("X-Amz-Function-Error") is None, body
            return response.getheader("x-amzn-RequestId") or "", body
        finally:
            connection.close()

    with ThreadPoolExecutor(24) as pool:
        return list(pool.map(one, range(INVOKES)))


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    )
    current = best = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


@pytest.mark.parametrize(
    "handler", ["overlap.sync", "overlap.asynchronous"], ids=["threads", "event-loop"]
)
def test_overlapping_invocations_each_see_their_own_ids(
    tmp_path: Path, serve: Callable[..., Served], handler: str
) -> None:
    code_dir(tmp_path)
    served = serve(_template(handler, 8))

    results = _invoke_many(served)

    request_ids = set()
    traces = set()
    per_environment: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for header_id, body in results:
        # The request id the caller was told is the one the handler saw, before
        # and after other invocations ran in the same process.
        assert body["request_id"] == header_id
        assert body["seen_request_id"] == header_id
        assert body["trace_before"] == body["trace_after"]
        assert body["trace_before"].startswith("Root=1-")
        # Several at once: no process-wide trace id that another could overwrite.
        assert body["trace_env"] is None
        assert 0 < body["remaining"] <= 30_000
        request_ids.add(header_id)
        traces.add(body["trace_before"])
        per_environment[body["pid"]].append((body["started"], body["ended"]))

    assert len(request_ids) == INVOKES
    assert len(traces) == INVOKES
    # 24 callers, 8 invocations per environment: a handful of environments, each
    # of which really ran invocations side by side.
    assert 1 <= len(per_environment) <= 6
    assert max(_max_overlap(spans) for spans in per_environment.values()) >= 2
    assert all(_max_overlap(spans) <= 8 for spans in per_environment.values())


def test_one_at_a_time_without_max_concurrency(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve(_template("overlap.sync", 1))

    results = _invoke_many(served)

    per_environment: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for header_id, body in results:
        assert body["request_id"] == header_id
        assert body["trace_env"] == body["trace_before"]
        per_environment[body["pid"]].append((body["started"], body["ended"]))
    # An environment never holds a second event before answering the first.
    assert all(_max_overlap(spans) == 1 for spans in per_environment.values())


TWO_FUNCTIONS = """Resources:
  slow:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: behave.sleep
      CodeUri: code
      Timeout: 30
  quick:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: behave.echo
      CodeUri: code
"""


def _post(served: Served, function: str, event: dict) -> tuple[int, dict, dict]:
    parts = urlsplit(served.url)
    connection = http.client.HTTPConnection(
        parts.hostname or "", parts.port, timeout=60
    )
    try:
        connection.request(
            "POST",
            f"/2015-03-31/functions/{function}/invocations",
            body=json.dumps(event),
        )
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(response.read())
    finally:
        connection.close()


def test_max_concurrency_counts_the_invokes_of_every_function(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    served = serve(TWO_FUNCTIONS, "--max-concurrency", "1")

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_post, served, "slow", {"seconds": 2})
        served.output.wait(r"^\[slow\] START RequestId:", timeout=30)

        # Another function, but the one invoke the service allows is taken.
        status, headers, body = _post(served, "quick", {})
        assert status == 429, body
        assert headers["x-amzn-errortype"] == "TooManyRequestsException"
        assert headers["retry-after"]
        assert body["Reason"] == "ConcurrentInvocationLimitExceeded"

        assert slow.result()[0] == 200

    wait_for(lambda: _post(served, "quick", {})[0] == 200, 10, "room again")
