"""The same behaviour, in every pairing of runtime client and service.

- lamina's runtime client under lamina's service;
- AWS's runtime client (awslambdaric) under lamina's service;
- lamina's runtime client under AWS's emulator (aws-lambda-rie, no Docker).

AWS's emulator never sets ``X-Amz-Function-Error``; the pairings therefore agree on
payloads, and the header is checked where lamina's service answers.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import (
    ROOT,
    awslambdaric_bootstrap,
    code_dir,
    rie_available,
    start_rie,
    start_serve,
    stop_process,
)

HANDLERS = ["echo", "fail", "marshal", "counter", "nothing", "asynchronous"]


@dataclass
class Result:
    payload: object
    function_error: str | None


Invoke = Callable[[str, object], Result]


def _template(runtime: str) -> str:
    functions = "".join(
        f"""
  {name}:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: {runtime}
      Handler: behave.{name}
      CodeUri: code
      Timeout: 10
"""
        for name in HANDLERS
    )
    return "Resources:" + functions


@pytest.fixture(scope="module")
def lamina_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Invoke]]:
    started = []

    def make(runtime: str, bootstrap: str | None) -> Invoke:
        folder = tmp_path_factory.mktemp(runtime.replace(".", "-"))
        code_dir(folder, bootstrap)
        template = folder / "template.yaml"
        template.write_text(_template(runtime))
        served = start_serve(template)
        started.append(served)
        client = served.client()

        def invoke(name: str, event: object) -> Result:
            answer = client.invoke(FunctionName=name, Payload=json.dumps(event))
            return Result(
                json.loads(answer["Payload"].read()), answer.get("FunctionError")
            )

        return invoke

    yield make
    for served in started:
        stop_process(served.process)


@pytest.fixture(scope="module")
def aws_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Invoke]:
    if not rie_available():
        pytest.fail("AWS's emulator is missing: run `make test` (scripts/fetch_rie.py)")
    folder = tmp_path_factory.mktemp("rie")
    code = code_dir(folder)
    running = {}

    def invoke(name: str, event: object) -> Result:
        if name not in running:
            running[name] = start_rie(
                f"behave.{name}",
                code,
                [sys.executable, "-m", "lamina.runtime"],
                {"PYTHONPATH": str(ROOT / "src")},
            )
        request = urllib.request.Request(
            running[name].url + "/2015-03-31/functions/function/invocations",
            data=json.dumps(event).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return Result(
                json.loads(answer.read()), answer.headers.get("X-Amz-Function-Error")
            )

    yield invoke
    for rie in running.values():
        stop_process(rie.process)


@pytest.fixture(
    params=[
        "lamina-runtime/lamina-service",
        "awslambdaric/lamina-service",
        "lamina-runtime/aws-emulator",
    ]
)
def pairing(request: pytest.FixtureRequest) -> tuple[str, Invoke]:
    name = request.param
    if name == "lamina-runtime/lamina-service":
        invoke = request.getfixturevalue("lamina_service")("python3.11", None)
    elif name == "awslambdaric/lamina-service":
        invoke = request.getfixturevalue("lamina_service")(
            "provided.al2023", awslambdaric_bootstrap()
        )
    else:
        invoke = request.getfixturevalue("aws_emulator")
    return name, invoke


def test_event_and_context_reach_the_handler(pairing: tuple[str, Invoke]) -> None:
    name, invoke = pairing
    result = invoke("echo", {"hello": "wörld", "n": [1, 2]})

    payload = result.payload
    assert isinstance(payload, dict)
    assert payload["event"] == {"hello": "wörld", "n": [1, 2]}
    assert len(payload["request_id"]) == 36
    assert payload["function_version"] == "$LATEST"
    assert payload["remaining"] > 0
    assert payload["arn"].startswith("arn:aws:lambda:")
    assert result.function_error is None
    if name.endswith("lamina-service"):
        assert payload["function_name"] == "echo"
        assert payload["memory"] == "128"
        assert payload["log_group"] == "/aws/lambda/echo"
        assert payload["trace"].startswith("Root=1-")


def test_handler_error_is_reported_with_every_field(
    pairing: tuple[str, Invoke],
) -> None:
    name, invoke = pairing
    result = invoke("fail", {})

    payload = result.payload
    assert isinstance(payload, dict)
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "naïve ✓"
    assert payload["requestId"]
    assert isinstance(payload["stackTrace"], list)
    assert all(isinstance(frame, str) for frame in payload["stackTrace"])
    assert any("behave.py" in frame for frame in payload["stackTrace"])
    if name.endswith("lamina-service"):
        assert result.function_error == "Unhandled"
    # The environment survives a handler's exception.
    first = invoke("counter", {})
    second = invoke("counter", {})
    assert second.payload["invokes"] == first.payload["invokes"] + 1  # type: ignore[index]
    assert second.payload["pid"] == first.payload["pid"]  # type: ignore[index]


def test_unserialisable_result_is_a_marshal_error_and_stays_warm(
    pairing: tuple[str, Invoke],
) -> None:
    _, invoke = pairing
    result = invoke("marshal", {})

    payload = result.payload
    assert isinstance(payload, dict)
    assert payload["errorType"] == "Runtime.MarshalError"
    assert payload["errorMessage"].startswith("Unable to marshal response:")
    after = invoke("echo", {"again": True})
    assert after.payload["event"] == {"again": True}  # type: ignore[index]


def test_none_result_is_null(pairing: tuple[str, Invoke]) -> None:
    _, invoke = pairing
    result = invoke("nothing", {})
    assert result.payload is None
    assert result.function_error is None


def test_async_handler(pairing: tuple[str, Invoke]) -> None:
    name, invoke = pairing
    if name.startswith("awslambdaric"):
        pytest.skip("AWS's Python runtime client does not await async handlers")
    result = invoke("asynchronous", {"x": 1})
    assert result.payload == {"async": True, "event": {"x": 1}}


def test_streamed_response_under_aws_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # AWS's emulator takes a streamed response (chunked, streaming mode) and answers
    # its caller with the joined bytes: the runtime client's side of streaming, checked
    # against AWS's own Runtime API.
    if not rie_available():
        pytest.fail("AWS's emulator is missing: run `make test` (scripts/fetch_rie.py)")
    code = code_dir(tmp_path_factory.mktemp("rie-stream"))
    rie = start_rie(
        "streams.paced",
        code,
        [sys.executable, "-m", "lamina.runtime"],
        {"PYTHONPATH": str(ROOT / "src")},
    )
    try:
        request = urllib.request.Request(
            rie.url + "/2015-03-31/functions/function/invocations",
            data=b'{"pause": 0}',
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
    finally:
        stop_process(rie.process)
    prelude, _, rest = body.partition(b"\0" * 8)
    assert json.loads(prelude)["statusCode"] == 201
    assert rest == b"one two three"
