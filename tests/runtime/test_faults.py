from __future__ import annotations

import json
import textwrap
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import lamina.runtime
from lamina.runtime.faults import (
    IMPORT_MODULE_ERROR,
    MARSHAL_ERROR,
    Fault,
    exception_payload,
    header_error_type,
    log_lines,
    user_frames,
    xray_cause,
)
from lamina.runtime.handler import load_handler
from tests.runtime.conftest import InvokeThroughAPI

if TYPE_CHECKING:
    from lamina.runtime.handler import Handler

RUNTIME_DIR = str(Path(lamina.runtime.__file__).parent)

USER_CODE = """\
def handler(event, context):
    return helper(event)


def helper(event):
    raise ValueError(f"bad event: {event['n']}")


def wrong_type(event, context):
    return {"when": {1, 2}}


class NotOurs(Exception):
    pass


def custom(event, context):
    raise NotOurs("custom failure")
"""


def user_handler(task_root: Path, name: str = "handler") -> tuple[Handler, Path]:
    path = task_root / "app.py"
    path.write_text(USER_CODE)
    return load_handler(f"app.{name}", str(task_root)), path


def caught(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as exc:
        return exc


# -- Fault -----------------------------------------------------------------------------


def test_a_fault_carries_lambdas_name_for_it() -> None:
    fault = Fault(IMPORT_MODULE_ERROR, "Unable to import module 'app': nope", ["x"])

    assert str(fault) == "Unable to import module 'app': nope"
    assert fault.payload("req-1") == {
        "errorMessage": "Unable to import module 'app': nope",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "req-1",
        "stackTrace": ["x"],
    }


def test_a_fault_without_a_trace_has_an_empty_one() -> None:
    assert Fault(MARSHAL_ERROR, "m").payload()["stackTrace"] == []
    assert Fault(MARSHAL_ERROR, "m").payload()["requestId"] == ""


def test_exception_payload_of_a_fault_is_its_own_payload() -> None:
    fault = caught(Fault(MARSHAL_ERROR, "Unable to marshal response: x", ["t"]))

    assert exception_payload(fault, "req-2") == {
        "errorMessage": "Unable to marshal response: x",
        "errorType": "Runtime.MarshalError",
        "requestId": "req-2",
        "stackTrace": ["t"],
    }


# -- exception_payload -----------------------------------------------------------------


def test_exception_payload_fields() -> None:
    error = caught(KeyError("missing"))

    payload = exception_payload(error, "req-3")

    assert set(payload) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert payload["errorMessage"] == "'missing'"
    assert payload["errorType"] == "KeyError"
    assert payload["requestId"] == "req-3"
    assert isinstance(payload["stackTrace"], list)
    assert all(isinstance(entry, str) for entry in payload["stackTrace"])
    assert "caught" in payload["stackTrace"][-1]


def test_an_exception_that_was_never_raised_has_no_trace() -> None:
    payload = exception_payload(RuntimeError("made, not raised"))

    assert payload["stackTrace"] == []
    assert payload["errorMessage"] == "made, not raised"


def test_user_frames_drop_the_runtimes_own_frames_at_the_top(
    task_root: Path,
) -> None:
    (task_root / "broken.py").write_text("import not_installed_anywhere\n")

    with pytest.raises(Fault) as fault:
        load_handler("broken.handler", str(task_root))

    # The import failed inside load_handler: its frame tops the traceback.
    cause = fault.value.__cause__
    assert cause is not None
    raw = [frame.filename for frame in _frames(cause)]
    assert raw[0].startswith(RUNTIME_DIR)

    kept = [frame.filename for frame in user_frames(cause.__traceback__)]
    assert not any(name.startswith(RUNTIME_DIR) for name in kept)
    assert kept[-1] == str(task_root / "broken.py")
    assert raw[-len(kept) :] == kept


def _frames(error: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(error.__traceback__))


def test_a_handler_error_reaches_the_runtime_api_without_runtime_frames(
    task_root: Path, invoke_through_api: InvokeThroughAPI
) -> None:
    handler, path = user_handler(task_root)

    result = invoke_through_api(handler, b'{"n": 7}')

    assert not result.ok
    assert result.error_type == "Function.ValueError"
    document = json.loads(result.body)
    assert document["errorMessage"] == "bad event: 7"
    assert document["errorType"] == "ValueError"
    assert document["requestId"].startswith("req-")
    trace = document["stackTrace"]
    assert isinstance(trace, list)
    assert all(isinstance(entry, str) for entry in trace)
    assert len(trace) == 2
    assert trace[0].startswith(f'  File "{path}", line 2, in handler\n')
    assert trace[1].startswith(f'  File "{path}", line 6, in helper\n')
    assert not any(RUNTIME_DIR in entry for entry in trace)


@pytest.mark.parametrize(
    ("name", "header", "fields"),
    [
        pytest.param(
            "custom",
            "Function.NotOurs",
            ("NotOurs", "custom failure"),
            id="custom-exception-by-its-class",
        ),
        pytest.param(
            "wrong_type",
            "Runtime.MarshalError",
            (
                "Runtime.MarshalError",
                "Unable to marshal response: Object of type set is not JSON "
                "serializable",
            ),
            id="marshal-error-as-a-runtime-error",
        ),
    ],
)
def test_an_error_reaches_the_runtime_api_named_as_lambda_names_it(
    task_root: Path,
    invoke_through_api: InvokeThroughAPI,
    name: str,
    header: str,
    fields: tuple[str, str],
) -> None:
    handler, _ = user_handler(task_root, name)

    result = invoke_through_api(handler)

    assert result.error_type == header
    document = json.loads(result.body)
    assert (document["errorType"], document["errorMessage"]) == fields


def test_the_error_is_written_to_the_log(
    task_root: Path,
    invoke_through_api: InvokeThroughAPI,
    capfd: pytest.CaptureFixture[str],
) -> None:
    handler, path = user_handler(task_root)

    invoke_through_api(handler, b'{"n": 1}')

    out = capfd.readouterr().out
    assert out.startswith(
        "[ERROR] ValueError: bad event: 1\nTraceback (most recent call last):\n"
        f'  File "{path}", line 2, in handler\n'
    )


# -- the header and the X-Ray cause ----------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "header"),
    [
        pytest.param("ValueError", "Function.ValueError", id="exception-class"),
        pytest.param("Runtime.MarshalError", "Runtime.MarshalError", id="runtime"),
        pytest.param("Function.Custom", "Function.Custom", id="function"),
        pytest.param("", "Function.Unknown", id="empty"),
    ],
)
def test_header_error_type(error_type: str, header: str) -> None:
    assert header_error_type(error_type) == header


def test_xray_cause_describes_the_exception_and_its_frames() -> None:
    error = caught(ZeroDivisionError("division by zero"))

    cause = json.loads(xray_cause(error))

    (exception,) = cause["exceptions"]
    assert exception["message"] == "division by zero"
    assert exception["type"] == "ZeroDivisionError"
    assert exception["stack"][-1]["label"] == "caught"
    assert exception["stack"][-1]["path"] == __file__
    assert isinstance(exception["stack"][-1]["line"], int)
    assert cause["paths"] == [__file__]
    assert cause["working_directory"] == ""


# -- log_lines -------------------------------------------------------------------------


def test_log_lines_without_a_trace_is_one_line() -> None:
    payload = Fault("Runtime.X", "went wrong").payload()

    assert log_lines(payload) == "[ERROR] Runtime.X: went wrong"


def test_log_lines_with_a_trace() -> None:
    payload = {
        "errorType": "ValueError",
        "errorMessage": "bad",
        "stackTrace": [
            '  File "/var/task/app.py", line 2, in handler\n    helper()\n',
            '  File "/var/task/app.py", line 5, in helper\n    raise ValueError\n',
        ],
    }

    assert log_lines(payload) == textwrap.dedent(
        """\
        [ERROR] ValueError: bad
        Traceback (most recent call last):
          File "/var/task/app.py", line 2, in handler
            helper()
          File "/var/task/app.py", line 5, in helper
            raise ValueError"""
    )
