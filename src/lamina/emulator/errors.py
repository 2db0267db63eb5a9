"""Errors lamina raises on purpose: the Lambda side and the toolchain.

::

    LaminaError
    ├── TemplateError        a template lamina cannot run (file, resource, field)
    ├── ListenError          the Invoke API cannot listen on the address it was given
    ├── DependencyError      a function's requirements.txt could not be installed
    ├── SandboxUnavailable   a --sandbox backend this machine cannot give
    ├── CgroupError          a cgroup could not be made or written
    ├── UnknownTarget        a runtime or architecture lamina knows no OS for
    ├── BuildError           a package that cannot be built, or would not run
    ├── InspectError         a path lamina inspect cannot read
    ├── DeployError          a deploy that cannot go on
    └── ServiceError         an Invoke API error, in Lambda's rest-json terms
        ├── ResourceNotFound         404 ResourceNotFoundException
        ├── InvalidRequestContent    400 InvalidRequestContentException
        ├── RequestTooLarge          413 RequestTooLargeException
        ├── TooManyRequests          429 TooManyRequestsException
        └── InvalidParameterValue    400 InvalidParameterValueException

Function failures (a handler that raises, a timeout, a crash) are not exceptions on
this side: they are outcomes of an invoke, carried by ``Outcome``.
"""

from __future__ import annotations

import json


class LaminaError(Exception):
    """Root of everything lamina raises on purpose."""


class TemplateError(LaminaError):
    """The template cannot be run; the message names the file, resource and field."""

    def __init__(
        self, path: str, message: str, resource: str = "", field: str = ""
    ) -> None:
        where = ".".join(part for part in (resource, field) if part)
        super().__init__(
            f"{path}: {where}: {message}" if where else f"{path}: {message}"
        )
        self.path = path
        self.resource = resource
        self.field = field


class ListenError(LaminaError):
    """The Invoke API cannot listen on ``host:port``.

    ``setting`` names what to change, ``"host"`` or ``"port"``, when that is clear.
    """

    def __init__(self, host: str, port: int, reason: str, setting: str = "") -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.setting = setting


class ServiceError(LaminaError):
    """An error the Invoke API answers with: ``x-amzn-ErrorType`` and a JSON body."""

    error_type = "ServiceException"
    status = 500
    kind = "Service"

    def __init__(self, message: str, **extra: str) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> bytes:
        document = {"Type": self.kind, "message": self.message, **self.extra}
        return json.dumps(document).encode()


class ResourceNotFound(ServiceError):
    error_type = "ResourceNotFoundException"
    status = 404
    kind = "User"


class InvalidRequestContent(ServiceError):
    error_type = "InvalidRequestContentException"
    status = 400
    kind = "User"


class RequestTooLarge(ServiceError):
    error_type = "RequestTooLargeException"
    status = 413
    kind = "User"


class TooManyRequests(ServiceError):
    error_type = "TooManyRequestsException"
    status = 429
    kind = "User"

    def __init__(self, message: str, reason: str, retry_after: int = 1) -> None:
        super().__init__(message, Reason=reason)
        self.retry_after = retry_after


class InvalidParameterValue(ServiceError):
    error_type = "InvalidParameterValueException"
    status = 400
    kind = "User"
