"""``lamina doctor``: how this machine runs execution environments, and what it lacks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lamina.emulator import pythonrt, sandbox

PYTHON_VERSIONS = [f"3.{minor}" for minor in range(8, 15)]


def report(mode: str | None = None) -> list[str]:
    try:
        backend = sandbox.choose(mode)
    except sandbox.SandboxUnavailable as exc:
        asked = mode or os.environ.get("LAMINA_SANDBOX") or "auto"
        message = f"lamina: --sandbox {asked} is not available here: {exc}"
        raise SystemExit(message) from None
    lines = [f"backend: {backend.name}"]
    if backend.hierarchy is not None:
        lines.append(f"  {backend.hierarchy.describe()}")
    if backend.bwrap is not None:
        lines.append(f"  bubblewrap: {backend.bwrap.path}")
    lines += [f"  missing: {note}" for note in backend.notes]
    if backend.bwrap is not None and os.geteuid() == 0:
        lines.append(
            "  as root: uid 993 in the sandbox is root outside its user namespace "
            "(README: Not yet like Lambda); run as an ordinary user for an "
            "unprivileged sandbox"
        )
    backend.close()

    lines.append("")
    lines.append("limits enforced:")
    enforcements = backend.enforcements()
    lines += [f"  {e.limit}: {e.how}" for e in enforcements if e.is_enforced]
    lines.append("limits not enforced:")
    missing = [f"  {e.limit}: {e.how}" for e in enforcements if not e.is_enforced]
    lines += missing or ["  none"]

    lines.append("")
    lines.append("Python interpreters:")
    for version_name in PYTHON_VERSIONS:
        path, is_exact = pythonrt.interpreter_for(version_name)
        found = path if is_exact else f"not found; would run under {path}"
        lines.append(f"  python{version_name:<5} {found}")

    lines.append("")
    rie = Path(sys.executable).parent / "aws-lambda-rie"
    is_there = rie.is_file() and os.access(rie, os.X_OK)
    lines.append(
        "AWS's emulator (for reference): "
        + (str(rie) if is_there else "not installed (make test fetches it)")
    )
    return lines


def run_doctor(mode: str | None = None) -> int:
    print("\n".join(report(mode)))
    return 0
