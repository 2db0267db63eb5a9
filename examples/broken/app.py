"""A function that always fails, to show what a function error looks like.

The error is raised one call down from the handler, so the stack trace that comes
back has two frames: the handler's and the helper's.
"""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"total": _order_total(event)}


def _order_total(event: Any) -> float:
    raise ValueError(
        "cannot total the order: no price list is configured "
        "(this function fails on purpose)"
    )
