"""Handlers that meet Lambda's limits: memory, open files, freezing between invokes."""

import os
import resource
import threading
import time

_ticker = None


def allocate(event, context):
    # One touched megabyte at a time, so resident memory grows as it goes.
    blocks = [b"\x01" * (1 << 20) for _ in range(event["mb"])]
    return {"mb": len(blocks), "pid": os.getpid()}


def open_files(event, context):
    return list(resource.getrlimit(resource.RLIMIT_NOFILE))


def tick(path):
    while True:
        with open(path, "ab") as counter:
            counter.write(b".")
        time.sleep(0.05)


def ticker(event, context):
    """Starts a thread that adds a byte to a file every 50 ms, and lets it run."""
    global _ticker
    if _ticker is None:
        _ticker = threading.Thread(target=tick, args=(event["path"],), daemon=True)
        _ticker.start()
    time.sleep(event.get("wait", 0))
    return {"pid": os.getpid()}


def threads(event, context):
    """Starts up to ``n`` threads that wait; returns how many could start."""
    release = threading.Event()
    started = []
    error = None
    try:
        for _ in range(event["n"]):
            thread = threading.Thread(target=release.wait, daemon=True)
            thread.start()
            started.append(thread)
    except RuntimeError as exc:
        error = str(exc)
    release.set()
    for thread in started:
        thread.join()
    return {"started": len(started), "error": error}


def fill_tmp(event, context):
    """Writes ``mb`` megabytes to /tmp; returns how many fit and the error."""
    written = 0
    error = None
    path = "/tmp/fill"
    try:
        with open(path, "wb") as out:
            for _ in range(event["mb"]):
                out.write(b"\0" * (1 << 20))
                out.flush()
                written += 1
    except OSError as exc:
        error = exc.strerror
    finally:
        if os.path.exists(path):
            os.remove(path)
    return {"written_mb": written, "error": error}


def _can_write(path):
    try:
        with open(path, "w") as out:
            out.write("x")
    except OSError as exc:
        return exc.strerror
    if not path.startswith("/proc"):
        os.remove(path)
    return "ok"


def layout(event, context):
    """What the function sees of its execution environment."""
    opt = {}
    for root, _, files in os.walk("/opt"):
        for name in files:
            with open(os.path.join(root, name)) as file:
                opt[os.path.join(root, name)] = file.read().strip()
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "file": __file__,
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "writes": {
            # An existing setting: an invalid value changes nothing even if written.
            place: _can_write(
                f"{place}/swappiness" if place.startswith("/proc") else f"{place}/probe"
            )
            for place in (
                "/tmp",
                "/var/task",
                "/opt",
                "/etc",
                "/",
                "/var",
                "/root",
                "/dev/shm",
                "/run",
                "/proc/sys/vm",
            )
        },
        "opt": opt,
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "run": sorted(os.listdir("/run")),
    }
