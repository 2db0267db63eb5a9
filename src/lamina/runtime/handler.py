"""Find the handler that ``_HANDLER`` names, failing the way Lambda fails."""

from __future__ import annotations

import importlib
import sys

from lamina.runtime.faults import (
    BUILT_IN_MODULE_CONFLICT,
    HANDLER_NOT_FOUND,
    IMPORT_MODULE_ERROR,
    MALFORMED_HANDLER_NAME,
    USER_CODE_SYNTAX_ERROR,
    Fault,
)

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[[Any, Any], Any]


def split_handler(name: str) -> tuple[str, str]:
    """``pkg/mod.fn`` or ``pkg.mod.fn`` → (module as written, function)."""
    module, sep, function = name.rpartition(".")
    if not sep or not module or not function:
        raise Fault(
            MALFORMED_HANDLER_NAME,
            f"Bad handler '{name}': not enough values to unpack (expected 2, got 1)",
        )
    return module, function


def load_handler(name: str, task_root: str | None = None) -> Handler:
    """Import the module and return the function; raise ``Fault`` as Lambda names it."""
    module_name, function_name = split_handler(name)
    if task_root and task_root not in sys.path:
        sys.path.insert(0, task_root)

    if module_name.split(".")[0].split("/")[0] in sys.builtin_module_names:
        raise Fault(
            BUILT_IN_MODULE_CONFLICT,
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise Fault(
            IMPORT_MODULE_ERROR, f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(
            USER_CODE_SYNTAX_ERROR,
            f"Syntax error in module '{module_name}': {exc}",
            trace,
        ) from exc

    handler = getattr(module, function_name, None)
    if handler is None or not callable(handler):
        raise Fault(
            HANDLER_NOT_FOUND,
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler  # type: ignore[no-any-return]
