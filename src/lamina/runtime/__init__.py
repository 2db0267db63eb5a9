"""The function side: run a Python handler as a Lambda runtime.

``python -m lamina.runtime`` runs the handler named by ``_HANDLER``;
``lamina.runtime.run(handler)`` runs a callable. This package imports only the
standard library and nothing else from lamina, so it can ship on its own.
"""

from lamina.runtime.context import LambdaContext
from lamina.runtime.loop import run
from lamina.runtime.shutdown import on_shutdown

__all__ = ["LambdaContext", "on_shutdown", "run"]
