"""Lambda's limits for an execution environment, without cgroups.

The fallback backend works for any user on any Linux machine:

- **memory**: a watchdog samples the peak resident memory of the environment's
  process trees every ``SAMPLE_INTERVAL_S`` in the init and invoke phases, and
  kills them once they use more than the function's ``MemorySize``;
- **file descriptors**: ``RLIMIT_NOFILE`` of 1,024 on each process started;
- **freezing**: between invokes the environment's process groups are stopped
  (``SIGSTOP``) and continued (``SIGCONT``) before the next event, so that
  background threads make no progress while the environment is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass

from lamina.emulator.memory import MemoryProbe, peak_rss_mb
from lamina.emulator.process import signal_groups

NOFILE_LIMIT = 1024
SAMPLE_INTERVAL_S = 0.01
BACKEND = "fallback: rlimits + memory watchdog + SIGSTOP/SIGCONT freezing"


def limit_files() -> None:
    """In the child, before exec: at most 1,024 open files, as on Lambda."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > NOFILE_LIMIT:
        hard = NOFILE_LIMIT
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # TODO: Lambda's 1,024 processes and threads per environment are not enforced:
    # RLIMIT_NPROC counts every process of the user, not of one environment, so a
    # function that forks or starts threads without bound runs here and fails on
    # Lambda. Enforcing it needs the cgroup backend (pids.max).


FREEZE_AFTER_S = 0.02


class Freezer:
    """Stops an environment's process groups while it is idle, and continues them.

    The stop comes ``FREEZE_AFTER_S`` after the environment went idle, not at once:
    back-to-back invokes then cost no signals at all, while a handler's background
    thread still stands still for all but those first milliseconds of idleness.
    """

    def __init__(self, groups: Callable[[], list[int]]) -> None:
        self._groups = groups
        self.is_frozen = False
        self._soon: asyncio.TimerHandle | None = None

    def freeze_soon(self) -> None:
        if not self.is_frozen and self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(
                FREEZE_AFTER_S, self.freeze
            )

    def freeze(self) -> None:
        self._cancel()
        if not self.is_frozen:
            self.is_frozen = True
            signal_groups(self._groups(), signal.SIGSTOP)

    def thaw(self) -> None:
        self._cancel()
        # A signal sent to a stopped process (SIGTERM, a pipe closing) stays
        # pending until it runs again: thaw before anything else reaches it.
        if self.is_frozen:
            self.is_frozen = False
            signal_groups(self._groups(), signal.SIGCONT)

    def _cancel(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None


class MemoryWatchdog:
    """Kills an environment whose process trees use more than ``limit_mb``.

    The runtime's peak is read through its ``MemoryProbe`` (an open ``status``
    file, re-read in place); other trees (external extensions) are walked.
    """

    def __init__(
        self,
        limit_mb: int,
        probe: MemoryProbe,
        others: Callable[[], list[int]],
        on_exceeded: Callable[[int], None],
    ) -> None:
        self.limit_mb = limit_mb
        self._probe = probe
        self._others = others
        self._on_exceeded = on_exceeded
        self._task: asyncio.Task[None] | None = None
        self.is_watching = False

    def sample(self) -> int:
        # TODO: a page shared by forked processes counts once per process here, and
        # once on Lambda (its cgroup charges it once): a function that forks workers
        # from a large parent can be killed here and run on Lambda.
        return self._probe.peak_mb() + sum(peak_rss_mb(pid) for pid in self._others())

    def start(self) -> None:
        self.is_watching = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        # The task ends at its next sample; an invoke starting before then keeps it.
        self.is_watching = False

    def cancel(self) -> None:
        self.is_watching = False
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _watch(self) -> None:
        while self.is_watching:
            used = self.sample()
            if used > self.limit_mb:
                self.is_watching = False
                self._on_exceeded(used)
                return
            await asyncio.sleep(SAMPLE_INTERVAL_S)


@dataclass(frozen=True)
class Enforcement:
    """One of Lambda's limits, and whether (and how) this machine enforces it."""

    limit: str
    is_enforced: bool
    how: str


def enforcements() -> list[Enforcement]:
    sandbox = (
        "bubblewrap is installed but not used yet"
        if shutil.which("bwrap")
        else "bubblewrap is not installed"
    )
    return [
        Enforcement(
            "memory (MemorySize 128-10240 MB)",
            True,
            "watchdog samples the resident memory of the process trees every "
            f"{SAMPLE_INTERVAL_S * 1000:.0f} ms in the init and invoke phases; over it "
            "the environment is killed (Runtime.OutOfMemory)",
        ),
        Enforcement(
            "file descriptors (1,024)", True, f"RLIMIT_NOFILE = {NOFILE_LIMIT}"
        ),
        Enforcement(
            "freezing between invokes",
            True,
            f"SIGSTOP to the process groups {FREEZE_AFTER_S * 1000:.0f} ms after the "
            "environment goes idle, SIGCONT before the next event",
        ),
        Enforcement(
            "processes left behind",
            True,
            "lamina serve adopts what a function starts in a session of its own (child "
            "subreaper) and ends it",
        ),
        Enforcement(
            "processes and threads (1,024)",
            False,
            "RLIMIT_NPROC counts every process of the user, not one environment; "
            "needs cgroups (pids.max), not used yet",
        ),
        Enforcement(
            "CPU share proportional to memory",
            False,
            "needs cgroups (cpu.max), not used yet",
        ),
        Enforcement(
            "/tmp size (EphemeralStorage) and a read-only /var/task",
            False,
            f"needs a mount namespace; {sandbox}",
        ),
        Enforcement(
            "network and filesystem isolation",
            False,
            f"needs namespaces; {sandbox}",
        ),
    ]
