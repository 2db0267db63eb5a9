"""``lamina demo``: invoke every function of a template on its sample events.

Each function runs on the bundled events its template names under
``Metadata: {Lamina: {SampleEvents: [...]}}`` (an empty event when none), and the
run ends with a table of the invokes: what a person would otherwise dig out of
REPORT lines.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass

from lamina import events
from lamina.emulator import aio
from lamina.emulator.function import FunctionRef
from lamina.emulator.invocation import Outcome
from lamina.emulator.invoke_request import InvokeRequest
from lamina.emulator.logs import StreamSink
from lamina.emulator.service import LambdaService
from lamina.emulator.template import find_template, load_template

_BOLD, _DIM, _RED, _GREEN, _RESET = (
    "\033[1m",
    "\033[2m",
    "\033[31m",
    "\033[32m",
    "\033[0m",
)


@dataclass(frozen=True)
class Row:
    function: str
    event: str
    outcome: Outcome


def _style(text: str, code: str) -> str:
    return f"{code}{text}{_RESET}" if sys.stdout.isatty() else text


def _pretty(payload: bytes) -> str:
    # A stream for an HTTP caller, joined: the JSON prelude, 8 NUL bytes, the body.
    prelude, end, body = payload.partition(b"\0" * 8)
    if end and prelude.startswith(b"{"):
        return f"{_pretty(prelude)}\n{body.decode('utf-8', 'replace')}"
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload.decode("utf-8", "replace")


async def _run(service: LambdaService) -> list[Row]:
    rows = []
    try:
        for name, config in service.functions.items():
            for event in config.sample_events or ("{}",):
                payload = (
                    b"{}" if event == "{}" else json.dumps(events.load(event)).encode()
                )
                print(_style(f"\n▶ {name}  ←  {event}", _BOLD), flush=True)
                outcome = await service.invoke(
                    InvokeRequest(FunctionRef(name, "$LATEST"), payload)
                )
                service.sink.flush()  # the invoke's log before its payload
                label = "error" if outcome.is_error else "payload"
                print(_style(f"{label}:", _RED if outcome.is_error else _GREEN))
                print(_pretty(outcome.payload), flush=True)
                rows.append(Row(name, event, outcome))
    finally:
        await service.close()
    return rows


def table(rows: list[Row]) -> str:
    """The invokes as a text table: result, duration, init and memory per invoke."""
    header = ("function", "event", "result", "duration", "init", "max memory")
    lines = []
    for row in rows:
        report = row.outcome.report
        result = "ok"
        if row.outcome.is_error:
            result = report.status or "error"
            if report.error_type:
                result += f" ({report.error_type})"
            else:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    result += f" ({json.loads(row.outcome.payload)['errorType']})"
        init = (
            "warm"
            if report.init_duration_ms is None
            else f"{report.init_duration_ms:.1f} ms"
        )
        lines.append(
            (
                row.function,
                row.event,
                result,
                f"{report.duration_ms:.2f} ms",
                init,
                f"{report.max_memory_mb}/{report.memory_mb} MB",
            )
        )
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(6)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("─" * w for w in widths))
    out += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        for line in lines
    ]
    return "\n".join(out)


def run_demo(template: str | None) -> int:
    path = find_template(template)
    loaded = load_template(path)
    service = LambdaService(loaded.functions, sink=StreamSink(sys.stdout))
    print(_style(f"lamina demo: {len(loaded.functions)} functions from {path}", _BOLD))
    print(f"sandbox: {service.backend.name} (lamina doctor says what it enforces)")
    service.prepare()
    rows = aio.run(_run(service))
    print(_style("\nInvokes", _BOLD))
    print(table(rows))
    return 0
