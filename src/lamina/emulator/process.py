"""Child processes for execution environments, whatever event loop runs the service.

The child is started with ``subprocess.Popen`` (an exec failure — no such file,
no execute bit, not an executable format — raises at once, with its errno), and
its exit is watched through a pidfd on the event loop, or a thread where the
kernel has no pidfds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import threading
from collections.abc import Iterable
from typing import Any, ClassVar


class ChildProcess:
    """The small part of ``asyncio.subprocess.Process`` an environment uses."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._watch(loop)

    # Every process started through here, while it runs: what is not in this set
    # among the service's children is an orphan it adopted.
    running: ClassVar[set[int]] = set()

    @classmethod
    def spawn(cls, argv: list[str], **options: Any) -> ChildProcess:
        """Start ``argv``; ``options`` go to ``subprocess.Popen``."""
        child = cls(subprocess.Popen(argv, **options))
        ChildProcess.running.add(child.pid)
        child._exited.add_done_callback(
            lambda _: ChildProcess.running.discard(child.pid)
        )
        return child

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    def poll(self) -> int | None:
        """The exit status if the process has ended, found out now (not when the
        event loop next looks), or None while it runs."""
        if not self._exited.done():
            code = self._popen.poll()
            if code is not None:
                self._settle(code)
        return self.returncode

    def main_pid(self) -> int | None:
        """The process the environment is about (inside a sandbox: not the wrapper)."""
        return self.pid

    def send_signal(self, sig: int) -> None:
        if not self._exited.done():
            self._popen.send_signal(sig)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            threading.Thread(
                target=self._wait_in_thread, args=(loop,), daemon=True
            ).start()
            return

        def exited() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._settle(self._popen.wait())

        loop.add_reader(pidfd, exited)

    def _wait_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        code = self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed first
            loop.call_soon_threadsafe(self._settle, code)

    def _settle(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)


def exit_reason(returncode: int) -> str:
    """How Lambda words a process's end: ``signal: killed``, ``exit status 3``."""
    if returncode < 0:
        sig = signal.Signals(-returncode)
        name = {
            signal.SIGKILL: "killed",
            signal.SIGSEGV: "segmentation fault",
            signal.SIGTERM: "terminated",
            signal.SIGABRT: "aborted",
        }.get(sig, sig.name)
        return f"signal: {name}"
    return f"exit status {returncode}"


def signal_groups(pgids: Iterable[int], sig: int) -> None:
    """Signal whole process groups; ones already gone are no error."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


# -- orphans -----------------------------------------------------------------------
#
# A function can start a process in a session of its own (setsid): ending the
# environment's process group does not reach it, and without cgroups nothing else
# would. As a child subreaper the service becomes the parent of such orphans when
# their own parents end, so it can find them among its children and end them.

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def libc() -> Any:
    """The C library, loaded once: call it in the parent before children fork."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """In a child before exec: the kernel kills it when lamina dies, however."""
    with contextlib.suppress(OSError, AttributeError):
        libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux); False where impossible."""
    try:
        return bool(libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.update(int(child) for child in listing.read().split())
    except (OSError, ValueError):
        pass
    return found


def end_orphans(known: set[int]) -> list[int]:
    """SIGKILL and reap this process's children that are not in ``known``."""
    ended = []
    for pid in children_of(os.getpid()) - known:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
        ended.append(pid)
    return ended
