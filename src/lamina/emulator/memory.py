"""How much memory an execution environment used: its peak resident set, in MB."""

from __future__ import annotations

import os


def _vm_hwm_kb(status: bytes) -> int:
    start = status.find(b"VmHWM:")
    if start < 0:
        return 0
    return int(status[start + 6 : status.index(b"kB", start)])


def peak_rss_mb(pid: int) -> int:
    """Peak resident memory of a process and its descendants, in MB."""
    total_kb = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/status", "rb") as status:
                total_kb += _vm_hwm_kb(status.read())
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", "rb") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return max(1, round(total_kb / 1024))


class MemoryProbe:
    """Reads an environment's peak memory cheaply enough to do after every invoke.

    The bootstrap's own ``status`` file is kept open and re-read in place; the
    whole process tree is walked only when the bootstrap has started children.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._status = self._children = -1
        try:
            self._status = os.open(f"/proc/{pid}/status", os.O_RDONLY)
            self._children = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)
        except OSError:
            self.close()

    def peak_mb(self) -> int:
        if self._status < 0 or self._children < 0:
            return peak_rss_mb(self.pid)
        try:
            if os.pread(self._children, 64, 0).strip():
                return peak_rss_mb(self.pid)
            return max(1, round(_vm_hwm_kb(os.pread(self._status, 4096, 0)) / 1024))
        except (OSError, ValueError):
            return peak_rss_mb(self.pid)

    def close(self) -> None:
        for fd in (self._status, self._children):
            if fd >= 0:
                os.close(fd)
        self._status = self._children = -1
