"""Under load and under attack: every request answered, nothing lost, nothing leaked."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import (
    Served,
    function_yaml,
    pid_alive,
    post,
    raw_exchange,
    stop_process,
)
from tests.emulator.helpers import serving

REQUESTS = 500


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(
        tmp_path_factory.mktemp("load"),
        (
            function_yaml("limited", "behave.sleep", ReservedConcurrentExecutions=10)
            + function_yaml("echo", "behave.echo")
        ),
    )


def _post(served: Served, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return post(served.url, path, body)


def test_a_burst_beyond_reserved_concurrency_is_answered_exactly_once(
    service: Served,
) -> None:
    def one(index: int) -> tuple[int, int, str]:
        status, headers, body = _post(
            service,
            "/2015-03-31/functions/limited/invocations",
            json.dumps({"seconds": 0.2, "i": index}).encode(),
        )
        if status == 200:
            return index, status, str(json.loads(body)["pid"])
        assert status == 429, body
        assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
        assert headers["Retry-After"]
        return index, status, ""

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(REQUESTS)))

    # One answer per request, each a success or a throttle: none lost or doubled.
    assert sorted(index for index, _, _ in answers) == list(range(REQUESTS))
    statuses = Counter(status for _, status, _ in answers)
    assert set(statuses) <= {200, 429}
    assert statuses[200] >= 10
    pids = {int(pid) for _, status, pid in answers if status == 200}
    # Never more environments than the reserved concurrency allows.
    assert 1 <= len(pids) <= 10

    # All of them end with the service: no process outlives it.
    stop_process(service.process)
    assert not [pid for pid in pids if pid_alive(pid)]


_METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X", ""])
_PATHS = st.one_of(
    st.just("/2015-03-31/functions/echo/invocations"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).map(
        lambda text: "/" + text
    ),
)
_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "X-Amz-Invocation-Type",
                "X-Amz-Log-Type",
                "X-Amz-Client-Context",
                "Content-Length",
                "Transfer-Encoding",
                "Expect",
                "Connection",
                "X-Other",
            ]
        ),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    ),
    max_size=5,
)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(
        tmp_path_factory.mktemp("attacked"), function_yaml("echo", "behave.echo")
    )


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(method=_METHODS, path=_PATHS, headers=_HEADERS, body=st.binary(max_size=200))
def test_malformed_requests_get_an_http_answer_and_the_service_keeps_serving(
    attacked: Served,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    received = raw_exchange(attacked.port, head.encode() + b"\r\n" + body)

    # Whatever came in, whatever went out is HTTP, and never a 5xx of lamina's own.
    if received:
        assert received.startswith(b"HTTP/1.1 "), received[:100]
        status = int(received.split(b" ", 2)[1])
        assert status < 500 or (status == 502 and b"/lambda-url/" in path.encode()), (
            received[:300]
        )
    assert attacked.process.poll() is None
    status, _, answer = _post(
        attacked, "/2015-03-31/functions/echo/invocations", b'{"ok": 1}'
    )
    assert status == 200
    assert json.loads(answer)["event"] == {"ok": 1}
