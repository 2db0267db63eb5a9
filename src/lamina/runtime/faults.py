"""Error payloads, shaped the way Lambda's Python runtime shapes them.

No I/O here: these functions turn exceptions into the JSON documents that go to
``/runtime/init/error`` and ``/runtime/invocation/{id}/error``.
"""

from __future__ import annotations

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import traceback
    from types import TracebackType
    from typing import Any

IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"

_RUNTIME_DIR = __file__.rsplit("/", 1)[0] + "/"


class Fault(Exception):
    """A failure that Lambda names (``Runtime.*``), carrying that name as data."""

    def __init__(
        self, error_type: str, message: str, stack_trace: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []

    def payload(self, request_id: str = "") -> dict[str, Any]:
        return {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "requestId": request_id,
            "stackTrace": self.stack_trace,
        }


def user_frames(tb: TracebackType | None) -> traceback.StackSummary:
    """The traceback without the runtime's own frames at its top."""
    import traceback  # only on the error path: it is slow to import

    frames = traceback.extract_tb(tb)
    for index, frame in enumerate(frames):
        if not frame.filename.startswith(_RUNTIME_DIR):
            return traceback.StackSummary.from_list(frames[index:])
    return frames


def exception_payload(exc: BaseException, request_id: str = "") -> dict[str, Any]:
    """The error document for an exception the handler raised."""
    if isinstance(exc, Fault):
        return exc.payload(request_id)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": user_frames(exc.__traceback__).format(),
    }


def header_error_type(error_type: str) -> str:
    """The ``Lambda-Runtime-Function-Error-Type`` value: Lambda's ``Category.Reason``."""
    if error_type.startswith(("Runtime.", "Function.")):
        return error_type
    return "Function." + (error_type or "Unknown")


def xray_cause(exc: BaseException) -> str:
    """The ``Lambda-Runtime-Function-XRay-Error-Cause`` document."""
    import json  # the error path only; ASCII, as an HTTP header must be

    frames = user_frames(exc.__traceback__)
    cause = {
        "working_directory": "",
        "exceptions": [
            {
                "message": str(exc),
                "type": type(exc).__name__,
                "stack": [
                    {"label": f.name, "path": f.filename, "line": f.lineno}
                    for f in frames
                ],
            }
        ],
        "paths": sorted({f.filename for f in frames}),
    }
    return json.dumps(cause)


def log_lines(payload: dict[str, Any]) -> str:
    """How the runtime writes an error to the function's log: one record."""
    head = f"[ERROR] {payload['errorType']}: {payload['errorMessage']}"
    trace = payload.get("stackTrace") or []
    if not trace:
        return head
    return head + "\nTraceback (most recent call last):\n" + "".join(trace).rstrip("\n")
