"""Run the Invoke API on a port until Ctrl-C or SIGTERM, then leave nothing behind."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from lamina.emulator import http
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
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    server = await http.serve(InvokeAPI(service).handle, host, port)
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
