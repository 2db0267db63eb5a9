"""``lamina doctor``: how this machine runs execution environments, and what it lacks."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from lamina.emulator import limits, pythonrt

PYTHON_VERSIONS = [f"3.{minor}" for minor in range(8, 15)]
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_version(root: Path = CGROUP_ROOT) -> str | None:
    """``v2``, ``v1`` or None, from how ``/sys/fs/cgroup`` is laid out."""
    if (root / "cgroup.controllers").is_file():
        return "v2"
    if (root / "memory").is_dir():
        return "v1"
    return None


def report() -> list[str]:
    lines = [f"backend: {limits.BACKEND}"]
    version = cgroup_version()
    cgroups = f"{version} at {CGROUP_ROOT}" if version else "not found"
    lines.append(f"cgroups: {cgroups} (not used yet)")
    bwrap = shutil.which("bwrap")
    lines.append(
        f"bubblewrap: {bwrap + ' (not used yet)' if bwrap else 'not installed'}"
    )

    lines.append("")
    lines.append("limits enforced:")
    enforced = [each for each in limits.enforcements() if each.is_enforced]
    lines += [f"  {each.limit}: {each.how}" for each in enforced]
    lines.append("limits not enforced:")
    missing = [each for each in limits.enforcements() if not each.is_enforced]
    lines += [f"  {each.limit}: {each.how}" for each in missing]

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
        f"AWS's emulator (for reference): {rie if is_there else 'not installed'}"
    )
    return lines


def run_doctor() -> int:
    print("\n".join(report()))
    return 0
