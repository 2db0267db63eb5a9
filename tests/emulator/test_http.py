import asyncio
import json
import socket
import string
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.emulator.http import (
    MAX_BODY,
    MAX_HEAD,
    BadRequest,
    Handler,
    Request,
    Response,
    parse_head,
    read_request,
    render_response,
    serve,
    serve_connection,
)


async def _read(data: bytes) -> Request | None:
    reader = asyncio.StreamReader(limit=MAX_HEAD)
    reader.feed_data(data)
    reader.feed_eof()
    return await read_request(reader)


def always(request: Request) -> bool:
    return True


def never(request: Request) -> bool:
    return False


def read(data: bytes) -> Request | None:
    """One request read from a stream that holds ``data`` and then ends."""
    return asyncio.run(_read(data))


def read_all(data: bytes) -> list[Request]:
    """Every request a stream holding ``data`` carries, in order."""

    async def go() -> list[Request]:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        reader.feed_data(data)
        reader.feed_eof()
        requests = []
        while (request := await read_request(reader)) is not None:
            requests.append(request)
        return requests

    return asyncio.run(go())


def split_response(raw: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers in order, and body of one rendered response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(": ")
        headers.append((name, value))
    return status, headers, body


def split_responses(raw: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Every response on a connection, each cut at its Content-Length."""
    answers = []
    while raw:
        status, header_list, rest = split_response(raw)
        headers = {name.lower(): value for name, value in header_list}
        length = int(headers["content-length"])
        answers.append((status, headers, rest[:length]))
        raw = rest[length:]
    return answers


# -- parse_head: the request line ------------------------------------------------


def test_parse_head_reads_method_target_and_headers() -> None:
    request = parse_head(
        b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\n"
        b"Host: 127.0.0.1:9001\r\n"
        b"X-Amz-Invocation-Type: Event"
    )

    assert request.method == "POST"
    assert request.target == "/2015-03-31/functions/f/invocations"
    assert request.path == "/2015-03-31/functions/f/invocations"
    assert request.query == []
    assert request.body == b""
    assert request.headers == {
        "host": "127.0.0.1:9001",
        "x-amz-invocation-type": "Event",
    }


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        pytest.param("/", "/", [], id="root"),
        pytest.param("/a%20b/c", "/a b/c", [], id="percent-space"),
        pytest.param(
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012"
            "%3Afunction%3Af/invocations",
            "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:f"
            "/invocations",
            [],
            id="quoted-arn",
        ),
        pytest.param(
            "/f/invocations?Qualifier=prod",
            "/f/invocations",
            [("Qualifier", "prod")],
            id="qualifier",
        ),
        pytest.param(
            "/p?b=2&a=1&b=3",
            "/p",
            [("b", "2"), ("a", "1"), ("b", "3")],
            id="repeated-keys-in-order",
        ),
        pytest.param("/p?flag=&x", "/p", [("flag", ""), ("x", "")], id="blank"),
        pytest.param(
            "/p?q=a+b%26c", "/p", [("q", "a b&c")], id="plus-and-percent-in-value"
        ),
        pytest.param("/caf%C3%A9", "/café", [], id="utf8-path"),
        pytest.param(
            "http://localhost:9001/x?y=1", "/x", [("y", "1")], id="absolute-form"
        ),
    ],
)
def test_parse_head_unquotes_the_path_and_parses_the_query(
    target: str, path: str, query: list[tuple[str, str]]
) -> None:
    request = parse_head(f"GET {target} HTTP/1.1".encode("latin-1"))

    assert request.target == target
    assert request.path == path
    assert request.query == query


def test_parse_head_accepts_http_1_0() -> None:
    assert parse_head(b"GET / HTTP/1.0").method == "GET"


# -- parse_head: headers -----------------------------------------------------------


def test_repeated_headers_are_joined_and_kept_apart() -> None:
    request = parse_head(
        b"GET / HTTP/1.1\r\nX-Foo: a\r\nCookie: one=1\r\nx-foo: b\r\nCookie: two=2"
    )

    assert request.headers["x-foo"] == "a,b"
    assert request.headers["cookie"] == "one=1,two=2"
    assert request.header_list == [
        ("x-foo", "a"),
        ("cookie", "one=1"),
        ("x-foo", "b"),
        ("cookie", "two=2"),
    ]


def test_header_names_are_lowercased_and_values_trimmed() -> None:
    request = parse_head(b"GET / HTTP/1.1\r\nContent-TYPE:   application/json  ")

    assert request.headers == {"content-type": "application/json"}
    assert request.header("Content-Type") == "application/json"
    assert request.header("CONTENT-TYPE") == "application/json"


def test_a_header_value_keeps_its_colons() -> None:
    request = parse_head(b"GET / HTTP/1.1\r\nHost: [::1]:9001")

    assert request.header("host") == "[::1]:9001"


def test_header_default_when_absent() -> None:
    request = parse_head(b"GET / HTTP/1.1")

    assert request.header("x-missing") == ""
    assert request.header("x-missing", "fallback") == "fallback"


def test_an_empty_header_value_is_kept() -> None:
    request = parse_head(b"GET / HTTP/1.1\r\nX-Empty:")

    assert request.headers == {"x-empty": ""}
    assert request.header_list == [("x-empty", "")]


def test_header_bytes_are_read_as_latin_1() -> None:
    request = parse_head(b"GET / HTTP/1.1\r\nX-Name: caf\xe9")

    assert request.header("x-name") == "café"


@pytest.mark.parametrize(
    "word",
    [
        pytest.param("voilà", id="ends-in-a-grave"),
        pytest.param("ÅNGSTRÖM_Å", id="ends-in-a-ring"),
    ],
)
def test_a_utf8_header_value_keeps_its_last_byte(word: str) -> None:
    request = parse_head(b"GET / HTTP/1.1\r\nX-Word: " + word.encode())

    assert request.header("x-word").encode("latin-1").decode() == word


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"GET /", id="no-version"),
        pytest.param(b"GET", id="method-only"),
        pytest.param(b"GET / HTTP/2.0", id="http-2"),
        pytest.param(b"GET / FTP/1.1", id="not-http"),
        pytest.param(b"GET  / HTTP/1.1", id="double-space"),
        pytest.param(b"GET / HTTP/1.1 extra", id="four-parts"),
        pytest.param(b"G3T / HTTP/1.1", id="digit-in-method"),
        pytest.param(b"GET  HTTP/1.1", id="empty-target"),
        pytest.param(b"\r\nGET / HTTP/1.1", id="leading-blank-line"),
        pytest.param(b"GET / HTTP/1.1\r\nNoColon", id="header-without-colon"),
        pytest.param(b"GET / HTTP/1.1\r\n: value", id="header-without-name"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Name: x", id="space-in-header-name"),
        pytest.param(b"GET / HTTP/1.1\r\n folded", id="continuation-line"),
    ],
)
def test_malformed_heads_are_bad_requests(head: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(head)

    assert caught.value.status == 400
    assert str(caught.value).startswith("malformed ")


def test_a_malformed_line_is_quoted_in_the_message_and_cut_short() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(b"GET / HTTP/1.1\r\n" + b"x" * 500)

    message = str(caught.value)
    assert message.startswith("malformed header line: 'xxx")
    assert len(message) < 150


# -- parse_head: properties --------------------------------------------------------

_LATIN_1 = st.characters(max_codepoint=0xFF)
# '[' and ']' are kept out of targets here: their case has a test of its own.
_TARGET = st.text(
    st.characters(max_codepoint=0xFF, exclude_characters=" \r\n[]"), min_size=1
)
_TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1)


@st.composite
def shaped_heads(draw: st.DrawFn) -> bytes:
    """Heads that get past the request line often, so the rest gets exercised."""
    method = draw(st.one_of(st.text(string.ascii_letters, min_size=1), _TOKEN))
    target = draw(_TARGET)
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.x", "HTTP/"]))
    lines = draw(st.lists(st.text(_LATIN_1), max_size=6))
    return "\r\n".join([f"{method} {target} {version}", *lines]).encode("latin-1")


@given(st.one_of(st.binary(max_size=300), shaped_heads()))
def test_parse_head_raises_nothing_but_bad_request(head: bytes) -> None:
    try:
        request = parse_head(head)
    except BadRequest as exc:
        assert exc.status == 400
    else:
        assert request.method.isalpha()
        assert len(request.header_list) >= len(request.headers)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET //[ HTTP/1.1", id="open-bracket"),
        pytest.param(b"GET http://a]b/ HTTP/1.1", id="close-bracket"),
    ],
)
def test_a_bracket_in_the_authority_is_a_bad_request(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_head(head)


@given(
    method=st.text(string.ascii_uppercase, min_size=1, max_size=10),
    path=st.text(string.ascii_letters + string.digits + "/-_.~", max_size=30),
    headers=st.lists(
        st.tuples(
            _TOKEN,
            # NEL and NBSP have a test of their own.
            st.text(
                st.characters(
                    min_codepoint=0x21,
                    max_codepoint=0xFF,
                    exclude_characters="\x85\xa0",
                ),
                max_size=20,
            ),
        ),
        max_size=8,
    ),
)
def test_well_formed_heads_round_trip(
    method: str, path: str, headers: list[tuple[str, str]]
) -> None:
    head = "\r\n".join(
        [f"{method} /{path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    ).encode("latin-1")

    request = parse_head(head)

    assert request.method == method
    assert request.target == "/" + path
    assert request.header_list == [(name.lower(), value) for name, value in headers]
    for name in {name.lower() for name, _ in headers}:
        values = [value for key, value in request.header_list if key == name]
        assert request.headers[name] == ",".join(values)


# -- render_response ---------------------------------------------------------------


def test_render_response_writes_status_headers_length_and_body() -> None:
    body = '{"message":"café"}'.encode()
    response = Response(202, body, [("Content-Type", "application/json")])

    raw = render_response(response, keep_alive=True)

    status, headers, rest = split_response(raw)
    names = [name for name, _ in headers]
    assert status == "HTTP/1.1 202 Accepted"
    assert headers[0] == ("Content-Type", "application/json")
    assert ("Content-Length", str(len(body))) in headers
    assert "Date" in names
    assert "Connection" not in names
    assert rest == body


@pytest.mark.parametrize(
    ("status", "line"),
    [
        pytest.param(200, "HTTP/1.1 200 OK", id="200"),
        pytest.param(404, "HTTP/1.1 404 Not Found", id="404"),
        pytest.param(413, "HTTP/1.1 413 Request Entity Too Large", id="413"),
        pytest.param(599, "HTTP/1.1 599 Unknown", id="unregistered"),
    ],
)
def test_render_response_status_line(status: int, line: str) -> None:
    raw = render_response(Response(status), keep_alive=True)

    assert raw.split(b"\r\n", 1)[0].decode() == line


def test_render_response_closes_when_not_keep_alive() -> None:
    raw = render_response(Response(200, b"x"), keep_alive=False)

    _, headers, body = split_response(raw)
    assert ("Connection", "close") in headers
    assert body == b"x"


def test_render_response_empty_body_has_zero_length() -> None:
    raw = render_response(Response(204), keep_alive=True)

    _, headers, body = split_response(raw)
    assert ("Content-Length", "0") in headers
    assert body == b""
    assert raw.endswith(b"\r\n\r\n")


def test_render_response_keeps_a_given_date() -> None:
    date = "Tue, 01 Jan 2030 00:00:00 GMT"

    raw = render_response(Response(200, b"", [("date", date)]), keep_alive=True)

    _, headers, _ = split_response(raw)
    assert [value for name, value in headers if name.lower() == "date"] == [date]


def test_render_response_keeps_repeated_headers() -> None:
    response = Response(200, b"", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])

    _, headers, _ = split_response(render_response(response, keep_alive=True))

    assert [value for name, value in headers if name == "Set-Cookie"] == [
        "a=1",
        "b=2",
    ]


# -- read_request ------------------------------------------------------------------


def test_read_request_reads_a_content_length_body() -> None:
    request = read(
        b"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world and more"
    )

    assert request is not None
    assert request.body == b"hello world"


def test_read_request_without_a_length_has_no_body() -> None:
    request = read(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")

    assert request is not None
    assert request.path == "/x"
    assert request.body == b""


def test_read_request_empty_content_length_means_no_body() -> None:
    request = read(b"POST /x HTTP/1.1\r\nContent-Length:\r\n\r\n")

    assert request is not None
    assert request.body == b""


@pytest.mark.parametrize(
    ("chunks", "body"),
    [
        pytest.param(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", b"Wikipedia", id="two"),
        pytest.param(b"0\r\n\r\n", b"", id="empty"),
        pytest.param(b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", id="hex-size"),
        pytest.param(b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", id="upper-hex"),
        pytest.param(b"3;name=value\r\nabc\r\n0\r\n\r\n", b"abc", id="chunk-extension"),
        pytest.param(
            b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n",
            b"abc",
            id="trailers",
        ),
        pytest.param(b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n", id="crlf-as-data"),
    ],
)
def test_read_request_reads_a_chunked_body(chunks: bytes, body: bytes) -> None:
    request = read(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)

    assert request is not None
    assert request.body == body


def test_chunked_wins_over_content_length() -> None:
    request = read(
        b"POST /x HTTP/1.1\r\nContent-Length: 100\r\n"
        b"Transfer-Encoding: gzip, Chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )

    assert request is not None
    assert request.body == b"abc"


def test_pipelined_requests_are_read_one_after_another() -> None:
    requests = read_all(
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /c HTTP/1.1\r\n\r\n"
    )

    assert [(r.path, r.body) for r in requests] == [
        ("/a", b"abc"),
        ("/b", b"hi"),
        ("/c", b""),
    ]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"\r\n", id="blank-line"),
        pytest.param(b"  \r\n\t", id="whitespace"),
    ],
)
def test_read_request_is_none_when_the_peer_closed_between_requests(
    data: bytes,
) -> None:
    assert read(data) is None


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            400,
            "connection closed mid-request",
            id="unfinished-head",
        ),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            400,
            "malformed request line",
            id="tls-hello",
        ),
        pytest.param(
            b"hello there\r\n\r\n", 400, "malformed request line", id="garbage"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            400,
            "malformed Content-Length",
            id="length-not-a-number",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            400,
            "malformed Content-Length",
            id="negative-length",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx",
            400,
            "malformed Content-Length",
            id="repeated-length",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
            413,
            "request body too large",
            id="length-over-limit",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n"
            % (MAX_BODY + 1),
            413,
            "request body too large",
            id="chunk-over-limit",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "malformed chunk size",
            id="chunk-size-not-hex",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n",
            431,
            "request head too large",
            id="head-over-limit",
        ),
    ],
)
def test_read_request_refuses(data: bytes, status: int, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        read(data)

    assert caught.value.status == status
    assert str(caught.value).startswith(message)


def test_chunks_adding_up_over_the_limit_are_refused_before_reading_them() -> None:
    half = MAX_BODY // 2 + 1

    async def go() -> BadRequest:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        # Only the first chunk's bytes are there: the second must not be awaited.
        reader.feed_data(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % half
            + b"a" * half
            + b"\r\n%x\r\n" % half
        )
        with pytest.raises(BadRequest) as caught:
            await asyncio.wait_for(read_request(reader), 5)
        return caught.value

    assert asyncio.run(go()).status == 413


def test_a_superscript_digit_content_length_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as caught:
        read(b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nxx")

    assert caught.value.status == 400


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(b"-5\r\nabcde\r\n0\r\n\r\n", id="negative-size"),
        pytest.param(b"1" * (MAX_HEAD + 1) + b"\r\n", id="overlong-size-line"),
    ],
)
def test_a_broken_chunk_size_line_is_a_bad_request(chunks: bytes) -> None:
    with pytest.raises(BadRequest):
        read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)


# -- read_request: a chunked body left to the handler ----------------------------------

CHUNKED = b"POST /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_streamed_body_arrives_chunk_by_chunk_then_its_trailers() -> None:
    async def go() -> None:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        reader.feed_data(CHUNKED + b"3\r\nabc\r\n")

        request = await read_request(reader, always)

        assert request is not None
        assert request.body == b""
        assert request.stream is not None
        chunks = aiter(request.stream)
        assert await anext(chunks) == b"abc"
        # The rest has not arrived yet: the handler sees the first chunk already.
        reader.feed_data(b"2\r\nde\r\n0\r\nX-Error-Type: Function.Oops\r\n\r\n")
        assert await anext(chunks) == b"de"
        with pytest.raises(StopAsyncIteration):
            await anext(chunks)
        assert request.stream.done
        assert request.stream.trailers == {"x-error-type": "Function.Oops"}

    asyncio.run(go())


def test_the_streaming_predicate_is_asked_about_each_request() -> None:
    asked: list[str] = []

    def only_first(request: Request) -> bool:
        asked.append(request.path)
        return request.path == "/first"

    async def go() -> tuple[Request | None, Request | None]:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        reader.feed_data(
            b"POST /first HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\na\r\n0\r\n\r\n"
            b"POST /second HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\nb\r\n0\r\n\r\n"
        )
        reader.feed_eof()
        first = await read_request(reader, only_first)
        assert first is not None and first.stream is not None
        assert await first.stream.read() == b"a"
        return first, await read_request(reader, only_first)

    first, second = asyncio.run(go())

    assert asked == ["/first", "/second"]
    assert first is not None and first.body == b""
    assert second is not None and second.stream is None
    assert second.body == b"b"


@pytest.mark.parametrize(
    ("data", "predicate"),
    [
        pytest.param(CHUNKED + b"1\r\nx\r\n0\r\n\r\n", never, id="declined"),
        pytest.param(
            b"POST /s HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            always,
            id="content-length-is-never-streamed",
        ),
    ],
)
def test_a_body_not_streamed_is_read_whole(
    data: bytes, predicate: Callable[[Request], bool]
) -> None:
    async def go() -> Request | None:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        reader.feed_data(data)
        reader.feed_eof()
        return await read_request(reader, predicate)

    request = asyncio.run(go())

    assert request is not None
    assert request.stream is None
    assert request.body == b"x"


def test_a_streamed_body_over_the_limit_is_refused_as_it_arrives() -> None:
    async def go() -> BadRequest:
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        reader.feed_data(CHUNKED + b"%x\r\n" % (MAX_BODY + 1))
        request = await read_request(reader, always)
        assert request is not None and request.stream is not None
        with pytest.raises(BadRequest) as caught:
            await request.stream.read()
        return caught.value

    assert asyncio.run(go()).status == 413


# -- serve_connection, over a connected socket pair ------------------------------


async def echo(request: Request) -> Response:
    document = {"method": request.method, "path": request.path}
    document["body"] = request.body.decode()
    return Response(200, json.dumps(document).encode())


async def closing(request: Request) -> Response:
    return Response(200, b"bye", close=True)


async def exchange(
    data: bytes,
    handler: Handler,
    streaming: Callable[[Request], bool] | None = None,
) -> bytes:
    """Send ``data`` (then end the stream) to ``serve_connection``; all it answered."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=theirs, limit=MAX_HEAD)
    peer_reader, peer_writer = await asyncio.open_connection(sock=ours)
    served = asyncio.create_task(serve_connection(reader, writer, handler, streaming))
    try:
        peer_writer.write(data)
        await peer_writer.drain()
        peer_writer.write_eof()
        await asyncio.wait_for(served, 5)
        return await asyncio.wait_for(peer_reader.read(), 5)
    finally:
        peer_writer.close()
        await peer_writer.wait_closed()


def test_serve_connection_answers_keep_alive_requests_in_turn() -> None:
    raw = asyncio.run(
        exchange(
            b"POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /two HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nde\r\n0\r\n\r\n",
            echo,
        )
    )

    answers = split_responses(raw)
    assert [status for status, _, _ in answers] == ["HTTP/1.1 200 OK"] * 2
    assert [json.loads(body) for _, _, body in answers] == [
        {"method": "POST", "path": "/one", "body": "abc"},
        {"method": "POST", "path": "/two", "body": "de"},
    ]
    assert all("connection" not in headers for _, headers, _ in answers)


def test_serve_connection_stops_after_connection_close() -> None:
    raw = asyncio.run(
        exchange(
            b"GET /one HTTP/1.1\r\nConnection: close\r\n\r\nGET /two HTTP/1.1\r\n\r\n",
            echo,
        )
    )

    answers = split_responses(raw)
    assert len(answers) == 1
    assert answers[0][1]["connection"] == "close"
    assert json.loads(answers[0][2])["path"] == "/one"


def test_serve_connection_stops_when_the_response_asks_to_close() -> None:
    raw = asyncio.run(
        exchange(b"GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n", closing)
    )

    answers = split_responses(raw)
    assert len(answers) == 1
    assert answers[0][1]["connection"] == "close"
    assert answers[0][2] == b"bye"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"garbage here\r\n\r\n", "HTTP/1.1 400 Bad Request", id="400"),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
            "HTTP/1.1 413 Request Entity Too Large",
            id="413",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
            id="431",
        ),
    ],
)
def test_serve_connection_answers_a_bad_request_and_closes(
    data: bytes, status: str
) -> None:
    raw = asyncio.run(exchange(data + b"GET / HTTP/1.1\r\n\r\n", echo))

    answers = split_responses(raw)
    assert len(answers) == 1
    assert answers[0][0] == status
    assert answers[0][1]["connection"] == "close"
    assert "message" in json.loads(answers[0][2])


def test_serve_connection_after_a_good_request_then_garbage() -> None:
    raw = asyncio.run(exchange(b"GET /ok HTTP/1.1\r\n\r\nnot http\r\n\r\n", echo))

    statuses = [status for status, _, _ in split_responses(raw)]
    assert statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"]


def test_serve_connection_closes_quietly_when_the_peer_ends_mid_body() -> None:
    raw = asyncio.run(
        exchange(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", echo)
    )

    assert raw == b""


def test_the_bad_request_body_is_json_whatever_the_message() -> None:
    raw = asyncio.run(exchange(b'GET /"x\\ HTTP/1.1 extra\r\n\r\n', echo))

    body = split_responses(raw)[0][2]
    assert json.loads(body)["message"].startswith("malformed request line")


def test_connection_close_is_case_insensitive() -> None:
    raw = asyncio.run(
        exchange(
            b"GET /one HTTP/1.1\r\nConnection: Close\r\n\r\nGET /two HTTP/1.1\r\n\r\n",
            echo,
        )
    )

    assert len(split_responses(raw)) == 1


def test_a_streamed_body_the_handler_ignored_is_skipped() -> None:
    async def ignore(request: Request) -> Response:
        return Response(200, request.path.encode())

    async def go() -> bytes:
        return await exchange(
            CHUNKED + b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
            ignore,
            streaming=always,
        )

    answers = split_responses(asyncio.run(go()))

    assert [body for _, _, body in answers] == [b"/s", b"/next"]


def test_a_streamed_response_is_sent_chunked() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"hello, "
        yield b""  # nothing to send: no chunk, and above all no early end
        yield b"world"

    async def stream(request: Request) -> Response:
        return Response(200, headers=[("Content-Type", "text/plain")], stream=pieces())

    raw = asyncio.run(exchange(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", stream))

    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Transfer-Encoding: chunked" in lines
    assert "Content-Type: text/plain" in lines
    assert "Connection: close" in lines
    assert not any(line.startswith("Content-Length") for line in lines)
    assert body == b"7\r\nhello, \r\n5\r\nworld\r\n0\r\n\r\n"


def test_serve_answers_over_loopback_and_records_the_peer() -> None:
    seen: list[Request] = []

    async def handler(request: Request) -> Response:
        seen.append(request)
        return Response(200, b"pong")

    async def go() -> bytes:
        server = await serve(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await writer.wait_closed()
            return answer
        finally:
            server.close()
            await server.wait_closed()

    status, _, body = split_response(asyncio.run(go()))

    assert status == "HTTP/1.1 200 OK"
    assert body == b"pong"
    assert seen[0].path == "/ping"
    assert seen[0].peer is not None
    assert seen[0].peer[0] == "127.0.0.1"


def _exchange(raw: bytes) -> bytes:
    """Send ``raw`` to a real server on loopback; what came back."""

    async def scenario() -> bytes:
        async def handler(request: Request) -> Response:
            return Response(200, request.body or b"ok")

        server = await serve(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                head, _, body = raw.partition(b"\r\n\r\n")
                sock.sendall(head + b"\r\n\r\n")
                received = b""
                if b"100-continue" in head:
                    received += sock.recv(65536)  # the interim answer, before the body
                sock.sendall(body)
                while chunk := sock.recv(65536):
                    received += chunk
                return received

        try:
            return await asyncio.to_thread(client)
        finally:
            server.close()

    return asyncio.run(scenario())


def test_expect_100_continue_is_answered_before_the_body() -> None:
    raw = (
        b"POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
        b"Connection: close\r\n\r\nbody"
    )
    received = _exchange(raw)
    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\nbody")


def test_http_1_0_without_keep_alive_is_answered_and_closed() -> None:
    # The client reads until the server closes: a server that kept the connection
    # open would make this time out.
    received = _exchange(b"GET /x HTTP/1.0\r\nHost: h\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in received
