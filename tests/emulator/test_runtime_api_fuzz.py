"""Malformed traffic to a Runtime API on a real socket: answered, and it keeps serving."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.emulator.http import serve
from lamina.emulator.runtime_api import RuntimeAPIHandler, is_streamed_response
from tests.conftest import raw_exchange

_ROUTES = st.sampled_from(
    [
        "/2018-06-01/runtime/invocation/req-1/response",
        "/2018-06-01/runtime/invocation/req-1/error",
        "/2018-06-01/runtime/invocation//response",
        "/2018-06-01/runtime/init/error",
        "/2018-06-01/runtime/invocation/next/extra",
        "/2020-01-01/extension/register",
        "/2020-01-01/extension/event/next",
        "/nothing",
    ]
)


@pytest.fixture(scope="module")
def runtime_api() -> Iterator[int]:
    """A Runtime API with no invocation in flight, on a loop in a thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    servers: list[asyncio.Server] = []

    async def start() -> None:
        api = RuntimeAPIHandler()
        server = await serve(api.handle, "127.0.0.1", 0, streaming=is_streamed_response)
        servers.append(server)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    yield port[0]

    async def stop() -> None:
        for server in servers:
            server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    route=_ROUTES,
    headers=st.lists(
        st.sampled_from(
            [
                "Content-Length: 5",
                "Content-Length: -1",
                "Content-Length: x",
                "Transfer-Encoding: chunked",
                "Lambda-Runtime-Function-Response-Mode: streaming",
                "Lambda-Runtime-Function-Error-Type: Bogus",
                "Lambda-Extension-Name: e",
            ]
        ),
        max_size=4,
    ),
    body=st.binary(max_size=100),
)
def test_malformed_runtime_calls_get_an_answer(
    runtime_api: int, method: str, route: str, headers: list[str], body: bytes
) -> None:
    head = f"{method} {route} HTTP/1.1\r\nHost: x\r\n" + "".join(
        h + "\r\n" for h in headers
    )
    received = raw_exchange(runtime_api, head.encode() + b"\r\n" + body)
    if received:
        assert received.startswith(b"HTTP/1.1 ")
        assert int(received.split(b" ", 2)[1]) < 500, received[:300]
    # Still serving: a well-formed call for an unknown invocation gets its 400.
    answer = raw_exchange(
        runtime_api,
        b"POST /2018-06-01/runtime/invocation/nope/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
