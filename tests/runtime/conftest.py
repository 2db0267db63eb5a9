"""Fixtures for the runtime client: handler folders, and a real Runtime API to post to."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lamina.emulator.http import serve
from lamina.emulator.invocation import PendingInvocation
from lamina.emulator.runtime_api import (
    RuntimeAPIHandler,
    RuntimeResult,
    is_streamed_response,
)
from lamina.runtime.api import RuntimeAPI
from lamina.runtime.loop import Runner
from tests.conftest import ROOT

if TYPE_CHECKING:
    from lamina.runtime.handler import Handler

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"


def modules_imported_by(code: str, *, after: str = "") -> list[str]:
    """The modules a fresh ``python -S`` imports to run ``code``, once ``after`` ran.

    The probe prints names one a line, so it imports nothing of its own to report.
    """
    probe = (
        f"import sys\n{after}\nbefore = set(sys.modules)\n{code}\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def _lives_under(module: object, root: str) -> bool:
    places = [getattr(module, "__file__", None) or ""]
    places += [str(entry) for entry in getattr(module, "__path__", [])]
    return any(place.startswith(root) for place in places)


@pytest.fixture
def task_root(tmp_path: Path) -> Iterator[Path]:
    """A folder to write handler modules into; imports from it are undone after."""
    root = tmp_path / "task"
    root.mkdir()
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    importlib.invalidate_caches()

    yield root

    sys.path[:] = path_before
    # Decide first, then delete: a namespace package's __path__ looks up its parent.
    imported = [
        name
        for name, module in list(sys.modules.items())
        if name not in modules_before and _lives_under(module, str(root))
    ]
    for name in imported:
        del sys.modules[name]
    for entry in [key for key in sys.path_importer_cache if key.startswith(str(root))]:
        del sys.path_importer_cache[entry]
    importlib.invalidate_caches()


InvokeThroughAPI = Callable[..., RuntimeResult]


@pytest.fixture
def invoke_through_api(monkeypatch: pytest.MonkeyPatch) -> InvokeThroughAPI:
    """Run one event through ``Runner`` against the emulator's Runtime API on loopback.

    Returns what the Runtime API recorded for the invocation: the body the runtime
    posted and the error type it named in its header.
    """
    # Runner.handle sets the trace id for the handler; put the variable back after.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "")
    ids = itertools.count(1)

    def invoke(handler: Handler, payload: bytes = b"{}") -> RuntimeResult:
        request_id = f"req-{next(ids)}"

        async def scenario() -> RuntimeResult:
            api = RuntimeAPIHandler()
            # Served as an execution environment serves it: streamed responses
            # are read as they arrive, and their trailers with them.
            server = await serve(
                api.handle, "127.0.0.1", 0, streaming=is_streamed_response
            )
            port = server.sockets[0].getsockname()[1]
            pending = PendingInvocation(
                request_id=request_id,
                payload=payload,
                deadline_ms=4_000_000_000_000,
                function_arn=FUNCTION_ARN,
                trace_id="Root=1-00000000-000000000000000000000001",
            )
            api.dispatch(pending)
            client = RuntimeAPI(f"127.0.0.1:{port}")

            def runtime() -> None:
                # After answering, the runtime asks for the next event with the
                # same write; none comes, and closing the client ends the wait.
                with contextlib.suppress(OSError, EOFError, ValueError):
                    Runner(client, handler).handle(client.next())

            threading.Thread(target=runtime, daemon=True).start()
            try:
                return await asyncio.wait_for(asyncio.shield(pending.result), 10)
            finally:
                client.close()
                server.close()
                api.close()

        return asyncio.run(scenario())

    return invoke
