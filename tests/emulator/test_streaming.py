"""Response streaming end to end: runtime client → service → boto3 / an HTTP caller."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import Served, function_yaml
from tests.emulator.helpers import serving


def _function(name: str, handler: str, mode: str | None = "RESPONSE_STREAM") -> str:
    if mode is None:
        return function_yaml(name, handler, Timeout=10)
    url = f"{{AuthType: NONE, InvokeMode: {mode}}}"
    return function_yaml(name, handler, Timeout=10, FunctionUrlConfig=url)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(
        tmp_path_factory.mktemp("streaming"),
        (
            _function("paced", "streams.paced")
            + _function("broken", "streams.broken")
            + _function("early", "streams.early")
            + _function("plain", "streams.plain")
            + _function("aio", "streams.aio")
            + _function("writer", "streams.writer")
            + _function("buffered", "streams.buffered", "BUFFERED")
            + _function("streamedbuffer", "streams.paced", "BUFFERED")
            + _function("nourl", "streams.plain", None)
            + _function("echo", "behave.echo", "BUFFERED")
            + _function("fail", "behave.fail", "BUFFERED")
        ),
    )


def _connection(service: Served) -> http.client.HTTPConnection:
    parts = urlsplit(service.url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)


def test_function_url_streams_chunks_as_they_are_produced(service: Served) -> None:
    connection = _connection(service)
    started = time.monotonic()
    connection.request("POST", "/lambda-url/paced/", body=json.dumps({"pause": 1}))
    response = connection.getresponse()
    arrivals = []
    while chunk := response.read1(65536):
        arrivals.append((time.monotonic() - started, chunk))
    connection.close()

    assert response.status == 201
    assert response.getheader("Content-Type") == "text/plain"
    assert response.getheader("X-Kind") == "paced"
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert b"".join(chunk for _, chunk in arrivals) == b"one two three"
    # The first word arrives long before the last one is produced.
    first_at = next(at for at, chunk in arrivals if b"one" in chunk)
    last_at = arrivals[-1][0]
    assert first_at < 1.0
    assert last_at - first_at > 1.5


def test_function_url_error_mid_stream_cuts_the_response(service: Served) -> None:
    connection = _connection(service)
    connection.request("GET", "/lambda-url/broken/")
    response = connection.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as raised:
        response.read()
    assert raised.value.partial == b"partial "
    connection.close()


@pytest.mark.parametrize(
    ("name", "status", "body"),
    [
        pytest.param(
            "early", 502, b'{"message":"Internal Server Error"}', id="fails-first"
        ),
        pytest.param("plain", 200, b"raw-bytes", id="no-prelude"),
        pytest.param("aio", 200, b"async stream", id="async-generator"),
        pytest.param("writer", 200, b"written bytes", id="writer-api"),
        pytest.param("buffered", 200, b"whole", id="buffered-function"),
        pytest.param(
            "streamedbuffer", 201, b"one two three", id="buffered-url-of-a-stream"
        ),
        pytest.param(
            "fail", 502, b'{"message":"Internal Server Error"}', id="buffered-error"
        ),
    ],
)
def test_function_url_answers(
    service: Served, name: str, status: int, body: bytes
) -> None:
    connection = _connection(service)
    connection.request("POST", f"/lambda-url/{name}/", body=b'{"pause": 0}')
    response = connection.getresponse()
    assert response.status == status
    assert response.read() == body
    connection.close()


def test_function_without_url_config_has_no_url(service: Served) -> None:
    connection = _connection(service)
    connection.request("GET", "/lambda-url/nourl/")
    response = connection.getresponse()
    assert response.status == 404
    assert "FunctionUrlConfig" in json.loads(response.read())["Message"]
    connection.close()


def test_invoke_with_response_stream_delivers_chunks_live(service: Served) -> None:
    client = service.client()
    started = time.monotonic()
    answer = client.invoke_with_response_stream(  # type: ignore[attr-defined]
        FunctionName="paced", Payload=json.dumps({"pause": 1}), LogType="Tail"
    )
    events = [(time.monotonic() - started, event) for event in answer["EventStream"]]

    assert answer["StatusCode"] == 200
    assert answer["ExecutedVersion"] == "$LATEST"
    chunks = [
        event["PayloadChunk"]["Payload"]
        for _, event in events
        if "PayloadChunk" in event
    ]
    assert chunks[0].endswith(b"\0" * 8)
    assert b"".join(chunks[1:]) == b"one two three"
    (complete,) = [
        event["InvokeComplete"] for _, event in events if "InvokeComplete" in event
    ]
    assert "ErrorCode" not in complete
    assert complete["LogResult"]
    one_at = next(
        at
        for at, event in events
        if event.get("PayloadChunk", {}).get("Payload") == b"one "
    )
    assert one_at < 1.0
    assert events[-1][0] - one_at > 1.5


def test_invoke_with_response_stream_reports_a_late_error(service: Served) -> None:
    client = service.client()
    answer = client.invoke_with_response_stream(FunctionName="broken")  # type: ignore[attr-defined]
    events = list(answer["EventStream"])
    payloads = [
        event["PayloadChunk"]["Payload"] for event in events if "PayloadChunk" in event
    ]
    assert payloads[-1] == b"partial "
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "ValueError"
    assert complete["ErrorDetails"] == "broke mid-stream"


def test_buffered_invoke_of_a_streaming_function_joins_the_chunks(
    service: Served,
) -> None:
    client = service.client()
    answer = client.invoke(FunctionName="paced", Payload=b'{"pause": 0}')  # type: ignore[attr-defined]
    assert "FunctionError" not in answer
    assert answer["Payload"].read().endswith(b"\0" * 8 + b"one two three")

    failed = client.invoke(FunctionName="broken")  # type: ignore[attr-defined]
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"


def test_function_url_event_has_the_2_0_shape(service: Served) -> None:
    connection = _connection(service)
    connection.putrequest("GET", "/lambda-url/echo/items?x=1&x=2")
    connection.putheader("X-Foo", "a")
    connection.putheader("X-Foo", "b")
    connection.putheader("User-Agent", "t")
    connection.putheader("Cookie", "x=1; y=2")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 200
    event = json.loads(response.read())["event"]
    connection.close()

    assert event["version"] == "2.0"
    assert event["rawPath"] == "/items"
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["x-foo"] == "a,b"
    assert all(key == key.lower() for key in event["headers"])
    assert event["cookies"] == ["x=1", "y=2"]
    assert event["requestContext"]["http"]["protocol"] == "HTTP/1.1"
    assert event["requestContext"]["http"]["userAgent"] == "t"
    assert "httpMethod" not in event
    assert "multiValueHeaders" not in event


def test_function_url_event_without_a_query_has_no_query_parameters(
    service: Served,
) -> None:
    connection = _connection(service)
    connection.request("GET", "/lambda-url/echo/items")
    response = connection.getresponse()
    assert response.status == 200
    event = json.loads(response.read())["event"]
    connection.close()

    assert event["rawPath"] == "/items"
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event


def test_function_url_passes_binary_bodies_as_base64(
    service: Served, tmp_path: Path
) -> None:
    connection = _connection(service)
    connection.request(
        "POST",
        "/lambda-url/echo/",
        body=bytes([0, 255, 128, 10]),
        headers={"Content-Type": "application/octet-stream"},
    )
    event = json.loads(connection.getresponse().read())["event"]
    assert event["body"] == "AP+ACg=="
    assert event["isBase64Encoded"] is True
    connection.request(
        "POST",
        "/lambda-url/echo/",
        body=b'{"a": 1}',
        headers={"Content-Type": "application/json"},
    )
    event = json.loads(connection.getresponse().read())["event"]
    assert event["body"] == '{"a": 1}'
    assert event["isBase64Encoded"] is False
    connection.close()
