"""Shutdown hooks: what the function runs when Lambda ends its execution environment.

Lambda sends the runtime process SIGTERM at shutdown when the function has
extensions (lamina sends it to every runtime), then SIGKILL once the grace period
is over. ``on_shutdown`` turns that SIGTERM into a clean exit: the hooks run, each
on its own, then the process exits with status 0.

The handler is installed by the first ``on_shutdown`` call, not at import: a
function without hooks keeps Python's default (SIGTERM ends the process) and its
cold start pays nothing. ``_signal`` is the C module under ``signal``; the Python
one would import ``enum``.
"""

from __future__ import annotations

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, ModuleType
    from typing import TypeVar

    Hook = TypeVar("Hook", bound=Callable[[], object])

_hooks: list[Callable[[], object]] = []


def on_shutdown(hook: Hook) -> Hook:
    """Run ``hook()`` when the environment shuts down; usable as a decorator.

    Hooks run newest first, in the main thread, even while the runtime waits for
    its next event. They share the grace period Lambda gives the runtime (at
    least 300 ms), so they should be quick: flush, close, let go.
    """
    if not _hooks:
        _install()
    _hooks.append(hook)
    return hook


def _install() -> None:
    _signal = _signal_module()
    try:
        _signal.signal(_signal.SIGTERM, _on_sigterm)
    except ValueError as exc:  # only the main thread may set a signal handler
        raise RuntimeError(
            "on_shutdown must first be called from the main thread, "
            "for example when the handler's module is imported"
        ) from exc


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _signal = _signal_module()
    # A second SIGTERM must not cut the hooks short.
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    run_hooks()
    # Unwinds the main thread from wherever it was (a read of /next, most often),
    # so that atexit handlers and finally blocks run too.
    raise SystemExit(0)


def _signal_module() -> ModuleType:
    if TYPE_CHECKING:  # the same functions, typed
        import signal as _signal
    else:
        import _signal
    return _signal


def run_hooks() -> None:
    """Run the registered hooks once, newest first; a failing hook is logged."""
    hooks = _hooks[::-1]
    _hooks.clear()
    for hook in hooks:
        try:
            hook()
        except Exception as exc:
            _log_failure(hook, exc)


def _log_failure(hook: Callable[[], object], exc: Exception) -> None:
    from lamina.runtime.faults import exception_payload
    from lamina.runtime.logsink import log_error

    payload = exception_payload(exc)
    name = getattr(hook, "__qualname__", repr(hook))
    payload["errorMessage"] = (
        f"on_shutdown hook {name} failed: {payload['errorMessage']}"
    )
    log_error(payload)
