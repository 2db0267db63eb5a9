"""Lambda's limits on an execution environment, with the fallback backend."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Served, code_dir, function_yaml, wait_for


def _template(tmp_path: Path) -> str:
    code_dir(tmp_path)
    return (
        "Resources:"
        + function_yaml("allocate", "limited.allocate", MemorySize=128, Timeout=30)
        + function_yaml("files", "limited.open_files")
        + function_yaml("ticker", "limited.ticker")
    )


def _invoke(
    served: Served, name: str, event: object
) -> tuple[Any, dict[str, Any], str]:
    answer = served.client().invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event), LogType="Tail"
    )
    log = base64.b64decode(answer["LogResult"]).decode()
    return json.loads(answer["Payload"].read()), answer, log


def _max_memory_mb(log: str) -> int:
    match = re.search(r"Max Memory Used: (\d+) MB", log)
    assert match, log
    return int(match.group(1))


def test_over_memory_size_is_out_of_memory_and_the_next_invoke_is_cold(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = serve(_template(tmp_path))

    payload, answer, log = _invoke(served, "allocate", {"mb": 300})

    request_id = answer["ResponseMetadata"]["RequestId"]
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": f"RequestId: {request_id} Error: "
        "Runtime exited with error: signal: killed",
    }
    assert "Status: error\tError Type: Runtime.OutOfMemory" in log
    assert _max_memory_mb(log) == 128

    payload, answer, log = _invoke(served, "allocate", {"mb": 1})

    assert "FunctionError" not in answer
    assert payload["mb"] == 1
    assert "Init Duration" in log  # a new environment
    assert _max_memory_mb(log) < 100


def test_open_files_are_limited_to_1024(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = serve(_template(tmp_path))

    payload, _, _ = _invoke(served, "files", {})

    assert payload == [1024, 1024]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_background_threads_make_no_progress_between_invokes(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = serve(_template(tmp_path))
    counter = tmp_path / "counter"

    payload, _, _ = _invoke(served, "ticker", {"path": str(counter)})
    wait_for(lambda: _state(payload["pid"]) == "T", 5, "the idle environment to stop")
    frozen_at = counter.stat().st_size
    time.sleep(1)  # the window watched: a running thread would tick 20 times

    assert counter.stat().st_size == frozen_at
    assert _state(payload["pid"]) == "T"

    # It runs again while the next invoke does.
    again, _, _ = _invoke(served, "ticker", {"path": str(counter), "wait": 0.2})

    assert again["pid"] == payload["pid"]
    assert counter.stat().st_size > frozen_at
