"""A small HTTP/1.1 client for the Lambda Runtime API, on one keep-alive socket.

``http.client`` would pull ``email`` and friends into every cold start; the Runtime
API needs only a handful of request shapes, so they are written here directly.
"""

from __future__ import annotations

# The C module behind ``socket``: the Python wrapper would bring ``selectors`` and
# the address-family enums into every cold start, for nothing this client uses.
import _socket

API_VERSION = "/2018-06-01"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
ERROR_BODY_HEADER = "Lambda-Runtime-Function-Error-Body"
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
_MAX_XRAY_CAUSE = 1024 * 1024


class RuntimeAPIError(Exception):
    """The Runtime API answered with an unexpected status, or the link broke."""

    def __init__(self, path: str, status: int, body: bytes) -> None:
        super().__init__(
            f"Runtime API {path} answered {status}: {body[:200].decode(errors='replace')}"
        )
        self.path = path
        self.status = status
        self.body = body


class Invocation:
    """One event handed out by ``/runtime/invocation/next``."""

    __slots__ = (
        "body",
        "client_context",
        "cognito_identity",
        "content_type",
        "deadline_ms",
        "function_arn",
        "invocation_id",
        "request_id",
        "tenant_id",
        "trace_id",
    )

    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        function_arn: str,
        *,
        trace_id: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        tenant_id: str | None = None,
        invocation_id: str | None = None,
        content_type: str = "application/json",
        body: bytes = b"",
    ) -> None:
        self.request_id = request_id
        self.deadline_ms = deadline_ms
        self.function_arn = function_arn
        self.trace_id = trace_id
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.tenant_id = tenant_id
        self.invocation_id = invocation_id
        self.content_type = content_type
        self.body = body


_NEXT = API_VERSION + "/runtime/invocation/next"


def response_path(request_id: str) -> str:
    return f"{API_VERSION}/runtime/invocation/{request_id}/response"


def _invocation(status: int, headers: dict[str, str], body: bytes) -> Invocation:
    if status != 200:
        raise RuntimeAPIError("/runtime/invocation/next", status, body)
    get = headers.get
    return Invocation(
        request_id=get("lambda-runtime-aws-request-id", ""),
        deadline_ms=int(get("lambda-runtime-deadline-ms") or 0),
        function_arn=get("lambda-runtime-invoked-function-arn", ""),
        trace_id=get("lambda-runtime-trace-id"),
        client_context=get("lambda-runtime-client-context"),
        cognito_identity=get("lambda-runtime-cognito-identity"),
        tenant_id=get("lambda-runtime-aws-tenant-id"),
        invocation_id=get("lambda-runtime-invocation-id"),
        content_type=get("content-type", "application/json"),
        body=body,
    )


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"AWS_LAMBDA_RUNTIME_API is not host:port: {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class RuntimeAPI:
    """Blocking client. One instance per thread: a socket is not shared."""

    def __init__(self, address: str) -> None:
        self._address = split_address(address)
        self._host = address.encode("ascii")
        # The same bytes before every event: built once.
        self._next_request = self._message(b"GET", _NEXT, b"", ())
        self._sock: _socket.socket | None = None
        self._file: object = None

    def close(self) -> None:
        if self._sock is not None:
            # shutdown() first: it also wakes a thread blocked reading the socket.
            try:
                self._sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
            self._file.close()  # type: ignore[attr-defined]
            self._sock.close()
            self._sock = None

    # -- the four calls ---------------------------------------------------------

    def next(self) -> Invocation:
        status, headers, body = self._send_and_read(self._next_request)
        return _invocation(status, headers, body)

    def respond_then_next(
        self, request_id: str, body: bytes, content_type: str = "application/json"
    ) -> Invocation:
        """Post a result and ask for the next event in one write (HTTP pipelining).

        The ``/next`` request is already waiting when the Runtime API has taken the
        result, instead of one round trip later; and it is one system call, not two.
        """
        path = response_path(request_id)
        post = self._message(b"POST", path, body, (("Content-Type", content_type),))
        self._send_raw(post + self._next_request)
        status, _, answer = self._read_response()
        if status not in (202, 413):
            raise RuntimeAPIError(path, status, answer)
        if self._sock is None:  # the server closed after the result: ask again
            return self.next()
        return _invocation(*self._read_response())

    def post_error(
        self, request_id: str, error: bytes, error_type: str, xray_cause: str = ""
    ) -> None:
        path = f"{API_VERSION}/runtime/invocation/{request_id}/error"
        self._post_error(path, error, error_type, xray_cause)

    def post_init_error(self, error: bytes, error_type: str) -> None:
        self._post_error(API_VERSION + "/runtime/init/error", error, error_type, "")

    def _post_error(self, path: str, error: bytes, error_type: str, cause: str) -> None:
        headers = [
            ("Content-Type", "application/json"),
            (ERROR_TYPE_HEADER, error_type),
        ]
        if cause and len(cause) < _MAX_XRAY_CAUSE and cause.isascii():
            headers.append((XRAY_CAUSE_HEADER, cause))
        status, _, answer = self._request(b"POST", path, error, headers)
        if status != 202:
            raise RuntimeAPIError(path, status, answer)

    def start_stream(self, request_id: str, content_type: str) -> StreamingPost:
        """Begin a streamed response: a chunked POST that stays open while it is fed."""
        return StreamingPost(self, request_id, content_type)

    # -- the wire ---------------------------------------------------------------

    def _send_raw(self, data: bytes) -> None:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        self._sock.sendall(data)

    def _connect(self) -> None:
        host, port = self._address
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.connect((host, port))
        except OSError:
            sock.close()
            raise
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._sock = sock
        # A buffered reader straight on the descriptor: read(2) works on sockets.
        self._file = open(sock.fileno(), "rb", buffering=65536, closefd=False)  # noqa: SIM115

    def _request(
        self,
        method: bytes,
        path: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    ) -> tuple[int, dict[str, str], bytes]:
        return self._send_and_read(self._message(method, path, body, headers))

    def _send_and_read(self, message: bytes) -> tuple[int, dict[str, str], bytes]:
        # A kept-alive socket may have been closed by the server while idle: one
        # fresh connection is tried before giving up.
        reused = self._sock is not None
        try:
            self._send_raw(message)
            return self._read_response()
        except (ConnectionError, EOFError):
            self.close()
            if not reused:
                raise
            self._send_raw(message)
            return self._read_response()

    def _message(
        self,
        method: bytes,
        path: str,
        body: bytes,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    ) -> bytes:
        head = [method, b" ", path.encode("ascii"), b" HTTP/1.1\r\nHost: ", self._host]
        for name, value in headers:
            head.append(f"\r\n{name}: {value}".encode("latin-1"))
        if method == b"POST":
            head.append(b"\r\nContent-Length: %d" % len(body))
        head.append(b"\r\n\r\n")
        return b"".join(head) + body

    def _read_response(self) -> tuple[int, dict[str, str], bytes]:
        readline = self._file.readline  # type: ignore[attr-defined]
        read = self._file.read  # type: ignore[attr-defined]
        line = readline(65537)
        if not line:
            raise EOFError("Runtime API closed the connection")
        status = int(line.split(None, 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()

        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(readline(65537).split(b";", 1)[0], 16)
                if size == 0:
                    while readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(read(size))
                readline(65537)
            body = b"".join(parts)
        else:
            body = read(int(headers.get("content-length", "0")))

        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


class StreamingPost:
    """A response sent in chunks; a failure part-way is sent as HTTP trailers."""

    def __init__(self, api: RuntimeAPI, request_id: str, content_type: str) -> None:
        self._api = api
        self.path = response_path(request_id)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {api._host.decode()}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"{RESPONSE_MODE_HEADER}: streaming\r\n"
            "Transfer-Encoding: chunked\r\n"
            f"Trailer: {ERROR_TYPE_HEADER}, {ERROR_BODY_HEADER}\r\n\r\n"
        )
        api._send_raw(head.encode("latin-1"))

    def send(self, chunk: bytes) -> None:
        if chunk:
            self._api._send_raw(b"%x\r\n%b\r\n" % (len(chunk), chunk))

    def finish(self) -> int:
        self._api._send_raw(b"0\r\n\r\n")
        return self._answer()

    def fail(self, error_type: str, error: bytes) -> int:
        import binascii

        encoded = binascii.b2a_base64(error, newline=False).decode("ascii")
        trailers = (
            f"0\r\n{ERROR_TYPE_HEADER}: {error_type}\r\n"
            f"{ERROR_BODY_HEADER}: {encoded}\r\n\r\n"
        )
        self._api._send_raw(trailers.encode("latin-1"))
        return self._answer()

    def _answer(self) -> int:
        status, _, body = self._api._read_response()
        if status not in (202, 413):
            raise RuntimeAPIError(self.path, status, body)
        return status
