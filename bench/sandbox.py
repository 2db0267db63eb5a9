"""Cold starts and warm invokes of lamina under each sandbox backend, against RIE.

What is measured, for each ``lamina serve --sandbox MODE`` with MODE one of
``auto``, ``cgroups``, ``fallback`` and ``plain``, on one service per backend:

- **cold start**: the template has K identical functions whose handler returns
  its event, and each is invoked once, so each invoke starts a new execution
  environment. Two numbers per function: the wall time of that first invoke, from
  the request being written to the answer being read, and the ``Init Duration``
  of the REPORT line the service sends back in ``X-Amz-Log-Result`` (asked for
  with ``X-Amz-Log-Type: Tail``). Reported as median and p90 over the K functions.
- **warm invokes**: then, on the same service, sequential invokes of one of those
  functions over one kept-alive connection after a warm-up, timed as ``run.py``
  times them.

AWS's emulator (RIE) running lamina's runtime client is measured the same way in
the same run: RIE serves one function and starts its runtime on the first
invoke, so the first invoke of each of K fresh RIE processes is a cold start, and
its ``INIT REPORT`` log line gives the init phase.

Why: a sandbox is paid for mostly when an environment starts (bubblewrap's
namespaces and mounts, a cgroup per environment) and a little on every invoke
(thawing, the fallback's memory watchdog). ``plain`` runs no sandbox at all, so
a backend against ``plain`` is the price of its isolation and limits; against
RIE it is where lamina stands next to what AWS ships.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from run import (
    ECHO_SOURCE,
    HANDLER,
    LAMINA,
    PYTHON_RUNTIME,
    READY_POLL_S,
    REQUEST_TIMEOUT_S,
    BenchError,
    Endpoint,
    Target,
    add_invoke_args,
    check_echoes,
    check_services,
    free_ports,
    guarded,
    invoke_all,
    log_tail,
    measure,
    percentile,
    positive,
    progress,
    rie_service,
    running,
    wait_ready,
)

MODES = ("auto", "cgroups", "fallback", "plain")
BASELINE = "plain"
REFERENCE = "RIE"
DEFAULT_FUNCTIONS = 15
LOG_LINE_TIMEOUT_S = 5.0

SANDBOX_LINE = re.compile(r"^\s*sandbox: (.+)$", re.MULTILINE)
INIT_DURATION = re.compile(r"\bInit Duration: ([0-9.]+) ms")
RIE_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
RIE_RUNTIME = Target("RIE", "lamina")


class Unavailable(BenchError):
    """This machine cannot run the backend asked for; the message is lamina's own."""


@dataclass(frozen=True)
class Row:
    """One backend's numbers: its cold starts and its warm invokes."""

    sandbox: str  # the --sandbox MODE, or "RIE"
    backend: str  # as the service printed it
    cold_ns: list[int]  # first invoke of each function, in the order invoked
    init_ms: list[float]  # Init Duration of those invokes; empty if not reported
    invokes: int
    invokes_per_s: float
    p50_us: float
    p99_us: float

    @property
    def cold_p50_ms(self) -> float:
        return statistics.median(self.cold_ns) * 1e-6

    @property
    def cold_p90_ms(self) -> float:
        return percentile(sorted(self.cold_ns), 0.90) * 1e-6

    @property
    def init_p50_ms(self) -> float | None:
        return statistics.median(self.init_ms) if self.init_ms else None


@dataclass(frozen=True)
class Skipped:
    sandbox: str
    why: str


@dataclass(frozen=True)
class Ratios:
    """A row against the baseline and the reference; None where one is missing.

    ``cold_*``: its median first invoke over the other's (above 1x: slower to
    start). ``warm_*``: its invokes/s over the other's (below 1x: slower).
    """

    sandbox: str
    cold_vs_plain: float | None
    cold_vs_rie: float | None
    warm_vs_plain: float | None
    warm_vs_rie: float | None


# -- the functions ----------------------------------------------------------------


def write_functions(root: Path, count: int) -> tuple[Path, Path, list[str]]:
    """``count`` identical echo functions: template, shared code folder, names."""
    code = root / "code"
    code.mkdir()
    (code / "app.py").write_text(ECHO_SOURCE)

    names = [f"Echo{i}" for i in range(1, count + 1)]
    resources = "".join(
        f"  {name}:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        f"      Runtime: {PYTHON_RUNTIME}\n"
        "      CodeUri: code/\n"
        f"      Handler: {HANDLER}\n"
        for name in names
    )
    template = root / "template.yaml"
    template.write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n" + resources
    )
    return template, code, names


def invoke_path(name: str) -> str:
    return f"/2015-03-31/functions/{name}/invocations"


# -- the services -----------------------------------------------------------------


def wait_for_line(log: Path, pattern: re.Pattern[str], what: str) -> re.Match[str]:
    """The first match of ``pattern`` in a log that is still being written."""
    deadline = time.monotonic() + LOG_LINE_TIMEOUT_S
    while True:
        match = pattern.search(log.read_text(errors="replace"))
        if match is not None:
            return match
        if time.monotonic() >= deadline:
            raise BenchError(f"no {what} in the log within {LOG_LINE_TIMEOUT_S:.0f} s")
        time.sleep(READY_POLL_S)


def refusal(log: Path) -> str | None:
    """lamina's one-line reason for exiting, if it exited with one."""
    lines = log.read_text(errors="replace").strip().splitlines()
    if lines and lines[-1].startswith("lamina: "):
        return lines[-1]
    return None


@contextlib.contextmanager
def sandboxed_service(mode: str, root: Path, template: Path) -> Iterator[Endpoint]:
    """``lamina serve --sandbox mode``, ready for invokes; Unavailable if refused."""
    (port,) = free_ports(1)
    argv = [str(LAMINA), "serve", "--sandbox", mode, "-t", str(template)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    log = root / f"lamina-{mode}.log"
    with running(argv, root, dict(os.environ), log) as process:
        endpoint = Endpoint(port, invoke_path("Echo1"), process, log)
        try:
            wait_ready(
                endpoint, "/2015-03-31/functions/", f"lamina serve --sandbox {mode}"
            )
        except BenchError as exc:
            # A backend this machine lacks is refused with a message, not a crash.
            reason = refusal(log) if process.poll() else None
            if reason is not None:
                raise Unavailable(reason) from exc
            raise
        yield endpoint


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            found += [int(child) for child in listing.read().split()]
    return found


# -- the client -------------------------------------------------------------------


def first_invoke(
    connection: http.client.HTTPConnection, name: str, path: str
) -> tuple[int, str]:
    """One invoke with its log tail asked for: elapsed ns and the decoded tail."""
    event = json.dumps({"function": name}).encode()
    headers = {"Content-Type": "application/json", "X-Amz-Log-Type": "Tail"}
    if connection.sock is None:
        connection.connect()  # so that the invoke is timed, not the TCP handshake

    sent = time.perf_counter_ns()
    connection.request("POST", path, event, headers)
    response = connection.getresponse()
    answer = response.read()
    elapsed = time.perf_counter_ns() - sent

    if response.status != 200 or response.getheader("X-Amz-Function-Error"):
        raise BenchError(f"{name} answered {response.status}: {answer[:300]!r}")
    if json.loads(answer) != json.loads(event):
        raise BenchError(f"{name} did not echo {event!r}: {answer[:300]!r}")
    tail = base64.b64decode(response.getheader("X-Amz-Log-Result") or "")
    return elapsed, tail.decode("utf-8", "replace")


def warm_invokes(
    endpoint: Endpoint, args: argparse.Namespace
) -> tuple[float, float, float]:
    """invokes/s, p50 µs and p99 µs of ``args.invokes`` measured warm invokes."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", endpoint.port, timeout=REQUEST_TIMEOUT_S
    )
    try:
        invoke_all(connection, endpoint.path, args.warmup)
        latencies, total_ns, answers = invoke_all(
            connection, endpoint.path, args.invokes
        )
    finally:
        connection.close()
    check_echoes(answers)

    ordered = sorted(latencies)
    return (
        len(ordered) / (total_ns * 1e-9),
        percentile(ordered, 0.50) * 1e-3,
        percentile(ordered, 0.99) * 1e-3,
    )


# -- lamina under each backend ----------------------------------------------------


def cold_starts(endpoint: Endpoint, names: list[str]) -> tuple[list[int], list[float]]:
    """The first invoke of every function: wall ns, and Init Duration in ms."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", endpoint.port, timeout=REQUEST_TIMEOUT_S
    )
    walls: list[int] = []
    inits: list[float] = []
    try:
        for name in names:
            elapsed, tail = first_invoke(connection, name, invoke_path(name))
            init = INIT_DURATION.search(tail)
            if init is None:
                # No init phase means an environment was already running.
                raise BenchError(f"{name}: no Init Duration in its REPORT:\n{tail}")
            walls.append(elapsed)
            inits.append(float(init.group(1)))
    finally:
        connection.close()
    return walls, inits


def measure_backend(
    mode: str, root: Path, template: Path, names: list[str], args: argparse.Namespace
) -> Row:
    progress(f"{mode}: starting lamina serve --sandbox {mode}")
    with sandboxed_service(mode, root, template) as endpoint:
        try:
            printed = wait_for_line(endpoint.log, SANDBOX_LINE, "sandbox: line")
            backend = printed.group(1).strip()
            progress(f"{mode}: sandbox: {backend}")

            progress(f"{mode}: {len(names)} cold starts, one per function")
            walls, inits = cold_starts(endpoint, names)
            progress(
                f"{mode}: first invoke median {statistics.median(walls) * 1e-6:.1f} ms,"
                f" Init Duration median {statistics.median(inits):.1f} ms"
            )

            progress(f"{mode}: {args.warmup} warm-up + {args.invokes} measured invokes")
            per_s, p50_us, p99_us = warm_invokes(endpoint, args)
            progress(f"{mode}: {per_s:.0f} invokes/s, p50 {p50_us:.0f} µs")
        except (BenchError, OSError, http.client.HTTPException, ValueError) as exc:
            raise BenchError(
                f"--sandbox {mode}: {exc}\nservice log:\n{log_tail(endpoint.log)}"
            ) from exc
    return Row(mode, backend, walls, inits, args.invokes, per_s, p50_us, p99_us)


# -- the reference: AWS's emulator ------------------------------------------------


def rie_cold_start(root: Path, code: Path) -> tuple[int, float | None]:
    """One fresh RIE and its first invoke: wall ns, and the init phase it logged."""
    with rie_service(RIE_RUNTIME, root, code) as endpoint:
        if children(endpoint.process.pid):
            raise BenchError("RIE started its runtime before the first invoke")
        connection = http.client.HTTPConnection(
            "127.0.0.1", endpoint.port, timeout=REQUEST_TIMEOUT_S
        )
        try:
            elapsed, _ = first_invoke(connection, "RIE", endpoint.path)
        finally:
            connection.close()

        # RIE's REPORT line gives no real Init Duration; its INIT REPORT does.
        try:
            report = wait_for_line(endpoint.log, RIE_INIT_REPORT, "INIT REPORT")
        except BenchError:
            return elapsed, None
        return elapsed, float(report.group(1))


def measure_rie(root: Path, code: Path, args: argparse.Namespace) -> Row:
    progress(f"{REFERENCE}: {args.functions} cold starts, a fresh RIE each")
    walls: list[int] = []
    inits: list[float] = []
    try:
        for _ in range(args.functions):
            elapsed, init = rie_cold_start(root, code)
            walls.append(elapsed)
            if init is not None:
                inits.append(init)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise BenchError(f"{REFERENCE}: {exc}") from exc
    progress(
        f"{REFERENCE}: first invoke median {statistics.median(walls) * 1e-6:.1f} ms"
    )

    warm = measure(RIE_RUNTIME, root, code, args)
    return Row(
        REFERENCE,
        "aws-lambda-rie + lamina runtime client",
        walls,
        inits,
        warm.invokes,
        warm.invokes_per_s,
        warm.p50_ms * 1e3,
        warm.p99_ms * 1e3,
    )


# -- the report -------------------------------------------------------------------


def against(row: Row, other: Row | None) -> tuple[float | None, float | None]:
    """Cold p50 over the other's, and invokes/s over the other's."""
    if other is None:
        return None, None
    return row.cold_p50_ms / other.cold_p50_ms, row.invokes_per_s / other.invokes_per_s


def ratios(rows: list[Row]) -> list[Ratios]:
    by_sandbox = {row.sandbox: row for row in rows}
    found = []
    for row in rows:
        cold_vs_plain, warm_vs_plain = against(row, by_sandbox.get(BASELINE))
        cold_vs_rie, warm_vs_rie = against(row, by_sandbox.get(REFERENCE))
        found.append(
            Ratios(row.sandbox, cold_vs_plain, cold_vs_rie, warm_vs_plain, warm_vs_rie)
        )
    return found


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()} "
        f"({sys.executable})"
    )


def times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def render(
    outcomes: list[Row | Skipped], found: list[Ratios], args: argparse.Namespace
) -> str:
    rows = [row for row in outcomes if isinstance(row, Row)]
    width = max([len(row.backend) for row in rows] + [len("backend (as printed)")])
    rule = "-" * (9 + width + 51)
    lines = [
        f"machine: {machine()}",
        f"cold start: the first invoke of each of {args.functions} echo functions, "
        "each starting an execution environment",
        f"warm: {args.invokes} sequential invokes of one function after "
        f"{args.warmup} warm-up, one kept-alive connection",
        "",
        f"{'':<9}{'':<{width}}  {'cold start, ms':^23}  {'warm invokes':^24}",
        f"{'sandbox':<9}{'backend (as printed)':<{width}}  {'p50':>6} {'p90':>6} "
        f"{'Init p50':>9}  {'per s':>8} {'p50 µs':>7} {'p99 µs':>7}",
        rule,
    ]
    for row in outcomes:
        if isinstance(row, Skipped):
            lines.append(f"{row.sandbox:<9}skipped: {row.why}")
            continue
        init = "—" if row.init_p50_ms is None else f"{row.init_p50_ms:.1f}"
        lines.append(
            f"{row.sandbox:<9}{row.backend:<{width}}  {row.cold_p50_ms:>6.1f} "
            f"{row.cold_p90_ms:>6.1f} {init:>9}  "
            f"{row.invokes_per_s:>8.0f} {row.p50_us:>7.0f} {row.p99_us:>7.0f}"
        )
    lines.append(
        "(cold start: the first invoke's wall time; Init p50: the Init Duration "
        "reported, RIE's from its INIT REPORT)"
    )

    lines += [
        "",
        f"{'':<9}{'cold p50 vs':^16}  {'warm per s vs':^16}",
        f"{'sandbox':<9}{'plain':>7} {'RIE':>8}  {'plain':>7} {'RIE':>8}",
        "-" * 43,
    ]
    for r in found:
        lines.append(
            f"{r.sandbox:<9}{times(r.cold_vs_plain):>7} {times(r.cold_vs_rie):>8}  "
            f"{times(r.warm_vs_plain):>7} {times(r.warm_vs_rie):>8}"
        )
    lines.append("(cold above 1x: slower to start; warm below 1x: fewer invokes/s)")
    return "\n".join(line.rstrip() for line in lines)


def write_json(
    path: Path,
    outcomes: list[Row | Skipped],
    found: list[Ratios],
    args: argparse.Namespace,
) -> None:
    rows = [row for row in outcomes if isinstance(row, Row)]
    skipped = [skip for skip in outcomes if isinstance(skip, Skipped)]
    document = {
        "functions": args.functions,
        "invokes": args.invokes,
        "warmup": args.warmup,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rows": [
            asdict(row)
            | {
                "cold_p50_ms": row.cold_p50_ms,
                "cold_p90_ms": row.cold_p90_ms,
                "init_p50_ms": row.init_p50_ms,
            }
            for row in rows
        ],
        "skipped": [asdict(skip) for skip in skipped],
        "ratios": [asdict(r) for r in found],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# -- the command ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--functions",
        type=positive,
        default=DEFAULT_FUNCTIONS,
        help="cold starts per backend, one function each",
    )
    add_invoke_args(parser, "warm, per backend")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[Row | Skipped]:
    """Each backend in turn, then the reference; a row or a reason for each."""
    check_services()
    outcomes: list[Row | Skipped] = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-sandbox-") as tmp:
        root = Path(tmp)
        template, code, names = write_functions(root, args.functions)
        for mode in MODES:
            try:
                outcomes.append(measure_backend(mode, root, template, names, args))
            except Unavailable as exc:
                progress(f"{mode}: skipped, not available here: {exc}")
                outcomes.append(Skipped(mode, str(exc)))
        outcomes.append(measure_rie(root, code, args))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    outcomes = guarded(lambda: run(args))

    found = ratios([row for row in outcomes if isinstance(row, Row)])
    print(render(outcomes, found, args))
    progress(f"took {time.monotonic() - started:.0f} s")
    if args.json is not None:
        write_json(args.json, outcomes, found, args)
        progress(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
