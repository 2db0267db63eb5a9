"""Warm-invoke latency of lamina against AWS's own emulator and runtime client.

What is measured: sequential, warm invokes of a function whose handler returns its
event, sent over one kept-alive HTTP connection to the Invoke API
(``POST /2015-03-31/functions/{name}/invocations``), the way boto3 calls Lambda.
Each invoke is timed from the request being written to the last byte of the answer
being read, so a number covers the whole round trip: client → service → Runtime API
→ runtime client → handler → back.

Two things vary, giving a two-by-two table:

- the service: ``lamina serve`` or AWS's Runtime Interface Emulator (RIE);
- the runtime client in the function's process: lamina's (``python -m
  lamina.runtime``) or AWS's ``awslambdaric``.

Why: RIE and awslambdaric are what AWS ships, so they are the bar. Holding one
side fixed shows where a difference comes from — the service's per-invoke work, or
the runtime client's. Cold starts are left out on purpose: a warm-up runs first and
is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RIE = BIN / "aws-lambda-rie"
LAMINA = BIN / "lamina"

DEFAULT_INVOKES = 2000
DEFAULT_WARMUP = 50
READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.02
STOP_GRACE_S = 5.0
REQUEST_TIMEOUT_S = 30.0
LOG_TAIL_BYTES = 2000

HANDLER = "app.handler"
ECHO_SOURCE = "def handler(event, context):\n    return event\n"
PYTHON_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
FUNCTIONS = {"lamina": "EchoLaminaRuntime", "awslambdaric": "EchoAwslambdaric"}
RIE_FUNCTION = "function"  # RIE serves one function, always under this name


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


@dataclass(frozen=True)
class Target:
    """One cell of the table: a service and the runtime client under it."""

    service: str  # "lamina" or "RIE"
    runtime: str  # "lamina" or "awslambdaric"

    @property
    def label(self) -> str:
        return f"{self.service} service + {self.runtime} runtime"


TARGETS = [
    Target("lamina", "lamina"),
    Target("lamina", "awslambdaric"),
    Target("RIE", "lamina"),
    Target("RIE", "awslambdaric"),
]


@dataclass(frozen=True)
class Result:
    service: str
    runtime: str
    invokes: int
    invokes_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    # CPU time the runtime client's process spent per measured invoke.
    runtime_cpu_us: float


@dataclass(frozen=True)
class Ratio:
    """``first`` against ``second``: >1 throughput or <1 latency means first is faster."""

    first: str
    second: str
    under: str
    throughput: float
    p50: float
    runtime_cpu: float


@dataclass(frozen=True)
class Endpoint:
    """Where a started target answers, and where its log goes."""

    port: int
    path: str
    process: subprocess.Popen[bytes]
    log: Path


# -- the function ---------------------------------------------------------------


def write_function(root: Path) -> Path:
    """The echo function's code folder and a SAM template for ``lamina serve``."""
    code = root / "code"
    code.mkdir()
    (code / "app.py").write_text(ECHO_SOURCE)
    bootstrap = code / "bootstrap"
    python = shlex.quote(sys.executable)
    bootstrap.write_text(f"#!/bin/sh\nexec {python} -m awslambdaric {HANDLER}\n")
    bootstrap.chmod(0o755)

    resources = []
    for runtime, name in FUNCTIONS.items():
        kind = PYTHON_RUNTIME if runtime == "lamina" else "provided.al2023"
        resources.append(
            f"  {name}:\n"
            "    Type: AWS::Serverless::Function\n"
            "    Properties:\n"
            f"      Runtime: {kind}\n"
            "      CodeUri: code/\n"
            f"      Handler: {HANDLER}\n"
        )
    (root / "template.yaml").write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n" + "".join(resources)
    )
    return code


# -- processes ------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now; held together so that they differ."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a grace period, then SIGKILL; a Ctrl-C while waiting kills at once."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(
    argv: list[str], cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` with its output in ``log``; stop it however the block ends."""
    with log.open("wb") as out:
        # A session of its own: a Ctrl-C reaches only this script, which then
        # stops the child itself rather than racing the child's own shutdown.
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


def log_tail(log: Path) -> str:
    try:
        data = log.read_bytes()[-LOG_TAIL_BYTES:]
    except OSError:
        return "(no log)"
    return data.decode("utf-8", "replace").strip() or "(empty log)"


def is_answering(port: int, path: str) -> bool:
    """Any HTTP answer at all means the server is up."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def wait_ready(endpoint: Endpoint, probe_path: str, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        code = endpoint.process.poll()
        if code is not None:
            raise BenchError(
                f"{what} exited with status {code} before it was ready; its log:\n"
                + log_tail(endpoint.log)
            )
        if is_answering(endpoint.port, probe_path):
            return
        time.sleep(READY_POLL_S)
    raise BenchError(
        f"{what} did not answer within {READY_TIMEOUT_S:.0f} s; its log:\n"
        + log_tail(endpoint.log)
    )


# -- the two services -------------------------------------------------------------


@contextlib.contextmanager
def lamina_service(target: Target, root: Path) -> Iterator[Endpoint]:
    (port,) = free_ports(1)
    argv = [str(LAMINA), "serve", "-t", str(root / "template.yaml")]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    # AWS's emulator isolates and limits nothing: compare with lamina's lightest
    # backend that still enforces Lambda's limits (bench/sandbox.py compares them all).
    argv += ["--sandbox", "fallback"]
    log = root / f"lamina-{target.runtime}.log"
    with running(argv, root, dict(os.environ), log) as process:
        path = f"/2015-03-31/functions/{FUNCTIONS[target.runtime]}/invocations"
        endpoint = Endpoint(port, path, process, log)
        wait_ready(endpoint, "/2015-03-31/functions/", "lamina serve")
        yield endpoint


@contextlib.contextmanager
def rie_service(target: Target, root: Path, code: Path) -> Iterator[Endpoint]:
    invoke_port, runtime_port = free_ports(2)
    env = dict(os.environ, LAMBDA_TASK_ROOT=str(code))
    if target.runtime == "lamina":
        env.update(_HANDLER=HANDLER, PYTHONPATH=str(REPO / "src"))
        runtime = [sys.executable, "-m", "lamina.runtime"]
    else:
        runtime = [sys.executable, "-m", "awslambdaric", HANDLER]
    argv = [
        str(RIE),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{invoke_port}",
        "--runtime-api-address",
        f"127.0.0.1:{runtime_port}",
        *runtime,
    ]
    log = root / f"rie-{target.runtime}.log"
    with running(argv, code, env, log) as process:
        path = f"/2015-03-31/functions/{RIE_FUNCTION}/invocations"
        endpoint = Endpoint(invoke_port, path, process, log)
        wait_ready(endpoint, "/", "aws-lambda-rie")
        yield endpoint


def started(
    target: Target, root: Path, code: Path
) -> contextlib.AbstractContextManager[Endpoint]:
    if target.service == "lamina":
        return lamina_service(target, root)
    return rie_service(target, root, code)


# -- the client -------------------------------------------------------------------


def invoke_all(
    connection: http.client.HTTPConnection, path: str, count: int
) -> tuple[list[int], int, list[bytes]]:
    """``count`` invokes in a row: per-invoke ns, total ns, and the answers."""
    latencies: list[int] = []
    answers: list[bytes] = []
    headers = {"Content-Type": "application/json"}
    began = time.perf_counter_ns()
    for i in range(count):
        body = b'{"n": %d}' % i
        sent = time.perf_counter_ns()
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        answer = response.read()
        latencies.append(time.perf_counter_ns() - sent)
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            raise BenchError(f"invoke {i} answered {response.status}: {answer[:300]!r}")
        answers.append(answer)
    return latencies, time.perf_counter_ns() - began, answers


def check_echoes(answers: list[bytes]) -> None:
    # Checked after the timed loop so that parsing costs nothing in the numbers.
    for i, answer in enumerate(answers):
        try:
            echoed = json.loads(answer)
        except ValueError:
            echoed = None
        if echoed != {"n": i}:
            raise BenchError(f'invoke {i} did not echo {{"n": {i}}}: {answer[:300]!r}')


def percentile(ordered: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def runtime_pid(service_pid: int) -> int:
    """The runtime client's process: the one child of the service."""
    children = []
    for task in os.listdir(f"/proc/{service_pid}/task"):
        with open(f"/proc/{service_pid}/task/{task}/children") as listing:
            children += [int(pid) for pid in listing.read().split()]
    if len(children) != 1:
        raise BenchError(f"expected one runtime process, found {children}")
    return children[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(
    target: Target, latencies: list[int], total_ns: int, cpu_s: float
) -> Result:
    ordered = sorted(latencies)
    ms = 1e-6
    return Result(
        service=target.service,
        runtime=target.runtime,
        invokes=len(ordered),
        invokes_per_s=len(ordered) / (total_ns * 1e-9),
        p50_ms=percentile(ordered, 0.50) * ms,
        p99_ms=percentile(ordered, 0.99) * ms,
        mean_ms=sum(ordered) / len(ordered) * ms,
        min_ms=ordered[0] * ms,
        max_ms=ordered[-1] * ms,
        runtime_cpu_us=cpu_s / len(ordered) * 1e6,
    )


def measure(target: Target, root: Path, code: Path, args: argparse.Namespace) -> Result:
    progress(f"{target.label}: starting")
    with started(target, root, code) as endpoint:
        connection = http.client.HTTPConnection(
            "127.0.0.1", endpoint.port, timeout=REQUEST_TIMEOUT_S
        )
        try:
            progress(f"{target.label}: {args.warmup} warm-up invokes")
            invoke_all(connection, endpoint.path, args.warmup)
            progress(f"{target.label}: {args.invokes} measured invokes")
            runtime = runtime_pid(endpoint.process.pid)
            cpu_before = cpu_seconds(runtime)
            latencies, total_ns, answers = invoke_all(
                connection, endpoint.path, args.invokes
            )
            cpu_s = cpu_seconds(runtime) - cpu_before
            check_echoes(answers)
        except (BenchError, OSError, http.client.HTTPException) as exc:
            raise BenchError(
                f"{target.label}: {exc}\nservice log:\n{log_tail(endpoint.log)}"
            ) from exc
        finally:
            connection.close()
    return summarise(target, latencies, total_ns, cpu_s)


# -- the report -------------------------------------------------------------------


def compare(first: Result, second: Result, differing: str) -> Ratio:
    """Two results that differ only in ``differing`` ("service" or "runtime")."""
    held = "runtime" if differing == "service" else "service"
    return Ratio(
        first=f"{getattr(first, differing)} {differing}",
        second=f"{getattr(second, differing)} {differing}",
        under=f"{getattr(first, held)} {held}",
        throughput=first.invokes_per_s / second.invokes_per_s,
        p50=first.p50_ms / second.p50_ms,
        runtime_cpu=first.runtime_cpu_us / second.runtime_cpu_us,
    )


def ratios(results: list[Result]) -> list[Ratio]:
    """Each of lamina's sides against AWS's, with the other side held fixed."""
    cell = {(r.service, r.runtime): r for r in results}
    found = [
        compare(cell["lamina", runtime], cell["RIE", runtime], "service")
        for runtime in ("lamina", "awslambdaric")
    ]
    found += [
        compare(cell[service, "lamina"], cell[service, "awslambdaric"], "runtime")
        for service in ("lamina", "RIE")
    ]
    return found


def render(results: list[Result], found: list[Ratio], args: argparse.Namespace) -> str:
    lines = [
        f"Warm invokes, one after another on one kept-alive connection: "
        f"{args.warmup} warm-up, then {args.invokes} measured per target.",
        "",
        f"{'service':<8} {'runtime client':<14} {'invokes/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'runtime CPU/invoke':>19}",
    ]
    for r in results:
        lines.append(
            f"{r.service:<8} {r.runtime:<14} {r.invokes_per_s:>10.1f} "
            f"{r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.runtime_cpu_us:>16.0f} us"
        )
    lines += [
        "",
        f"{'comparison':<40} {'held fixed':<20} {'throughput':>10} {'p50':>7}"
        f" {'runtime CPU':>12}",
    ]
    for ratio in found:
        what = f"{ratio.first} vs {ratio.second}"
        lines.append(
            f"{what:<40} {ratio.under:<20} {ratio.throughput:>9.2f}x {ratio.p50:>6.2f}x"
            f" {ratio.runtime_cpu:>11.2f}x"
        )
    lines.append(
        "(throughput above 1x, or p50 and runtime CPU below 1x: the first one is faster)"
    )
    return "\n".join(lines)


def write_json(
    path: Path, results: list[Result], found: list[Ratio], args: argparse.Namespace
) -> None:
    document = {
        "invokes": args.invokes,
        "warmup": args.warmup,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results],
        "ratios": [asdict(r) for r in found],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# -- the command ------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def add_invoke_args(parser: argparse.ArgumentParser, invokes_help: str) -> None:
    """--invokes, --warmup and --json, as every benchmark here takes them."""
    parser.add_argument(
        "--invokes", type=positive, default=DEFAULT_INVOKES, help=invokes_help
    )
    parser.add_argument(
        "--warmup", type=positive, default=DEFAULT_WARMUP, help="uncounted, first"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write numbers here")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_invoke_args(parser, "measured per target")
    return parser.parse_args(argv)


def check_services() -> None:
    """lamina and AWS's emulator are where the benchmarks start them."""
    if not RIE.is_file():
        raise BenchError(
            f"AWS's emulator is not at {RIE}; "
            "run make test or python scripts/fetch_rie.py first"
        )
    if not LAMINA.is_file():
        raise BenchError(f"no lamina command at {LAMINA}; run pip install -e . first")


def check_prerequisites() -> None:
    check_services()
    if importlib.util.find_spec("awslambdaric") is None:
        raise BenchError("awslambdaric is not installed; run pip install -e '.[test]'")


def run(args: argparse.Namespace) -> list[Result]:
    check_prerequisites()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-") as tmp:
        root = Path(tmp)
        code = write_function(root)
        return [measure(target, root, code, args) for target in TARGETS]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


T = TypeVar("T")


def guarded(work: Callable[[], T]) -> T:
    """``work()``; a ``BenchError`` or an interrupt ends the program with one line.

    SIGTERM unwinds like Ctrl-C, so every started process is still stopped.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return work()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("bench: interrupted; every started process was stopped", file=sys.stderr)
        raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = guarded(lambda: run(args))

    found = ratios(results)
    print(render(results, found, args))
    if args.json is not None:
        write_json(args.json, results, found, args)
        progress(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
