"""Lambda's limits for one execution environment, whichever backend enforces them.

With cgroups (``CgroupLimits``) the kernel enforces memory and the 1,024
processes, reports the peak and the OOM kill, and freezes the whole cgroup.
The fallback (``FallbackLimits``) works for any user on any Linux machine:

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
import signal
from collections.abc import Callable

from lamina.emulator.cgroups import Cgroup
from lamina.emulator.memory import MemoryProbe, peak_rss_mb
from lamina.emulator.process import ChildProcess, signal_groups

NOFILE_LIMIT = 1024
SAMPLE_INTERVAL_S = 0.01


def limit_files() -> None:
    """In the child, before exec: at most 1,024 open files, as on Lambda."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > NOFILE_LIMIT:
        hard = NOFILE_LIMIT
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


FREEZE_AFTER_S = 0.02


class Freezer:
    """Freezes an idle environment, and thaws it for the next event.

    The freeze comes ``FREEZE_AFTER_S`` after the environment went idle, not at
    once: back-to-back invokes then cost nothing, while a handler's background
    thread still stands still for all but those first milliseconds of idleness.
    """

    def __init__(self, freeze: Callable[[], None], thaw: Callable[[], None]) -> None:
        self._freeze = freeze
        self._thaw = thaw
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
            self._freeze()

    def thaw(self) -> None:
        self._cancel()
        # A signal sent to a stopped process (SIGTERM, a pipe closing) stays
        # pending until it runs again: thaw before anything else reaches it.
        if self.is_frozen:
            self.is_frozen = False
            self._thaw()

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


class EnvironmentLimits:
    """The fallback: RLIMIT_NOFILE, the memory watchdog, SIGSTOP/SIGCONT freezing.

    ``groups`` gives the environment's process groups (the runtime's and each
    external extension's); ``on_exceeded`` is called with the MB used when the
    watchdog finds the environment over ``memory_mb``.
    """

    def __init__(
        self,
        memory_mb: int,
        groups: Callable[[], list[int]],
        on_exceeded: Callable[[int], None],
    ) -> None:
        self.memory_mb = memory_mb
        self._groups = groups
        self._on_exceeded = on_exceeded
        self._probe: MemoryProbe | None = None
        self._watchdog: MemoryWatchdog | None = None
        self.freezer = Freezer(self._stop_groups, self._continue_groups)

    def child_setup(self) -> None:
        """In each of the environment's processes, before exec."""
        limit_files()

    def started(self, process: ChildProcess, others: Callable[[], list[int]]) -> None:
        """The environment's process runs (bubblewrap, when sandboxed, with the
        runtime inside); ``others`` gives the extensions' processes."""
        self._probe = MemoryProbe(process.pid)
        self._watchdog = MemoryWatchdog(
            self.memory_mb, self._probe, others, self._on_exceeded
        )

    def watch(self) -> None:
        """An init or invoke phase begins: thawed, and the memory limit watched."""
        self.freezer.thaw()
        if self._watchdog is not None:
            self._watchdog.start()

    def rest(self) -> None:
        """No invoke runs: stop watching, freeze soon."""
        if self._watchdog is not None:
            self._watchdog.stop()
        self.freezer.freeze_soon()

    def peak_mb(self) -> int:
        return self._probe.peak_mb() if self._probe is not None else 1

    def was_out_of_memory(self) -> bool:
        """Whether the kernel killed a process for memory (the watchdog says itself)."""
        return False

    def kill(self) -> None:
        self.freezer.thaw()
        signal_groups(self._groups(), signal.SIGKILL)

    def close(self) -> None:
        self.freezer.thaw()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._probe is not None:
            self._probe.close()

    def _stop_groups(self) -> None:
        signal_groups(self._groups(), signal.SIGSTOP)

    def _continue_groups(self) -> None:
        signal_groups(self._groups(), signal.SIGCONT)


class CgroupLimits(EnvironmentLimits):
    """The kernel enforces the limits: one cgroup holds every process of the environment."""

    def __init__(
        self,
        cgroup: Cgroup,
        memory_mb: int,
        groups: Callable[[], list[int]],
        on_exceeded: Callable[[int], None],
    ) -> None:
        super().__init__(memory_mb, groups, on_exceeded)
        self.cgroup = cgroup
        self.freezer = Freezer(cgroup.freeze, cgroup.thaw)
        self._process: ChildProcess | None = None

    def child_setup(self) -> None:
        super().child_setup()
        self.cgroup.join()

    def started(self, process: ChildProcess, others: Callable[[], list[int]]) -> None:
        # The kernel watches the memory: no watchdog; the probe is made once the
        # runtime inside the sandbox is known.
        self._process = process

    def peak_mb(self) -> int:
        # The cgroup is charged only for the pages it brought in first: shared
        # libraries another process loaded before count in the runtime's resident
        # set only. The runtime itself is probed, not the tree (bubblewrap's
        # processes around it): one read per invoke.
        if self._probe is None and self._process is not None:
            pid = self._process.main_pid()
            if pid is not None:
                self._probe = MemoryProbe(pid)
        return max(self.cgroup.peak_mb(), super().peak_mb())

    def was_out_of_memory(self) -> bool:
        return self.cgroup.oom_kills() > 0

    def kill(self) -> None:
        self.freezer.thaw()
        self.cgroup.kill()

    def close(self) -> None:
        super().close()
        self.cgroup.remove()


class PlainLimits(EnvironmentLimits):
    """No limits at all: the last resort where neither cgroups nor /proc work."""

    def child_setup(self) -> None:
        pass

    def started(self, process: ChildProcess, others: Callable[[], list[int]]) -> None:
        pass

    def rest(self) -> None:
        pass
