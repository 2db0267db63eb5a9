"""Python ``logging`` configured as on Lambda, at no cost to functions that never log.

Lambda's Python runtime puts its handler on the root logger before the function's
code is imported. Doing the same here would import ``logging`` on every cold start:
measured with ``python -X importtime -S``, that is about 5 ms (logging pulls in
traceback, threading, string, weakref, ...), more than half of what this runtime
client costs to import. So the handler is installed at the moment ``logging`` is
first imported, by whoever imports it: a finder at the front of ``sys.meta_path``
lets the usual finders find the module and configures it as soon as it has run. No
code can look at a logger before importing ``logging``, so what the function sees
is what it would see on Lambda; a function that never logs never pays.
"""

from __future__ import annotations

import sys

from lamina.runtime.logsink import sink

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any


def configure_logging() -> None:
    """Open the record sink now; install the logging handler now or on import."""
    sink()  # takes the telemetry pipe out of the environment before any child starts
    if "logging" in sys.modules:
        _install()
    else:
        sys.meta_path.insert(0, WhenImported("logging", _install))


def _install() -> None:
    try:
        from lamina.runtime.loghandler import install

        install()
    except Exception as exc:
        # The function's ``import logging`` must work whatever happens here.
        sink().write(f"lamina.runtime: logging is not configured: {exc!r}")


class WhenImported:
    """A ``sys.meta_path`` finder that runs ``then`` once ``name`` has been imported.

    It finds nothing itself; it asks the finders after it, and wraps the loader
    they return. After its one use it stays in place but answers nothing: taking
    it out of the list could make another thread's import, walking the same list
    at that moment, skip a finder.
    """

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name = name
        self.then: Callable[[], None] | None = then

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != self.name or self.then is None:
            return None
        then, self.then = self.then, None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    # The import system needs create_module and exec_module only.
                    wrapped: Any = _ThenLoader(spec.loader, then)
                    spec.loader = wrapped
                return spec
        return None


class _ThenLoader:
    """Runs a module with its own loader, then calls ``then``."""

    def __init__(self, loader: Any, then: Callable[[], None]) -> None:
        self.loader = loader
        self.then = then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its real loader: reload() and tools that read it see
        # nothing of this.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.then()
