"""Answers and output at the edges: what a function may send, and how it is logged."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import (
    Served,
    code_dir,
    function_yaml,
    pid_alive,
    post,
    start_serve,
    stop_process,
    wait_for,
)
from tests.emulator.helpers import serving


def _function(name: str, handler: str, **props: object) -> str:
    return function_yaml(name, handler, Timeout=10, **props)


URL = {"FunctionUrlConfig": "{AuthType: NONE}"}
STREAM_URL = {"FunctionUrlConfig": "{AuthType: NONE, InvokeMode: RESPONSE_STREAM}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(
        tmp_path_factory.mktemp("edges"),
        (
            _function("answer", "edges.answer", **URL)
            + _function("nested", "edges.nested", **URL)
            + _function("unfinished", "edges.unfinished_line")
            + _function("longline", "edges.long_line")
            + _function("bigstream", "edges.big_stream")
            + _function("emptystream", "edges.empty_stream", **STREAM_URL)
            + _function("lateprelude", "edges.late_prelude", **STREAM_URL)
            + _function("echo", "behave.echo")
            + _function("touch", "behave.touch")
            + _function("paced", "streams.paced")
        ),
    )


def _url(service: Served, path: str, body: object) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    return post(service.url, path, json.dumps(body).encode(), headers)


BAD_GATEWAY = b'{"message":"Internal Server Error"}'


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            {"statusCode": 200, "headers": {"X-Uni": "✓"}}, id="non-latin-1-value"
        ),
        pytest.param(
            {"statusCode": 200, "headers": {"X-A": "a\r\nInjected: yes"}}, id="crlf"
        ),
        pytest.param({"statusCode": 200, "headers": {"Bad Name": "v"}}, id="bad-name"),
        pytest.param(
            {"statusCode": 200, "headers": {"X-List": ["a", "b"]}}, id="list-value"
        ),
        pytest.param({"statusCode": -1}, id="status-negative"),
        pytest.param({"statusCode": 1000}, id="status-too-big"),
        pytest.param({"statusCode": True}, id="status-bool"),
        pytest.param({"statusCode": 200, "cookies": ["a=1\r\nX: y"]}, id="cookie-crlf"),
    ],
)
def test_an_answer_http_cannot_carry_is_a_502(service: Served, answer: object) -> None:
    status, headers, body = _url(service, "/lambda-url/answer/", answer)
    assert status == 502
    assert body == BAD_GATEWAY
    assert "Injected" not in headers


def test_framing_headers_from_the_function_are_lamina_s_to_set(service: Served) -> None:
    answer = {
        "statusCode": 201,
        "headers": {
            "Content-Length": "1000",
            "Transfer-Encoding": "chunked",
            "X-Ok": "1",
        },
        "body": "hello",
    }
    status, headers, body = _url(service, "/lambda-url/answer/", answer)
    assert (status, body) == (201, b"hello")
    assert headers["Content-Length"] == "5"
    assert "Transfer-Encoding" not in headers
    assert headers["X-Ok"] == "1"


def _url_answer(
    service: Served, answer: object
) -> tuple[http.client.HTTPResponse, bytes]:
    """The HTTP response of a function URL whose function returns ``answer``,
    repeated headers kept apart."""
    parts = urlsplit(service.url)
    connection = http.client.HTTPConnection(
        parts.hostname or "", parts.port, timeout=20
    )
    connection.request(
        "POST",
        "/lambda-url/answer/",
        body=json.dumps(answer),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_each_cookie_of_a_buffered_answer_is_its_own_set_cookie(
    service: Served,
) -> None:
    cookies = ["a=1; Path=/", "b=2; HttpOnly"]
    answer = {"statusCode": 200, "cookies": cookies, "body": "ok"}

    response, body = _url_answer(service, answer)

    assert (response.status, body) == (200, b"ok")
    assert response.headers.get_all("Set-Cookie") == cookies


def test_a_base64_answer_reaches_the_caller_as_its_bytes(service: Served) -> None:
    answer = {
        "statusCode": 200,
        "headers": {"Content-Type": "application/octet-stream"},
        "body": base64.b64encode(bytes([0, 255, 128, 10])).decode(),
        "isBase64Encoded": True,
    }

    response, body = _url_answer(service, answer)

    assert response.status == 200
    assert response.getheader("Content-Type") == "application/octet-stream"
    assert body == bytes([0, 255, 128, 10])


def test_a_body_too_deep_to_parse_is_a_502(service: Served) -> None:
    status, _, body = _url(service, "/lambda-url/nested/", {})
    assert (status, body) == (502, BAD_GATEWAY)


def test_a_payload_too_deep_to_parse_is_invalid_request_content(
    service: Served,
) -> None:
    client = service.client()
    with pytest.raises(client.exceptions.InvalidRequestContentException):  # type: ignore[attr-defined]
        client.invoke(FunctionName="echo", Payload=b"[" * 100000 + b"]" * 100000)  # type: ignore[attr-defined]
    # The service is still there.
    answer = client.invoke(FunctionName="echo", Payload=b"{}")  # type: ignore[attr-defined]
    assert answer["StatusCode"] == 200


def test_output_without_a_final_newline_belongs_to_its_invoke(service: Served) -> None:
    client = service.client()
    first = client.invoke(FunctionName="unfinished", LogType="Tail")  # type: ignore[attr-defined]
    log = base64.b64decode(first["LogResult"]).decode()
    assert "no newline at the end\n" in log
    assert log.index("no newline at the end") < log.index("END RequestId")
    second = client.invoke(FunctionName="unfinished", LogType="Tail")  # type: ignore[attr-defined]
    assert (
        base64.b64decode(second["LogResult"]).decode().count("no newline at the end")
        == 1
    )


def test_a_long_line_is_cut_into_256_kb_events(service: Served) -> None:
    client = service.client()
    answer = client.invoke(FunctionName="longline")  # type: ignore[attr-defined]
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    service.output.wait(f"REPORT RequestId: {request_id}")
    events = service.output.matching(r"^\[longline\] x+$")
    assert [len(line) - len("[longline] ") for line in events] == [
        262144,
        262144,
        90112,
    ]


def test_event_invoke_runs_under_the_request_id_it_was_given(
    service: Served, tmp_path: Path
) -> None:
    client = service.client()
    marker = tmp_path / "ran"
    answer = client.invoke(  # type: ignore[attr-defined]
        FunctionName="touch",
        InvocationType="Event",
        Payload=json.dumps({"path": str(marker)}),
    )
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    wait_for(marker.exists, 15, "the async invoke")
    assert marker.read_text() == request_id
    service.output.wait(rf"^\[touch\] START RequestId: {request_id} ")


def test_streamed_invoke_runs_under_the_request_id_it_was_given(
    service: Served,
) -> None:
    client = service.client()
    answer = client.invoke_with_response_stream(
        FunctionName="paced", Payload=b'{"pause": 0}'
    )  # type: ignore[attr-defined]
    list(answer["EventStream"])
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    service.output.wait(rf"^\[paced\] START RequestId: {request_id} ")


def test_a_stream_joined_for_a_buffered_invoke_keeps_the_6_mb_limit(
    service: Served,
) -> None:
    client = service.client()
    answer = client.invoke(FunctionName="bigstream")  # type: ignore[attr-defined]
    assert answer["FunctionError"] == "Unhandled"
    assert (
        json.loads(answer["Payload"].read())["errorType"]
        == "Function.ResponseSizeTooLarge"
    )
    streamed = client.invoke_with_response_stream(FunctionName="bigstream")  # type: ignore[attr-defined]
    size = sum(
        len(event["PayloadChunk"]["Payload"])
        for event in streamed["EventStream"]
        if "PayloadChunk" in event
    )
    assert size == 8 * 1024 * 1024


def test_an_empty_stream_is_an_empty_answer(service: Served) -> None:
    status, _, body = _url(service, "/lambda-url/emptystream/", {})
    assert (status, body) == (200, b"")


def test_a_prelude_after_data_fails_the_stream_with_a_clear_error(
    service: Served,
) -> None:
    client = service.client()
    answer = client.invoke(FunctionName="lateprelude")  # type: ignore[attr-defined]
    payload = json.loads(answer["Payload"].read())
    assert payload["errorType"] == "TypeError"
    assert (
        payload["errorMessage"]
        == "http_response(...) must be the first item of a stream"
    )


def test_stopping_during_an_init_phase_answers_and_ends(tmp_path: Path) -> None:
    code = code_dir(tmp_path)
    (code / "slowstart.py").write_text(
        "import time\ntime.sleep(30)\n\ndef handler(event, context):\n    return 1\n"
    )
    template = tmp_path / "template.yaml"
    template.write_text("Resources:" + _function("slow", "slowstart.handler"))
    served = start_serve(template)
    try:
        parts = urlsplit(served.url)
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=30
        )
        connection.request("POST", "/2015-03-31/functions/slow/invocations", body=b"{}")
        # Wait until the environment is up and in its init phase, then stop.
        wait_for(
            lambda: _runtime_pids(served.process.pid), 10, "the init phase to start"
        )
        pids = _runtime_pids(served.process.pid)
        started = time.monotonic()
        served.process.send_signal(signal.SIGINT)
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert served.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert response.getheader("X-Amz-Function-Error") == "Unhandled"
        assert body["errorType"] == "Runtime.ExitError"
        assert all(not pid_alive(pid) for pid in pids)
    finally:
        stop_process(served.process)


def _runtime_pids(parent: int) -> list[int]:
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as children:
            return [int(pid) for pid in children.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize("token", ["NaN", "[Infinity]", '{"x": -Infinity}'])
def test_javascript_numbers_are_not_a_json_payload(service: Served, token: str) -> None:
    status, headers, body = post(
        service.url, "/2015-03-31/functions/echo/invocations", token.encode()
    )
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "Non-standard token" in json.loads(body)["message"]


def test_an_event_invoke_with_a_bad_client_context_is_refused_at_once(
    service: Served,
) -> None:
    status, headers, _ = post(
        service.url,
        "/2015-03-31/functions/echo/invocations",
        b"{}",
        {"X-Amz-Invocation-Type": "Event", "X-Amz-Client-Context": "not base64 json!"},
    )
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    # Nothing was taken from the function: it still answers.
    status, _, _ = post(service.url, "/2015-03-31/functions/echo/invocations", b"{}")
    assert status == 200
