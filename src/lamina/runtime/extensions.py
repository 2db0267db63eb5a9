"""A client for the Lambda Extensions API (2020-01-01), standard library only.

An external extension is an executable in ``/opt/extensions`` (a layer's
``extensions/`` folder): Lambda starts it before the runtime, and it registers
under its own file name. An internal extension is a thread of the runtime process
that registers under any other name, during the init phase. Both then long-poll
for events::

    client = ExtensionClient()
    client.register("my-extension", ["INVOKE", "SHUTDOWN"])
    while True:
        event = client.next_event()
        if event["eventType"] == "SHUTDOWN":
            break

One client holds one connection: a thread needs its own client.
"""

from __future__ import annotations

import os
import sys

from lamina.runtime import jsonfast
from lamina.runtime.api import RuntimeAPI, RuntimeAPIError

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

API_VERSION = "/2020-01-01/extension"
NAME_HEADER = "Lambda-Extension-Name"
IDENTIFIER_HEADER = "Lambda-Extension-Identifier"
ERROR_TYPE_HEADER = "Lambda-Extension-Function-Error-Type"
ACCEPT_FEATURE_HEADER = "Lambda-Extension-Accept-Feature"
INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"


class ExtensionAPIError(RuntimeAPIError):
    """The Extensions API refused a call; ``error_type`` is Lambda's name for why."""

    def __init__(self, path: str, status: int, body: bytes) -> None:
        super().__init__(path, status, body)
        try:
            document = jsonfast.loads(body)
        except ValueError:
            document = None
        self.error_type = ""
        if isinstance(document, dict):
            self.error_type = str(document.get("errorType") or "")


class ExtensionClient:
    """Blocking client for one extension: register once, then poll for events."""

    def __init__(self, address: str | None = None) -> None:
        self._api = RuntimeAPI(address or os.environ["AWS_LAMBDA_RUNTIME_API"])
        self.identifier: str | None = None
        # What Lambda answered to the registration: functionName, functionVersion,
        # handler (and accountId when asked for).
        self.function: dict[str, Any] = {}

    def close(self) -> None:
        self._api.close()

    def register(
        self,
        name: str | None = None,
        events: Iterable[str] = (INVOKE, SHUTDOWN),
        *,
        account_id: bool = False,
    ) -> dict[str, Any]:
        """Register; ``name`` defaults to this program's file name (external use)."""
        headers = [(NAME_HEADER, name or os.path.basename(sys.argv[0]))]
        if account_id:
            headers.append((ACCEPT_FEATURE_HEADER, "accountId"))
        body = jsonfast.dumps({"events": list(events)}).encode()
        status, answer_headers, answer = self._call(b"POST", "/register", body, headers)
        if status != 200:
            raise ExtensionAPIError(API_VERSION + "/register", status, answer)
        self.identifier = answer_headers.get(IDENTIFIER_HEADER.lower())
        self.function = jsonfast.loads(answer) if answer else {}
        return self.function

    def next_event(self) -> dict[str, Any]:
        """Wait for the next event: ``{"eventType": "INVOKE" | "SHUTDOWN", ...}``."""
        status, _, answer = self._call(b"GET", "/event/next", b"", self._identity())
        if status != 200:
            raise ExtensionAPIError(API_VERSION + "/event/next", status, answer)
        event: dict[str, Any] = jsonfast.loads(answer)
        return event

    def init_error(
        self, error_type: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Tell Lambda the extension failed to initialize; then exit."""
        self._post_error("/init/error", error_type, payload)

    def exit_error(
        self, error_type: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Tell Lambda the extension is about to exit because it failed; then exit."""
        self._post_error("/exit/error", error_type, payload)

    def _post_error(
        self, route: str, error_type: str, payload: dict[str, Any] | None
    ) -> None:
        headers = [*self._identity(), (ERROR_TYPE_HEADER, error_type)]
        body = b""
        if payload is not None:
            body = jsonfast.dumps(payload).encode("utf-8", "backslashreplace")
            headers.append(("Content-Type", "application/json"))
        status, _, answer = self._call(b"POST", route, body, headers)
        if status != 202:
            raise ExtensionAPIError(API_VERSION + route, status, answer)

    def _identity(self) -> list[tuple[str, str]]:
        if self.identifier is None:
            raise RuntimeError("register the extension first")
        return [(IDENTIFIER_HEADER, self.identifier)]

    def _call(
        self, method: bytes, route: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], bytes]:
        # The Runtime API client's wire code serves this API too: same host, same
        # HTTP/1.1 on one kept-alive socket.
        return self._api._request(method, API_VERSION + route, body, headers)


def run_internal(
    name: str,
    on_event: Callable[[dict[str, Any]], object],
    events: Iterable[str] = (INVOKE,),
) -> ExtensionClient:
    """Register an internal extension now and serve its events on a daemon thread.

    Call it during the init phase (at import of the handler's module): Lambda
    closes registration when the runtime asks for its first event. Internal
    extensions may only subscribe to INVOKE.
    """
    import threading

    client = ExtensionClient()
    client.register(name, events)

    def serve() -> None:
        while True:
            event = client.next_event()
            try:
                on_event(event)
            except Exception as exc:
                # One bad event must not end the extension: the environment would
                # wait for it until the invoke times out.
                from lamina.runtime.faults import exception_payload
                from lamina.runtime.logsink import log_error

                log_error(exception_payload(exc))

    threading.Thread(target=serve, name=f"extension-{name}", daemon=True).start()
    return client
