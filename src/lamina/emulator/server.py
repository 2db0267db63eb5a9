"""Run the Invoke API on a port until Ctrl-C or SIGTERM, then leave nothing behind."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable

from lamina.emulator import http
from lamina.emulator.errors import ListenError
from lamina.emulator.invoke_api import InvokeAPI
from lamina.emulator.service import LambdaService

logger = logging.getLogger(__name__)


async def serve(
    service: LambdaService,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until a stop signal; then stop every execution environment."""
    try:
        await service.start_events()
        service.adopt_orphans()
        service.start_reaper()
        server = await http.serve(InvokeAPI(service).handle, host, port)
    except OSError as exc:
        await service.close()
        raise _cannot_listen(host, port, exc) from exc

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    try:
        if on_ready is not None:
            on_ready(bound_host, bound_port)
        await stop.wait()
    finally:
        server.close()
        await service.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _cannot_listen(host: str, port: int, exc: OSError) -> ListenError:
    if isinstance(exc, socket.gaierror):
        return ListenError(host, port, "cannot resolve this host", "host")
    if exc.errno == errno.EADDRINUSE:
        return ListenError(host, port, "address already in use", "port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(host, port, "not an address of this machine", "host")
    if exc.errno == errno.EACCES:
        return ListenError(host, port, "permission denied", "port")
    return ListenError(host, port, (exc.strerror or str(exc)).lower())
