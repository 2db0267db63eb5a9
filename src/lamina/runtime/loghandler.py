"""The root logger's handler on Lambda: Text or JSON records, each with its request id.

Imported only once the function's code has imported ``logging`` (see
``logging_setup``), never on the cold-start path of a function that does not log.
"""

from __future__ import annotations

import logging

from lamina.runtime import jsonfast
from lamina.runtime.context import current_request_id
from lamina.runtime.logsink import RecordSink, iso_time, level_from_env, sink

# The attributes every LogRecord has; anything else came from ``extra=`` and goes
# into a JSON record as a field of its own, as Lambda's runtime does.
_BLANK = logging.LogRecord("", 0, "", 0, "", None, None)
_STANDARD_FIELDS = frozenset(vars(_BLANK)) | {"message", "asctime", "aws_request_id"}


class TextFormatter(logging.Formatter):
    """``[LEVEL]<tab>time<tab>request id<tab>message``, then any traceback."""

    def __init__(self) -> None:
        super().__init__(
            "[%(levelname)s]\t%(asctime)s\t%(aws_request_id)s\t%(message)s"
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_time(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, in the fields Lambda's JSON log format has."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(logging.CRITICAL, max(logging.NOTSET, record.levelno)) // 10 * 10
        message: object = (
            record.msg
            if isinstance(record.msg, dict) and not record.args
            else record.getMessage()
        )
        document: dict[str, object] = {
            "timestamp": iso_time(record.created),
            "level": logging.getLevelName(level),
            "message": message,
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None) or None,
        }
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            import traceback

            document["errorType"] = exc_info[0].__name__
            document["errorMessage"] = str(exc_info[1])
            document["stackTrace"] = traceback.format_tb(exc_info[2])
            document["location"] = (
                f"{record.pathname}:{record.funcName}:{record.lineno}"
            )
        for key, value in vars(record).items():
            if key not in _STANDARD_FIELDS and key not in document:
                document[key] = value
        return jsonfast.dumps(
            {key: value for key, value in document.items() if value is not None},
            # A value JSON cannot hold is shown as text rather than losing the record.
            default=str,
        )


class LambdaHandler(logging.Handler):
    """Writes each record whole to the runtime's sink, tagged with its request id."""

    def __init__(self, target: RecordSink) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # A context variable: right for each of several invocations in flight.
            record.aws_request_id = current_request_id() or ""
            self.target.write(self.format(record), record.levelno)
        except Exception:
            self.handleError(record)


def install() -> LambdaHandler:
    """Put Lambda's handler on the root logger, and its level if one is set.

    Without ``AWS_LAMBDA_LOG_LEVEL`` the root logger keeps Python's default,
    WARNING, as on Lambda: there the service sets the variable (INFO unless told
    otherwise) whenever a function uses the JSON format, and never for Text.
    """
    target = sink()
    handler = LambdaHandler(target)
    handler.setFormatter(JsonFormatter() if target.is_json else TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = level_from_env()
    if level is not None:
        root.setLevel(level)
    return handler
