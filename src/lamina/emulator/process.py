"""Child processes for execution environments, whatever event loop runs the service.

The child is started with ``subprocess.Popen`` (an exec failure — no such file,
no execute bit, not an executable format — raises at once, with its errno), and
its exit is watched through a pidfd on the event loop, or a thread where the
kernel has no pidfds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from typing import Any


class ChildProcess:
    """The small part of ``asyncio.subprocess.Process`` an environment uses."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._watch(loop)

    @classmethod
    def spawn(cls, argv: list[str], **options: Any) -> ChildProcess:
        """Start ``argv``; ``options`` go to ``subprocess.Popen``."""
        return cls(subprocess.Popen(argv, **options))

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

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
