import datetime
import decimal
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lamina.runtime.api import Invocation
from lamina.runtime.faults import (
    BUILT_IN_MODULE_CONFLICT,
    HANDLER_NOT_FOUND,
    IMPORT_MODULE_ERROR,
    MALFORMED_HANDLER_NAME,
    MARSHAL_ERROR,
    UNMARSHAL_ERROR,
    USER_CODE_SYNTAX_ERROR,
    Fault,
)
from lamina.runtime.handler import load_handler, split_handler
from lamina.runtime.loop import marshal, unmarshal
from tests.runtime.conftest import FUNCTION_ARN

APP = """\
VALUE = 42


def handler(event, context):
    return {"app": event}
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fault_of(name: str, task_root: Path) -> Fault:
    with pytest.raises(Fault) as caught:
        load_handler(name, str(task_root))
    return caught.value


# -- split_handler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        pytest.param("app.handler", ("app", "handler"), id="module-function"),
        pytest.param("sub/mod.handler", ("sub/mod", "handler"), id="slash-path"),
        pytest.param("pkg.mod.handler", ("pkg.mod", "handler"), id="dotted-path"),
        pytest.param("a/b/c.fn", ("a/b/c", "fn"), id="deep-path"),
        pytest.param("a.b/c.fn", ("a.b/c", "fn"), id="mixed"),
    ],
)
def test_split_handler(name: str, parts: tuple[str, str]) -> None:
    assert split_handler(name) == parts


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("nodot", id="no-dot"),
        pytest.param("", id="empty"),
        pytest.param("app.", id="no-function"),
        pytest.param(".handler", id="no-module"),
        pytest.param(".", id="dot-only"),
    ],
)
def test_a_malformed_handler_name(name: str) -> None:
    with pytest.raises(Fault) as caught:
        split_handler(name)

    assert caught.value.error_type == MALFORMED_HANDLER_NAME
    assert caught.value.message.startswith(f"Bad handler '{name}': ")


def test_a_handler_name_without_a_dot_says_what_was_wrong() -> None:
    with pytest.raises(Fault) as caught:
        split_handler("nodot")

    assert caught.value.message == (
        "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)"
    )


def test_load_handler_refuses_a_malformed_name_before_importing(
    task_root: Path,
) -> None:
    fault = fault_of("nodot", task_root)

    assert fault.error_type == "Runtime.MalformedHandlerName"


# -- load_handler: found ---------------------------------------------------------------


def test_load_handler_imports_the_module_from_the_task_root(task_root: Path) -> None:
    write(task_root, "app.py", APP)

    handler = load_handler("app.handler", str(task_root))

    assert handler({"a": 1}, None) == {"app": {"a": 1}}
    assert sys.path[0] == str(task_root)
    assert sys.modules["app"].__file__ == str(task_root / "app.py")


def test_the_task_root_is_put_on_the_path_once(task_root: Path) -> None:
    write(task_root, "app.py", APP)

    load_handler("app.handler", str(task_root))
    load_handler("app.handler", str(task_root))

    assert sys.path.count(str(task_root)) == 1


@pytest.mark.parametrize(
    ("name", "module"),
    [
        pytest.param("sub/mod.handler", "sub.mod", id="slash"),
        pytest.param("sub.mod.handler", "sub.mod", id="dot"),
        pytest.param("sub/deeper/leaf.handler", "sub.deeper.leaf", id="two-levels"),
    ],
)
def test_a_module_in_a_folder(task_root: Path, name: str, module: str) -> None:
    write(task_root, "sub/mod.py", APP)
    write(task_root, "sub/deeper/leaf.py", APP)

    handler = load_handler(name, str(task_root))

    assert handler("x", None) == {"app": "x"}
    assert module in sys.modules


def test_a_module_in_a_regular_package(task_root: Path) -> None:
    write(task_root, "pkg/__init__.py", "")
    write(task_root, "pkg/api.py", APP)

    assert load_handler("pkg/api.handler", str(task_root))(1, None) == {"app": 1}


# -- load_handler: the ways it fails ---------------------------------------------------


def test_a_missing_module_is_an_import_module_error_quoted_as_written(
    task_root: Path,
) -> None:
    write(task_root, "sub/mod.py", APP)

    fault = fault_of("sub/missing.handler", task_root)

    assert fault.error_type == IMPORT_MODULE_ERROR == "Runtime.ImportModuleError"
    assert fault.message == (
        "Unable to import module 'sub/missing': No module named 'sub.missing'"
    )


def test_a_missing_dependency_is_an_import_module_error(task_root: Path) -> None:
    write(task_root, "app.py", "import not_installed_anywhere\n" + APP)

    fault = fault_of("app.handler", task_root)

    assert fault.error_type == IMPORT_MODULE_ERROR
    assert fault.message == (
        "Unable to import module 'app': No module named 'not_installed_anywhere'"
    )
    assert "app" not in sys.modules


@pytest.mark.parametrize(
    "attribute",
    [
        pytest.param("nothere", id="missing"),
        pytest.param("VALUE", id="not-callable"),
    ],
)
def test_a_missing_handler_is_handler_not_found(
    task_root: Path, attribute: str
) -> None:
    write(task_root, "app.py", APP)

    fault = fault_of(f"app.{attribute}", task_root)

    assert fault.error_type == HANDLER_NOT_FOUND == "Runtime.HandlerNotFound"
    assert fault.message == f"Handler '{attribute}' missing on module 'app'"


def test_handler_not_found_names_the_module_as_written(task_root: Path) -> None:
    write(task_root, "sub/mod.py", APP)

    fault = fault_of("sub/mod.nothere", task_root)

    assert fault.message == "Handler 'nothere' missing on module 'sub/mod'"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        pytest.param("x = 1\ndef handler(event, context)\n    pass\n", 2, id="colon"),
        pytest.param("def handler(e, c):\nreturn 1\n", 2, id="indentation"),
        pytest.param("x = 1\ny = 2\nz = (\n", 3, id="unclosed"),
    ],
)
def test_a_syntax_error_is_user_code_syntax_error(
    task_root: Path, source: str, line: int
) -> None:
    path = write(task_root, "app.py", source)

    fault = fault_of("app.handler", task_root)

    assert fault.error_type == USER_CODE_SYNTAX_ERROR == "Runtime.UserCodeSyntaxError"
    assert fault.message.startswith("Syntax error in module 'app': ")
    assert f"line {line}" in fault.message
    (entry,) = fault.stack_trace
    assert entry.startswith(f'  File "{path}" Line {line}\n    ')
    assert "app" not in sys.modules


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("sys.handler", id="sys"),
        pytest.param("builtins.handler", id="builtins"),
        pytest.param("sys/path.handler", id="sys-as-folder"),
        pytest.param("_thread.start", id="underscore"),
    ],
)
def test_a_built_in_module_is_refused(task_root: Path, name: str) -> None:
    fault = fault_of(name, task_root)

    module = name.rpartition(".")[0]
    assert (
        fault.error_type == BUILT_IN_MODULE_CONFLICT == "Runtime.BuiltInModuleConflict"
    )
    assert fault.message == f"Cannot use built-in module {module} as a handler module"


def test_a_task_root_file_named_like_a_built_in_is_still_refused(
    task_root: Path,
) -> None:
    write(task_root, "sys.py", APP)

    assert fault_of("sys.handler", task_root).error_type == BUILT_IN_MODULE_CONFLICT


def test_an_error_raised_while_importing_is_left_as_it_is(task_root: Path) -> None:
    write(task_root, "app.py", "raise RuntimeError('no config')\n")

    with pytest.raises(RuntimeError, match="no config"):
        load_handler("app.handler", str(task_root))


# -- marshal: what a handler returns -------------------------------------------------


@pytest.mark.parametrize(
    ("result", "body"),
    [
        pytest.param(
            {"a": [1, 2.5, None, True]}, b'{"a": [1, 2.5, null, true]}', id="dict"
        ),
        pytest.param(None, b"null", id="none"),
        pytest.param("café ✓", '"café ✓"'.encode(), id="utf8-not-escaped"),
        pytest.param([], b"[]", id="list"),
        pytest.param((1, 2), b"[1, 2]", id="tuple"),
        pytest.param(decimal.Decimal("1.5"), b"1.5", id="decimal-fraction"),
        pytest.param(decimal.Decimal("2"), b"2", id="decimal-whole"),
        # Exact digits, as AWS's runtime writes them: no float rounding.
        pytest.param(decimal.Decimal("2.000"), b"2.000", id="decimal-trailing-zeros"),
        pytest.param(
            decimal.Decimal("12345678901234567890.123456789"),
            b"12345678901234567890.123456789",
            id="decimal-beyond-float",
        ),
        pytest.param(decimal.Decimal("-0.25"), b"-0.25", id="decimal-negative"),
        pytest.param(
            {"Item": {"count": decimal.Decimal("3"), "price": decimal.Decimal("9.99")}},
            b'{"Item": {"count": 3, "price": 9.99}}',
            id="dynamodb-item",
        ),
    ],
)
def test_marshal_json(result: Any, body: bytes) -> None:
    assert marshal(result) == (body, "application/json")


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(b"\x00\xffraw", id="bytes"),
        pytest.param(bytearray(b"\x00\xffraw"), id="bytearray"),
    ],
)
def test_marshal_passes_bytes_through(result: bytes | bytearray) -> None:
    body, content_type = marshal(result)

    assert body == b"\x00\xffraw"
    assert type(body) is bytes
    assert content_type == "application/unknown"


@pytest.mark.parametrize(
    ("result", "message"),
    [
        pytest.param(
            datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            "Unable to marshal response: Object of type datetime is not JSON "
            "serializable",
            id="datetime",
        ),
        pytest.param(
            {1, 2},
            "Unable to marshal response: Object of type set is not JSON serializable",
            id="set",
        ),
        pytest.param(
            {"nested": [object()]},
            "Unable to marshal response: Object of type object is not JSON "
            "serializable",
            id="nested-object",
        ),
        pytest.param(
            {(1, 2): "tuple key"},
            "Unable to marshal response: keys must be str, int, float, bool or "
            "None, not tuple",
            id="tuple-key",
        ),
    ],
)
def test_marshal_refuses_what_json_cannot_carry(result: Any, message: str) -> None:
    with pytest.raises(Fault) as caught:
        marshal(result)

    assert caught.value.error_type == MARSHAL_ERROR == "Runtime.MarshalError"
    assert caught.value.message == message


def test_marshal_refuses_a_cycle() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)

    with pytest.raises(Fault) as caught:
        marshal(cycle)

    assert caught.value.error_type == MARSHAL_ERROR
    assert caught.value.message.startswith("Unable to marshal response: Circular")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            decimal.Decimal("Infinity"), b'{"value": Infinity}', id="infinity"
        ),
        pytest.param(
            decimal.Decimal("-Infinity"), b'{"value": -Infinity}', id="minus-inf"
        ),
        pytest.param(decimal.Decimal("sNaN"), b'{"value": NaN}', id="signalling-nan"),
    ],
)
def test_a_decimal_json_has_no_number_for_is_sent_as_aws_sends_it(
    value: decimal.Decimal, expected: bytes
) -> None:
    # AWS's Python runtime writes these as JavaScript's literals, as json does for
    # floats; the invoke does not fail over them.
    body, content_type = marshal({"value": value})
    assert body == expected
    assert content_type == "application/json"


# -- unmarshal: what a handler is given ------------------------------------------------


def invocation(body: bytes, content_type: str = "application/json") -> Invocation:
    return Invocation("req-1", 0, FUNCTION_ARN, content_type=content_type, body=body)


@pytest.mark.parametrize(
    ("body", "content_type", "event"),
    [
        pytest.param(
            '{"a": [1, "é"]}'.encode(), "application/json", {"a": [1, "é"]}, id="json"
        ),
        pytest.param(b'"text"', "", "text", id="no-content-type"),
        pytest.param(b"12.5", "application/json", 12.5, id="number"),
        pytest.param(b"\x00\x01", "application/octet-stream", b"\x00\x01", id="binary"),
        pytest.param(b"not json", "text/plain", b"not json", id="text-plain"),
    ],
)
def test_unmarshal(body: bytes, content_type: str, event: Any) -> None:
    assert unmarshal(invocation(body, content_type)) == event


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="broken"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_unmarshal_refuses_broken_json(body: bytes) -> None:
    with pytest.raises(Fault) as caught:
        unmarshal(invocation(body))

    assert caught.value.error_type == UNMARSHAL_ERROR == "Runtime.UnmarshalError"
    assert caught.value.message.startswith("Unable to unmarshal input: ")


def test_marshal_and_unmarshal_agree() -> None:
    event = {"Records": [{"n": 1, "s": "ü", "f": 0.5, "z": None}]}

    body, _ = marshal(event)

    assert unmarshal(invocation(body)) == event
    assert json.loads(body) == event
