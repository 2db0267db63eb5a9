"""Lambda's limits on an execution environment, on each backend.

``auto`` is this machine's best (bubblewrap + cgroups where the tests run as
root); ``fallback`` is rlimits, the memory watchdog and SIGSTOP freezing.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from lamina.emulator import sandbox
from tests.conftest import Served, code_dir, function_yaml, invoke_with_log, wait_for

BACKENDS = ["auto", "fallback"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _has_cgroups() -> bool:
    return sandbox.backend("auto").hierarchy is not None


def _template(tmp_path: Path) -> str:
    code_dir(tmp_path)
    return (
        "Resources:"
        + function_yaml("allocate", "limited.allocate", MemorySize=128, Timeout=30)
        + function_yaml("files", "limited.open_files")
        + function_yaml("ticker", "limited.ticker")
        + function_yaml("threads", "limited.threads", Timeout=30)
    )


def _max_memory_mb(log: str) -> int:
    match = re.search(r"Max Memory Used: (\d+) MB", log)
    assert match, log
    return int(match.group(1))


def test_over_memory_size_is_out_of_memory_and_the_next_invoke_is_cold(
    tmp_path: Path, serve: Callable[..., Served], backend: str
) -> None:
    served = serve(_template(tmp_path), "--sandbox", backend)

    payload, answer, log = invoke_with_log(served, "allocate", {"mb": 300})

    request_id = answer["ResponseMetadata"]["RequestId"]
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": f"RequestId: {request_id} Error: "
        "Runtime exited with error: signal: killed",
    }
    assert "Status: error\tError Type: Runtime.OutOfMemory" in log
    assert _max_memory_mb(log) == 128

    payload, answer, log = invoke_with_log(served, "allocate", {"mb": 1})

    assert "FunctionError" not in answer
    assert payload["mb"] == 1
    assert "Init Duration" in log  # a new environment
    assert _max_memory_mb(log) < 100


def test_open_files_are_limited_to_1024(
    tmp_path: Path, serve: Callable[..., Served], backend: str
) -> None:
    served = serve(_template(tmp_path), "--sandbox", backend)

    payload, _, _ = invoke_with_log(served, "files", {})

    assert payload == [1024, 1024]


def test_processes_and_threads_are_limited_to_1024(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    if not _has_cgroups():
        pytest.skip(
            "needs cgroups (pids.max); the fallback cannot count per environment"
        )
    served = serve(_template(tmp_path), "--sandbox", "auto")

    payload, answer, _ = invoke_with_log(served, "threads", {"n": 1100})

    assert "FunctionError" not in answer
    # The runtime's own threads (and bubblewrap's) count among the 1,024.
    assert 1000 < payload["started"] < 1024
    assert payload["error"] == "can't start new thread"

    again, _, _ = invoke_with_log(
        served, "threads", {"n": 900}
    )  # all ended: room again

    assert again == {"started": 900, "error": None}


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def _is_frozen(pid: int) -> bool:
    """Frozen by its cgroup's freezer, or stopped by SIGSTOP."""
    with open(f"/proc/{pid}/cgroup") as listing:
        for line in listing:
            _, names, path = line.rstrip("\n").split(":", 2)
            if "/lamina-" not in path:
                continue
            if "freezer" in names.split(","):
                state = Path(
                    "/sys/fs/cgroup/freezer", path.lstrip("/"), "freezer.state"
                )
                return state.read_text().strip() == "FROZEN"
            if names == "":
                events = Path("/sys/fs/cgroup", path.lstrip("/"), "cgroup.events")
                return "frozen 1" in events.read_text()
    return _state(pid) == "T"


def _host_pid_seeing(path: str) -> int:
    """The host pid of the Python process whose file system holds ``path``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text()
            if comm.startswith("python") and os.path.exists(
                f"/proc/{entry}/root{path}"
            ):
                return int(entry)
        except OSError:
            continue
    raise AssertionError(f"no process sees {path}")


def test_background_threads_make_no_progress_between_invokes(
    tmp_path: Path, serve: Callable[..., Served], backend: str
) -> None:
    served = serve(_template(tmp_path), "--sandbox", backend)
    is_sandboxed = backend == "auto" and sandbox.backend("auto").bwrap is not None
    # In the sandbox only /tmp is writable: the counter is read through /proc.
    inside = f"/tmp/counter-{uuid.uuid4().hex}" if is_sandboxed else str(tmp_path / "c")

    payload, _, _ = invoke_with_log(served, "ticker", {"path": inside})
    pid = _host_pid_seeing(inside) if is_sandboxed else payload["pid"]
    counter = Path(f"/proc/{pid}/root{inside}" if is_sandboxed else inside)
    wait_for(lambda: _is_frozen(pid), 5, "the idle environment to freeze")
    frozen_at = counter.stat().st_size
    time.sleep(1)  # the window watched: a running thread would tick 20 times

    assert counter.stat().st_size == frozen_at
    assert _is_frozen(pid)

    # It runs again while the next invoke does.
    again, _, _ = invoke_with_log(served, "ticker", {"path": inside, "wait": 0.2})

    assert again["pid"] == payload["pid"]
    assert counter.stat().st_size > frozen_at
