"""JSON through CPython's C accelerator alone, without importing ``json``.

``import json`` brings ``re`` and ``enum`` with it: most of a runtime client's
import time. The parsing and encoding themselves are done in C by ``_json``, which
``json`` only wraps. This module drives ``_json`` directly for the two calls the
runtime makes on every invoke and leaves everything else — error messages above
all — to the real ``json``, imported only when something goes wrong. Where
``_json`` is missing or differs, it falls back to ``json`` entirely.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[
        name
    ]


class _Decoding:
    """The attributes ``_json.make_scanner`` reads from a decoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}  # noqa: RUF012 - the scanner keeps its own


try:
    import _json

    _scan: Any = _json.make_scanner(_Decoding())  # type: ignore[arg-type]
    _make_encoder: Any = _json.make_encoder
    _encode_string: Any = _json.encode_basestring
except (ImportError, AttributeError, TypeError):  # another interpreter's _json
    _scan = _make_encoder = _encode_string = None


def loads(data: bytes | str) -> Any:
    """Parse a JSON document; raise ``ValueError`` (``json``'s own) when it is not."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if _scan is not None:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except Exception:
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    # Not JSON, or not only JSON: let json say exactly what is wrong.
    import json

    return json.loads(text)


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``json.dumps(value, ensure_ascii=False, default=default)``."""
    if _make_encoder is None:
        import json

        return json.dumps(value, ensure_ascii=False, default=default)
    encoder = _make_encoder(
        {},  # markers: a fresh dict per call catches circular references
        default or _unserialisable,
        _encode_string,
        None,  # indent
        ": ",
        ", ",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json does
    )
    return "".join(encoder(value, 0))


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
