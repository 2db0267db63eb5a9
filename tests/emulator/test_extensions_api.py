"""The Extensions API on a real socket: registration, events, errors, refusals."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from lamina.emulator import http
from lamina.emulator.extensions import Extensions, find_extensions
from lamina.emulator.extensions_api import (
    ExtensionsAPI,
    FunctionInfo,
    invoke_event,
)
from lamina.emulator.function import ACCOUNT_ID, FunctionConfig, Layer
from lamina.runtime.extensions import ExtensionAPIError, ExtensionClient

FUNCTION = FunctionInfo("fn", "$LATEST", "app.handler")
Answer = tuple[int, dict[str, str], bytes]


async def call(
    port: int,
    method: str,
    route: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Answer:
    """One request on its own connection; the answer read to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} /2020-01-01/extension/{route} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode() + body)
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answer_headers, payload


def error_type(answer: Answer) -> str:
    return str(json.loads(answer[2])["errorType"])


@asynccontextmanager
async def served(
    external: tuple[str, ...] = (),
) -> AsyncIterator[tuple[ExtensionsAPI, int]]:
    api = ExtensionsAPI(FUNCTION, external)
    server = await http.serve(api.handle, "127.0.0.1", 0)
    try:
        yield api, server.sockets[0].getsockname()[1]
    finally:
        api.close()
        server.close()


def run(
    scenario: Callable[[ExtensionsAPI, int], Awaitable[Any]], **options: Any
) -> Any:
    async def main() -> Any:
        async with served(**options) as (api, port):
            return await asyncio.wait_for(scenario(api, port), 10)

    return asyncio.run(main())


async def register(
    port: int, name: str, events: list[str], **headers: str
) -> tuple[str, Answer]:
    answer = await call(
        port,
        "POST",
        "register",
        {"Lambda-Extension-Name": name, **headers},
        json.dumps({"events": events}).encode(),
    )
    return answer[1].get("lambda-extension-identifier", ""), answer


REGISTER = {"Lambda-Extension-Name": "probe"}
UNKNOWN = str(uuid.uuid4())


Call = tuple[str, str, dict[str, str], bytes]  # method, route, headers, body
ERROR_TYPE = {"Lambda-Extension-Function-Error-Type": "Extension.Oops"}


@pytest.mark.parametrize(
    ("request_", "status", "expected"),
    [
        pytest.param(
            ("POST", "register", {}, b'{"events": []}'),
            403, "Extension.InvalidExtensionName", id="register-without-a-name",
        ),
        pytest.param(
            ("POST", "register", REGISTER, b"{not json"),
            403, "InvalidRequestFormat", id="register-with-a-body-that-is-not-json",
        ),
        pytest.param(
            ("POST", "register", REGISTER, b'{"events": ["INVOKE", "BOGUS"]}'),
            403, "Extension.InvalidEventType", id="register-for-no-such-event",
        ),
        pytest.param(
            ("POST", "register", REGISTER, b'{"events": ["SHUTDOWN"]}'),
            403, "Extension.InvalidEventType", id="internal-extension-asks-for-shutdown",
        ),
        pytest.param(
            ("GET", "event/next", {}, b""),
            403, "Extension.MissingExtensionIdentifier", id="next-without-identifier",
        ),
        pytest.param(
            ("GET", "event/next", {"Lambda-Extension-Identifier": "nope"}, b""),
            403, "Extension.InvalidExtensionIdentifier", id="next-with-a-bad-identifier",
        ),
        pytest.param(
            ("GET", "event/next", {"Lambda-Extension-Identifier": UNKNOWN}, b""),
            403, "Extension.UnknownExtensionIdentifier", id="next-with-unknown-identifier",
        ),
        pytest.param(
            ("POST", "init/error",
             {"Lambda-Extension-Identifier": UNKNOWN, **ERROR_TYPE}, b""),
            403, "Extension.UnknownExtensionIdentifier",
            id="init-error-from-an-unknown-identifier",
        ),
        pytest.param(
            ("GET", "register", REGISTER, b""),
            405, "MethodNotAllowed", id="register-with-get",
        ),
        pytest.param(
            ("GET", "telemetry", {}, b""), 404, "InvalidRequest", id="no-such-route",
        ),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_with_lambdas_error_types(
    request_: Call, status: int, expected: str
) -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> Answer:
        return await call(port, *request_)

    answer = run(scenario)

    assert answer[0] == status
    assert error_type(answer) == expected


def test_registration_answers_with_an_identifier_and_the_function() -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> tuple[Answer, Answer]:
        _, plain = await register(port, "one", ["INVOKE"])
        _, with_account = await register(
            port, "two", [], **{"Lambda-Extension-Accept-Feature": "accountId"}
        )
        return plain, with_account

    plain, with_account = run(scenario)

    assert plain[0] == 200
    uuid.UUID(plain[1]["lambda-extension-identifier"])
    assert json.loads(plain[2]) == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "handler": "app.handler",
    }
    assert json.loads(with_account[2])["accountId"] == ACCOUNT_ID


def test_registering_after_init_is_refused() -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> Answer:
        api.runtime_ready()  # the runtime asked for its first event: init is over
        return (await register(port, "late", ["INVOKE"]))[1]

    answer = run(scenario)

    assert answer[0] == 403
    assert error_type(answer) == "Extension.RegistrationClosed"


def test_a_name_registers_once() -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> list[Answer]:
        answers = []
        for name in ("internal", "internal", "recorder", "recorder"):
            answers.append((await register(port, name, ["INVOKE"]))[1])
        return answers

    first, again, external, external_again = run(scenario, external=("recorder",))

    assert (first[0], external[0]) == (200, 200)
    assert (again[0], error_type(again)) == (403, "Extension.InvalidExtensionState")
    assert error_type(external_again) == "Extension.InvalidExtensionState"


def test_init_error_needs_its_error_type_and_fails_the_environment() -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> tuple[Answer, Answer]:
        identifier, _ = await register(port, "recorder", ["INVOKE", "SHUTDOWN"])
        bare = await call(
            port, "POST", "init/error", {"Lambda-Extension-Identifier": identifier}
        )
        reported = await call(
            port,
            "POST",
            "init/error",
            {
                "Lambda-Extension-Identifier": identifier,
                "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid",
            },
            b'{"errorMessage": "no configuration", "errorType": "ConfigInvalid"}',
        )
        return bare, reported

    async def observed(api: ExtensionsAPI, port: int) -> tuple[Any, ...]:
        bare, reported = await scenario(api, port)
        return bare, reported, api.failure, api.failed.done(), api.extensions[0]

    bare, reported, failure, failed, ext = run(observed, external=("recorder",))

    assert (bare[0], error_type(bare)) == (403, "Extension.MissingHeader")
    assert reported[0] == 202
    assert failed
    assert failure.error_type == "Extension.InitError"
    assert (ext.state, ext.error_type) == ("InitError", "Extension.ConfigInvalid")


def test_init_completes_when_the_runtime_and_every_extension_wait() -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> tuple[Any, ...]:
        identifier, _ = await register(port, "recorder", ["INVOKE", "SHUTDOWN"])
        polling = asyncio.ensure_future(
            call(port, "GET", "event/next", {"Lambda-Extension-Identifier": identifier})
        )
        api.runtime_ready()
        await asyncio.wait_for(asyncio.shield(api.init_complete), 5)
        body = invoke_event("req-1", 1234, "arn:fn", "Root=1-2-3")
        (ext, number), *_ = api.deliver(body, "INVOKE")
        answer = await polling
        return answer, ext.is_done_with(number)

    answer, is_done = run(scenario, external=("recorder",))

    assert answer[0] == 200
    assert answer[1]["lambda-extension-event-identifier"]
    assert json.loads(answer[2]) == {
        "eventType": "INVOKE",
        "deadlineMs": 1234,
        "requestId": "req-1",
        "invokedFunctionArn": "arn:fn",
        "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-2-3"},
    }
    # It has the event, but is not back at /event/next yet.
    assert not is_done


def test_the_runtime_client_speaks_the_extensions_api() -> None:
    async def scenario(api: ExtensionsAPI, port: int) -> tuple[Any, ...]:
        def extension() -> tuple[Any, ...]:
            client = ExtensionClient(f"127.0.0.1:{port}")
            try:
                function = client.register("probe", ["INVOKE"])
                event = client.next_event()
                try:
                    client.register("probe", ["INVOKE"])
                except ExtensionAPIError as exc:
                    refusal = (exc.status, exc.error_type)
                return function, event, refusal
            finally:
                client.close()

        running = asyncio.ensure_future(asyncio.to_thread(extension))
        ready = api.wait_until(lambda: any(e.polls for e in api.extensions), 5)
        assert await ready
        api.deliver(invoke_event("req-2", 1, "arn:fn", "Root=x"), "INVOKE")
        return await running

    function, event, refusal = run(scenario)

    assert function["functionName"] == "fn"
    assert event["requestId"] == "req-2"
    assert refusal == (403, "Extension.InvalidExtensionState")


def test_external_extensions_are_the_files_in_each_layers_extensions_folder(
    tmp_path: Path,
) -> None:
    for layer, names in (("a", ["zeta", "alpha"]), ("b", ["alpha"])):
        folder = tmp_path / layer / "extensions"
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text(layer)
    (tmp_path / "b" / "extensions" / "not-a-file").mkdir()
    layers = [Layer(name, tmp_path / name) for name in ("a", "b", "missing")]

    found = find_extensions(layers)

    # Started in name order; a later layer's file replaces an earlier one's, as
    # layers unpacked into /opt in order would.
    assert list(found) == ["alpha", "zeta"]
    assert found["alpha"].read_text() == "b"


def test_extension_lines_come_in_the_functions_log_format(tmp_path: Path) -> None:
    (tmp_path / "layer" / "extensions").mkdir(parents=True)
    (tmp_path / "layer" / "extensions" / "recorder").write_text("")
    config = FunctionConfig(
        "fn",
        "python3.11",
        tmp_path,
        "app.handler",
        layers=(Layer("L", tmp_path / "layer"),),
    )

    async def scenario() -> tuple[list[str], list[str]]:
        extensions = Extensions(config)
        ext = extensions.api.extensions[0]
        ext.state, ext.events = "InitError", ("INVOKE", "SHUTDOWN")
        ext.error_type = "Extension.ConfigInvalid"
        return extensions.init_records(False), extensions.init_records(True)

    (text,), (record,) = asyncio.run(scenario())

    assert text == (
        "EXTENSION\tName: recorder\tState: InitError\tEvents: [INVOKE,SHUTDOWN]"
        "\tError Type: Extension.ConfigInvalid"
    )
    document = json.loads(record)
    assert document["type"] == "platform.extension"
    assert document["record"] == {
        "name": "recorder",
        "state": "InitError",
        "events": ["INVOKE", "SHUTDOWN"],
        "errorType": "Extension.ConfigInvalid",
    }
