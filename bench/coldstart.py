"""Cold start of a Python runtime client: lamina's against AWS's awslambdaric.

Two numbers per client, each the median of repeated fresh interpreter starts:

- **import**: what ``python -X importtime`` reports for importing the client's
  entry module (``lamina.runtime.loop`` / ``awslambdaric.bootstrap``);
- **first /next**: from starting the process to its first ``GET
  /runtime/invocation/next`` arriving at a Runtime API served here. That is the
  init phase Lambda reports as ``Init Duration`` for a function that does nothing
  at import.

Both clients start the same way: the virtualenv's real interpreter (no version
manager shim), ``-S`` and ``PYTHONPATH``, with bytecode already compiled.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = next(Path(sys.executable).parent.parent.glob("lib/python3*/site-packages"))
HANDLER = "def handler(event, context):\n    return event\n"


@dataclass(frozen=True)
class Client:
    name: str
    module: str  # imported to measure import time
    argv: list[str]  # started to measure the time to the first /next
    pythonpath: str


def clients(code: Path) -> list[Client]:
    python = sys.executable
    return [
        Client(
            "lamina",
            "lamina.runtime.loop",
            [python, "-S", "-m", "lamina.runtime"],
            f"{ROOT / 'src'}:{code}",
        ),
        Client(
            "awslambdaric",
            "awslambdaric.bootstrap",
            [python, "-S", "-m", "awslambdaric", "app.handler"],
            f"{SITE}:{code}",
        ),
    ]


def _env(client: Client, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=client.pythonpath, _HANDLER="app.handler", **extra)
    return env


def import_us(client: Client) -> int:
    """Cumulative microseconds ``-X importtime`` reports for the client's module."""
    result = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", f"import {client.module}"],
        env=_env(client),
        capture_output=True,
        text=True,
        check=True,
    )
    pattern = rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(client.module)}$"
    match = re.search(pattern, result.stderr, re.M)
    if match is None:
        raise RuntimeError(f"no import time for {client.module}:\n{result.stderr}")
    return int(match.group(1))


class FirstNext:
    """A Runtime API that only notes when a runtime first asks for an event."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.arrived = threading.Event()
        self.at = 0.0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            data = connection.recv(65536)
            if b"/runtime/invocation/next" in data:
                self.at = time.perf_counter()
                self.arrived.set()
            # Hold the long poll open: the runtime is ended by the bench.

    def close(self) -> None:
        self.server.close()


def first_next_ms(client: Client) -> float:
    api = FirstNext()
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            client.argv,
            env=_env(client, AWS_LAMBDA_RUNTIME_API=api.address),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not api.arrived.wait(20):
                raise RuntimeError(f"{client.name} never asked for an event")
            return (api.at - started) * 1000
        finally:
            process.kill()
            process.wait(timeout=10)
    finally:
        api.close()


def measure(runs: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp)
        (code / "app.py").write_text(HANDLER)
        results: dict[str, dict[str, float]] = {}
        for client in clients(code):
            print(f"coldstart: {client.name} ({runs} starts each)", file=sys.stderr)
            first_next_ms(client)  # compiles bytecode where it is missing
            imports = [import_us(client) / 1000 for _ in range(runs)]
            firsts = [first_next_ms(client) for _ in range(runs)]
            results[client.name] = {
                "import_ms": statistics.median(imports),
                "first_next_ms": statistics.median(firsts),
                "first_next_p90_ms": statistics.quantiles(firsts, n=10)[-1],
            }
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="starts per client")
    args = parser.parse_args()
    baseline = statistics.median(
        _time(lambda: subprocess.run([sys.executable, "-S", "-c", "pass"], check=True))
        for _ in range(args.runs)
    )
    results = measure(args.runs)
    ours, theirs = results["lamina"], results["awslambdaric"]
    print(
        f"\nCold start, median of {args.runs} fresh interpreters "
        f"(bare `python -S -c pass`: {baseline:.1f} ms)\n"
    )
    print(f"{'':24}{'lamina':>10}{'awslambdaric':>14}{'ratio':>8}")
    for key, label in (
        ("import_ms", "import (ms)"),
        ("first_next_ms", "first /next (ms)"),
        ("first_next_p90_ms", "first /next p90 (ms)"),
    ):
        ratio = theirs[key] / ours[key]
        print(f"{label:24}{ours[key]:>10.1f}{theirs[key]:>14.1f}{ratio:>7.1f}x")
    print("(ratio: how many times longer awslambdaric takes)")
    return 0


def _time(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    raise SystemExit(main())
