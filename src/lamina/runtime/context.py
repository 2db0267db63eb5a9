"""The context object a handler receives, with the attributes AWS's Python context has."""

from __future__ import annotations

import os
import time
from contextvars import ContextVar

# typing stays off the cold-start path: these names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The invocation a piece of code runs for. Context variables, not process globals:
# with several invocations in flight (AWS_LAMBDA_MAX_CONCURRENCY) each thread or
# task sees its own.
request_id_var: ContextVar[str | None] = ContextVar("lamina_request_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("lamina_trace_id", default=None)


def current_request_id() -> str | None:
    """The request id of the invocation this code runs for, if any."""
    return request_id_var.get()


def current_trace_id() -> str | None:
    """The X-Ray trace id of the invocation this code runs for, if any."""
    return trace_id_var.get()


class CognitoIdentity:
    """``context.identity``: the Amazon Cognito identity, when the caller had one."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.cognito_identity_id: str | None = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id: str | None = data.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity(cognito_identity_id={self.cognito_identity_id!r}, "
            f"cognito_identity_pool_id={self.cognito_identity_pool_id!r})"
        )


class Client:
    """``context.client_context.client``: the mobile client that called."""

    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        self.installation_id: str | None = data.get("installation_id")
        self.app_title: str | None = data.get("app_title")
        self.app_version_name: str | None = data.get("app_version_name")
        self.app_version_code: str | None = data.get("app_version_code")
        self.app_package_name: str | None = data.get("app_package_name")


class ClientContext:
    """``context.client_context``: what the caller passed as client context."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        client = data.get("client")
        self.client: Client | None = (
            Client(client) if isinstance(client, dict) else None
        )
        self.custom: dict[str, Any] | None = data.get("custom")
        self.env: dict[str, Any] | None = data.get("env")


class LambdaContext:
    """Everything a handler can ask about the invocation and the function."""

    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        *,
        identity: dict[str, Any] | None = None,
        client_context: dict[str, Any] | None = None,
        tenant_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = CognitoIdentity(identity)
        self.client_context = ClientContext(client_context) if client_context else None
        self.tenant_id = tenant_id
        self.trace_id = trace_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r}, "
            f"invoked_function_arn={self.invoked_function_arn!r})"
        )
