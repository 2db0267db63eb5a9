"""The namespaces sandbox: Lambda's file system layout, user and pid namespace, /tmp
cap, layers at /opt, and nothing left behind — cgroups included — after a stop or a
crash of ``lamina serve``.

These tests need bubblewrap that can make namespaces (the project's setup installs
it; as root it always can) and, for the cgroup parts, cgroups this user may write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lamina.emulator import cgroups, sandbox
from tests.conftest import (
    Served,
    code_dir,
    function_yaml,
    invoke_with_log,
    lamina,
    pid_alive,
    stop_process,
    wait_for,
)
from tests.emulator.test_extensions import RECORDER

BACKEND = sandbox.backend("auto")
pytestmark = pytest.mark.skipif(
    BACKEND.bwrap is None, reason="bubblewrap cannot make namespaces here"
)
needs_cgroups = pytest.mark.skipif(
    BACKEND.hierarchy is None, reason="no writable cgroups here"
)


def _layer(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    for relative, text in files.items():
        path = tmp_path / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if relative.startswith("extensions/"):
            path.chmod(0o755)
    return (
        f"\n  {name}:\n    Type: AWS::Serverless::LayerVersion"
        f"\n    Properties:\n      ContentUri: {name}"
    )


def _serve(serve: Callable[..., Served], text: str) -> Served:
    return serve(text, "--sandbox", "namespaces")


def test_the_function_sees_lambdas_layout_and_only_tmp_is_writable(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    text = (
        "Resources:"
        + _layer(tmp_path, "base", {"data/a.txt": "base a", "data/b.txt": "base b"})
        + _layer(tmp_path, "over", {"data/b.txt": "over b", "bin/tool": "over tool"})
        + function_yaml("fn", "limited.layout", Layers="[!Ref base, !Ref over]")
    )
    served = _serve(serve, text)

    seen, answer, _ = invoke_with_log(served, "fn", {})

    assert "FunctionError" not in answer, seen
    assert (seen["uid"], seen["gid"]) == (993, 990)
    assert seen["cwd"] == seen["task_root"] == "/var/task"
    assert seen["file"] == "/var/task/limited.py"
    assert seen["writes"] == {
        "/tmp": "ok",
        "/var/task": "Read-only file system",
        "/opt": "Read-only file system",
        "/etc": "Read-only file system",
        "/": "Read-only file system",
        "/var": "Read-only file system",
        "/root": "Read-only file system",
        "/dev/shm": "Read-only file system",
        "/run": "Read-only file system",
        "/proc/sys/vm": "Read-only file system",
    }
    # Layers merge into /opt in order: the later layer's file wins.
    assert seen["opt"] == {
        "/opt/data/a.txt": "base a",
        "/opt/data/b.txt": "over b",
        "/opt/bin/tool": "over tool",
    }
    # None of the machine's service sockets (/run holds at most the resolver's files).
    assert set(seen["run"]) <= {"systemd", "resolvconf"}
    # Its own pid namespace: bubblewrap's init is 1, the runtime 2.
    assert seen["pid"] == 2
    assert max(seen["processes"]) < 10


def test_tmp_holds_ephemeral_storage_and_no_more(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    # /tmp is a tmpfs: under cgroups its files count as memory, hence 1024 MB.
    text = "Resources:" + function_yaml(
        "fn", "limited.fill_tmp", MemorySize=1024, Timeout=30
    )
    served = _serve(serve, text)

    payload, answer, _ = invoke_with_log(served, "fn", {"mb": 600})

    assert "FunctionError" not in answer, payload
    assert payload == {"written_mb": 512, "error": "No space left on device"}


def test_a_layer_extension_runs_in_the_sandbox_too(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    recorder = f"#!{sys.executable}\n" + RECORDER.read_text()
    text = (
        "Resources:"
        + _layer(tmp_path, "ext", {"extensions/recorder": recorder})
        + function_yaml(
            "fn",
            "behave.echo",
            Layers="[!Ref ext]",
            Environment="{Variables: {EXTENSION_RECORD: /dev/stdout}}",
        )
    )
    served = _serve(serve, text)

    payload, answer, log = invoke_with_log(served, "fn", {"n": 1})

    assert "FunctionError" not in answer, payload
    assert "EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE,SHUTDOWN]" in log
    request_id = answer["ResponseMetadata"]["RequestId"]
    wait_for(
        lambda: served.output.matching(f'"requestId": "{request_id}"'),
        5,
        "the extension's record of the INVOKE",
    )


def test_a_missing_or_unrunnable_bootstrap_is_an_invalid_entrypoint(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    missing = tmp_path / "missing"
    missing.mkdir()
    unrunnable = tmp_path / "unrunnable"
    unrunnable.mkdir()
    (unrunnable / "bootstrap").write_text("#!/bin/sh\necho hi\n")
    # Saved with Windows line endings: the interpreter is "/bin/sh\r".
    crlf = tmp_path / "crlf"
    crlf.mkdir()
    (crlf / "bootstrap").write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    (crlf / "bootstrap").chmod(0o755)
    text = "Resources:" + "".join(
        f"\n  {name}:\n    Type: AWS::Serverless::Function\n    Properties:"
        f"\n      Runtime: provided.al2023\n      Handler: x\n      CodeUri: {name}"
        for name in ("missing", "unrunnable", "crlf")
    )
    served = _serve(serve, text)

    missing_payload, _, _ = invoke_with_log(served, "missing", {})
    unrunnable_payload, _, _ = invoke_with_log(served, "unrunnable", {})
    crlf_payload, _, log = invoke_with_log(served, "crlf", {})

    assert crlf_payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert "bwrap" not in log

    assert missing_payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert "Couldn't find valid bootstrap(s)" in missing_payload["errorMessage"]
    assert unrunnable_payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert "permission denied" in unrunnable_payload["errorMessage"]


def test_sigterm_reaches_the_runtime_inside_the_sandbox(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    code_dir(tmp_path)
    text = "Resources:" + function_yaml(
        "fn",
        "shutdown_hook.handler",
        Environment="{Variables: {SHUTDOWN_MARKER: /dev/stdout}}",
    )
    served = _serve(serve, text)
    invoke_with_log(served, "fn", {})

    served.process.send_signal(signal.SIGINT)
    served.process.wait(timeout=10)

    # The hook ran: the runtime (pid 2 inside) got SIGTERM, not just a SIGKILL.
    wait_for(lambda: served.output.matching("pid=2"), 5, "the shutdown hook's line")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _lamina_cgroups(pid: int) -> list[Path]:
    return [
        path
        for path in Path("/sys/fs/cgroup").glob(f"**/lamina-{pid}")
        if path.is_dir()
    ]


def _echo_template(tmp_path: Path) -> str:
    code_dir(tmp_path)
    return "Resources:" + function_yaml("fn", "behave.echo")


@needs_cgroups
def test_nothing_is_left_after_serve_stops(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = _serve(serve, _echo_template(tmp_path))
    invoke_with_log(served, "fn", {})
    assert _lamina_cgroups(served.process.pid), "the environment has a cgroup"

    stop_process(served.process)

    assert _lamina_cgroups(served.process.pid) == []


@needs_cgroups
def test_after_a_crash_the_next_start_takes_the_cgroups_away(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    served = _serve(serve, _echo_template(tmp_path))
    invoke_with_log(served, "fn", {})
    members = [
        int(pid)
        for folder in _lamina_cgroups(served.process.pid)
        for procs in folder.glob("env-*/cgroup.procs")
        for pid in procs.read_text().split()
    ]
    assert members

    # Idle, the environment is frozen: a SIGKILL must still end it.
    wait_for(
        lambda: all(_state(pid) == "T" for pid in members),
        5,
        "the environment to freeze",
    )
    served.process.send_signal(signal.SIGKILL)
    served.process.wait(timeout=10)
    # The kernel ends the sandbox with its parent (no process is left) ...
    wait_for(lambda: not any(map(pid_alive, members)), 5, "the sandbox to end")
    assert _lamina_cgroups(served.process.pid)  # ... but not the cgroup folders.

    # The next lamina (serve, invoke or doctor) sweeps them.
    result = lamina("doctor", "--sandbox", "auto")

    assert result.returncode == 0, result.stderr
    assert _lamina_cgroups(served.process.pid) == []


def test_asking_for_a_sandbox_this_machine_lacks_is_a_clear_error(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template.yaml"
    code_dir(tmp_path)
    template.write_text("Resources:" + function_yaml("fn", "behave.echo"))
    env = dict(os.environ, PATH="/nonexistent")

    result = lamina(
        "invoke", "fn", "-t", str(template), "--sandbox", "namespaces", env=env
    )

    assert result.returncode != 0
    assert "bubblewrap (bwrap) is not on PATH" in result.stderr
    assert "apt-get install bubblewrap" in result.stderr
    assert "Traceback" not in result.stderr


UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.mark.skipif(
    not (UNIFIED / "cgroup.procs").exists() or not os.access(UNIFIED, os.W_OK),
    reason="no writable cgroup2 mount at /sys/fs/cgroup/unified",
)
def test_a_v2_cgroup_freezes_thaws_and_kills_its_processes() -> None:
    hierarchy = cgroups.v2_at(UNIFIED)
    group = hierarchy.create(memory_mb=128)
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"]
    )
    try:
        Path(group.procs_files[0]).write_text(str(child.pid))
        assert group.members() == [child.pid]
        events = group.folders["unified"] / "cgroup.events"

        group.freeze()
        wait_for(lambda: "frozen 1" in events.read_text(), 5, "the cgroup to freeze")
        group.thaw()
        wait_for(lambda: "frozen 0" in events.read_text(), 5, "the cgroup to thaw")

        group.freeze()  # killing a frozen cgroup still ends it
        group.remove()

        assert child.wait(timeout=5) == -signal.SIGKILL
        assert not group.folders["unified"].exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        hierarchy.close()
    assert not hierarchy.parents["unified"].exists()


def test_doctor_names_this_machines_backend_and_what_it_enforces(
    tmp_path: Path,
) -> None:
    result = lamina("doctor", "--sandbox", "auto", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    backend = result.stdout.splitlines()[0]
    assert backend.startswith("backend: namespaces (bubblewrap)")
    enforced = result.stdout.split("limits enforced:")[1].split("limits not")[0]
    assert "only /tmp writable: bubblewrap mounts" in enforced
    if BACKEND.hierarchy is not None:
        assert f"+ cgroup {BACKEND.hierarchy.version}" in backend
        assert "pids.max = 1024" in enforced
        assert "limits not enforced:\n  none\n" in result.stdout
