"""The calls ``lamina deploy`` makes to AWS Lambda, and what differs before them.

What differs between the template and what Lambda holds is worked out by plain
functions on plain mappings; ``Deployer`` makes the calls and waits for Lambda to
finish each update. ``lamina.toolchain.deploy`` turns what botocore raises into
one line in Lambda's terms.

::

    LaminaError
    └── DeployError      one line in Lambda's terms; ``status`` is the exit status
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    WaiterError,
)

from lamina.emulator.errors import LaminaError
from lamina.emulator.function import FunctionConfig, LogSettings
from lamina.toolchain.build import megabytes

# Lambda finishes most updates in seconds; five minutes is its own waiters' patience.
_WAIT = {"Delay": 1, "MaxAttempts": 300}

Say = Callable[[str], None]


class DeployError(LaminaError):
    """A deploy that cannot go on; ``status`` 2 for the user's input, 1 for AWS."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Code:
    """A deployment zip and Lambda's name for its contents, ``CodeSha256``."""

    path: Path
    data: bytes

    @property
    def sha256(self) -> str:
        return code_sha256(self.data)


@dataclass(frozen=True)
class Wanted:
    """A function as the template wants it on Lambda."""

    name: str
    # CreateFunction / UpdateFunctionConfiguration fields, without Role.
    configuration: dict[str, Any]
    architectures: list[str]
    code: Code
    role: str | None
    # CreateFunctionUrlConfig fields: AuthType, InvokeMode, maybe Cors.
    url: dict[str, Any] | None
    reserved_concurrency: int | None


# -- what differs (no I/O) ----------------------------------------------------------


def code_sha256(data: bytes) -> str:
    """Lambda's ``CodeSha256``: the base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def wanted_configuration(config: FunctionConfig, description: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "Runtime": config.runtime,
        "MemorySize": config.memory_mb,
        "Timeout": int(config.timeout_s),
        "Environment": {"Variables": dict(config.environment)},
        "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
        "Description": description,
    }
    # provided.* functions may have no handler; Lambda then keeps whatever it has.
    if config.handler:
        fields["Handler"] = config.handler
    if config.log_settings != LogSettings():
        logging = {"LogFormat": config.log_settings.format}
        if config.log_settings.application_level:
            logging["ApplicationLogLevel"] = config.log_settings.application_level
        if config.log_settings.system_level:
            logging["SystemLogLevel"] = config.log_settings.system_level
        if config.log_settings.group:
            logging["LogGroup"] = config.log_settings.group
        fields["LoggingConfig"] = logging
    return fields


# What GetFunction leaves out when a field has Lambda's default value.
_ABSENT = {"Description": "", "Environment": {"Variables": {}}}


def configuration_changes(
    wanted: dict[str, Any], deployed: dict[str, Any]
) -> dict[str, Any]:
    """The fields of ``wanted`` whose value Lambda does not hold yet."""
    changes = {}
    for name, value in wanted.items():
        held = deployed.get(name, _ABSENT.get(name))
        if isinstance(value, dict) and isinstance(held, dict):
            # Compare what the template sets; Lambda adds fields of its own.
            held = {key: held.get(key) for key in value}
        if held != value:
            changes[name] = value
    return changes


def describe_change(name: str, old: Any, new: Any) -> str:
    """``MemorySize 128 → 256``; variables by name only, their values may be secret."""
    if name == "Environment":
        before = (old or {}).get("Variables") or {}
        after = new.get("Variables") or {}
        marks = [f"+{key}" for key in sorted(set(after) - set(before))]
        marks += [f"-{key}" for key in sorted(set(before) - set(after))]
        marks += [
            f"~{key}"
            for key in sorted(set(before) & set(after))
            if before[key] != after[key]
        ]
        return f"Environment {' '.join(marks)}"
    if isinstance(new, dict) and len(new) == 1:
        ((key, value),) = new.items()
        old = (old or {}).get(key)
        new = value
    return (
        f"{name} {old!r} → {new!r}" if isinstance(new, str) else f"{name} {old} → {new}"
    )


def size_text(size: int) -> str:
    """``12.3 KB`` below a megabyte, ``4.5 MB`` from there."""
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return megabytes(size)


# -- the AWS side -------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """What Lambda holds for a function: the parts of GetFunction deploy compares."""

    configuration: dict[str, Any]
    reserved_concurrency: int | None


@dataclass(frozen=True)
class Outcome:
    function_arn: str
    alias_arn: str
    version: str
    url: str | None


# What the console adds for a public (AuthType NONE) function URL: since October
# 2025 Lambda wants both statements before it lets anyone through.
_PUBLIC_URL_STATEMENTS: tuple[dict[str, Any], ...] = (
    {
        "StatementId": "FunctionURLAllowPublicAccess",
        "Action": "lambda:InvokeFunctionUrl",
        "Principal": "*",
        "FunctionUrlAuthType": "NONE",
    },
    {
        "StatementId": "FunctionURLAllowInvokeAction",
        "Action": "lambda:InvokeFunction",
        "Principal": "*",
        "InvokedViaFunctionUrl": True,
    },
)


_PUBLIC_STATEMENT_IDS = {str(s["StatementId"]) for s in _PUBLIC_URL_STATEMENTS}


class Deployer:
    """Brings functions on Lambda in line with what the template wants."""

    def __init__(self, client: Any, alias: str, say: Say) -> None:
        self.client = client
        self.alias = alias
        self.say = say

    def deployed(self, name: str) -> Deployed | None:
        answer = self._find("get_function", FunctionName=name)
        if answer is None:
            return None
        concurrency = answer.get("Concurrency") or {}
        return Deployed(
            answer["Configuration"], concurrency.get("ReservedConcurrentExecutions")
        )

    # -- read-only ------------------------------------------------------------------

    def preview(self, want: Wanted, have: Deployed | None) -> list[str]:
        """What deploying ``want`` would do, one line per thing; read-only calls."""
        name = want.name
        if have is None:
            settings = want.configuration
            lines = [
                f"{name}: would be created: {settings['Runtime']}, "
                f"{settings['MemorySize']} MB, {settings['Timeout']} s, "
                f"{want.architectures[0]}, code {size_text(len(want.code.data))} "
                f"(CodeSha256 {want.code.sha256})",
                f"{name}: version 1 would be published, alias {self.alias} created",
            ]
            if want.url:
                lines.append(
                    f"{name}: function URL would be created ({_url_text(want.url)})"
                )
            return lines

        changes = self._differences(want, have)
        alias = self._alias(name)
        url_lines, is_url_changed = self._url_preview(want, alias is not None)
        if changes:
            lines = [f"{name}: would be updated: {'; '.join(changes)}"]
        elif is_url_changed:
            lines = [f"{name}: code and configuration up to date"]
        else:
            lines = [f"{name}: up to date"]
        if alias is None:
            lines.append(f"{name}: alias {self.alias} would be created")
        elif changes:
            lines.append(
                f"{name}: alias {self.alias} would move from version "
                f"{alias['FunctionVersion']} to a new version"
            )
        else:
            lines.append(
                f"{name}: alias {self.alias} at version {alias['FunctionVersion']}"
            )
        return lines + url_lines

    def _url_preview(self, want: Wanted, has_alias: bool) -> tuple[list[str], bool]:
        """What would happen to the alias's function URL, and whether it changes."""
        name = want.name
        current = self._url_config(name) if has_alias else None
        if want.url is None:
            if current is None:
                return [], False
            deleted = (
                f"{name}: function URL would be deleted ({current['FunctionUrl']})"
            )
            return [deleted, *self._public_statements_preview(name)], True
        if current is None:
            created = f"{name}: function URL would be created ({_url_text(want.url)})"
            return [created], True

        lines = []
        if url_changes := _url_changes(want.url, current):
            shown = ", ".join(
                f"{k} {current.get(k)} → {v}" for k, v in url_changes.items()
            )
            lines.append(f"{name}: function URL would change: {shown}")
        if want.url["AuthType"] != "NONE":
            lines += self._public_statements_preview(name)
        if not lines:
            return [f"{name}: function URL {current['FunctionUrl']}"], False
        return lines, True

    def _public_statements_preview(self, name: str) -> list[str]:
        found = _PUBLIC_STATEMENT_IDS & self._statement_ids(name)
        return [
            f"{name}: public access statement {sid} would be removed"
            for sid in sorted(found)
        ]

    def _differences(self, want: Wanted, have: Deployed) -> list[str]:
        held = have.configuration
        found = []
        if _code_differs(want, held):
            found.append(
                f"code (CodeSha256 {held.get('CodeSha256')} → {want.code.sha256})"
            )
        if machine := _architecture_change(want, held):
            found.append(machine)
        for field, value in self._configuration_changes(want, held).items():
            found.append(describe_change(field, held.get(field), value))
        if have.reserved_concurrency != want.reserved_concurrency:
            found.append(
                f"ReservedConcurrentExecutions {have.reserved_concurrency} → "
                f"{want.reserved_concurrency}"
            )
        return found

    def _configuration_changes(
        self, want: Wanted, held: dict[str, Any]
    ) -> dict[str, Any]:
        fields = dict(want.configuration)
        if want.role:
            fields["Role"] = want.role
        return configuration_changes(fields, held)

    def _find(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """A read that may find nothing there: None for ResourceNotFoundException."""
        try:
            return dict(getattr(self.client, operation)(**params))
        except ClientError as exc:
            if error_of(exc)[0] == "ResourceNotFoundException":
                return None
            raise

    def _alias(self, name: str) -> dict[str, Any] | None:
        return self._find("get_alias", FunctionName=name, Name=self.alias)

    def _url_config(self, name: str) -> dict[str, Any] | None:
        return self._find(
            "get_function_url_config", FunctionName=name, Qualifier=self.alias
        )

    # -- changes --------------------------------------------------------------------

    def deploy(self, want: Wanted, have: Deployed | None) -> Outcome:
        if have is None:
            arn = self._create(want)
        else:
            arn = str(have.configuration["FunctionArn"])
            self._update(want, have)
        self._set_concurrency(want, have)

        answer = self.client.publish_version(
            FunctionName=want.name, CodeSha256=want.code.sha256
        )
        version = str(answer["Version"])
        alias_arn = self._point_alias(want.name, version)
        url = self._function_url(want, want.url) if want.url else None
        if want.url is None:
            self._delete_function_url(want.name)
        return Outcome(arn, alias_arn, version, url)

    def _create(self, want: Wanted) -> str:
        answer = self.client.create_function(
            FunctionName=want.name,
            Role=want.role,
            Code={"ZipFile": want.code.data},
            Architectures=want.architectures,
            **want.configuration,
        )
        self.say(
            f"  {want.name}: created ({size_text(len(want.code.data))} of code, "
            f"CodeSha256 {want.code.sha256})"
        )
        self._wait(want.name, "function_active_v2", "creation")
        return str(answer["FunctionArn"])

    def _update(self, want: Wanted, have: Deployed) -> None:
        name, held = want.name, have.configuration
        if (
            held.get("LastUpdateStatus") == "InProgress"
            or held.get("State") == "Pending"
        ):
            self._wait(name, "function_updated_v2", "update already in progress")

        machine = _architecture_change(want, held)
        if _code_differs(want, held) or machine:
            self.client.update_function_code(
                FunctionName=name,
                ZipFile=want.code.data,
                Architectures=want.architectures,
            )
            self.say(
                f"  {name}: code updated (CodeSha256 {held.get('CodeSha256')} → "
                f"{want.code.sha256}{'; ' + machine if machine else ''})"
            )
            self._wait(name, "function_updated_v2", "code update")
        else:
            self.say(f"  {name}: code unchanged (CodeSha256 {want.code.sha256})")

        changes = self._configuration_changes(want, held)
        if not changes:
            self.say(f"  {name}: configuration unchanged")
            return
        self.client.update_function_configuration(FunctionName=name, **changes)
        shown = "; ".join(
            describe_change(k, held.get(k), v) for k, v in changes.items()
        )
        self.say(f"  {name}: configuration updated: {shown}")
        self._wait(name, "function_updated_v2", "configuration update")

    def _set_concurrency(self, want: Wanted, have: Deployed | None) -> None:
        held = have.reserved_concurrency if have else None
        if held == want.reserved_concurrency:
            return
        if want.reserved_concurrency is None:
            self.client.delete_function_concurrency(FunctionName=want.name)
        else:
            self.client.put_function_concurrency(
                FunctionName=want.name,
                ReservedConcurrentExecutions=want.reserved_concurrency,
            )
        self.say(
            f"  {want.name}: reserved concurrency {held} → {want.reserved_concurrency}"
        )

    def _wait(self, name: str, waiter: str, what: str) -> None:
        self.say(f"  {name}: waiting for Lambda to finish the {what}")
        try:
            self.client.get_waiter(waiter).wait(FunctionName=name, WaiterConfig=_WAIT)
        except WaiterError as exc:
            raise DeployError(f"{name}: {_waiter_problem(exc, what)}") from exc

    def _point_alias(self, name: str, version: str) -> str:
        current = self._alias(name)
        if current is None:
            answer = self.client.create_alias(
                FunctionName=name, Name=self.alias, FunctionVersion=version
            )
            self.say(f"  {name}: version {version}; alias {self.alias} created")
        elif current["FunctionVersion"] != version:
            answer = self.client.update_alias(
                FunctionName=name, Name=self.alias, FunctionVersion=version
            )
            self.say(
                f"  {name}: version {version}; alias {self.alias} moved from version "
                f"{current['FunctionVersion']}"
            )
        else:
            answer = current
            self.say(
                f"  {name}: version {version} (nothing new to publish); alias "
                f"{self.alias} already there"
            )
        return str(answer["AliasArn"])

    def _function_url(self, want: Wanted, url: dict[str, Any]) -> str:
        name = want.name
        current = self._url_config(name)
        if current is None:
            answer = self.client.create_function_url_config(
                FunctionName=name, Qualifier=self.alias, **url
            )
            self.say(f"  {name}: function URL created ({_url_text(url)})")
        elif changes := _url_changes(url, current):
            answer = self.client.update_function_url_config(
                FunctionName=name, Qualifier=self.alias, **changes
            )
            self.say(f"  {name}: function URL updated ({_url_text(url)})")
        else:
            answer = current
            self.say(f"  {name}: function URL unchanged")
        if url["AuthType"] == "NONE":
            self._allow_public_url(name)
        else:
            self._forbid_public_url(name)
        return str(answer["FunctionUrl"])

    def _delete_function_url(self, name: str) -> None:
        """Take down the alias's function URL the template no longer has."""
        current = self._url_config(name)
        if current is not None:
            self.client.delete_function_url_config(
                FunctionName=name, Qualifier=self.alias
            )
            self.say(f"  {name}: function URL {current['FunctionUrl']} deleted")
        self._forbid_public_url(name)

    def _forbid_public_url(self, name: str) -> None:
        """Remove the statements ``_allow_public_url`` adds for AuthType NONE."""
        for sid in sorted(_PUBLIC_STATEMENT_IDS & self._statement_ids(name)):
            self.client.remove_permission(
                FunctionName=name, StatementId=sid, Qualifier=self.alias
            )
            self.say(f"  {name}: public access statement {sid} removed")

    def _allow_public_url(self, name: str) -> None:
        present = self._statement_ids(name)
        accepted = self.client.meta.service_model.operation_model(
            "AddPermission"
        ).input_shape.members
        for statement in _PUBLIC_URL_STATEMENTS:
            if statement["StatementId"] in present:
                continue
            if not set(statement) <= set(accepted):
                # TODO: an older botocore cannot send InvokedViaFunctionUrl; upgrading
                # boto3 is the fix, until then the URL may answer 403.
                self.say(
                    f"  {name}: this boto3 cannot grant {statement['Action']} for the "
                    "function URL; upgrade boto3"
                )
                continue
            self.client.add_permission(
                FunctionName=name, Qualifier=self.alias, **statement
            )
            self.say(
                f"  {name}: allowed {statement['Action']} for anyone (AuthType NONE)"
            )

    def _statement_ids(self, name: str) -> set[str]:
        answer = self._find("get_policy", FunctionName=name, Qualifier=self.alias)
        if answer is None:
            return set()
        statements = json.loads(answer["Policy"]).get("Statement") or []
        return {str(s.get("Sid")) for s in statements if isinstance(s, dict)}


def _code_differs(want: Wanted, held: dict[str, Any]) -> bool:
    return held.get("CodeSha256") != want.code.sha256


def _architecture_change(want: Wanted, held: dict[str, Any]) -> str:
    """``Architectures x86_64 → arm64``, or nothing; it goes with the code on Lambda."""
    architectures = held.get("Architectures") or ["x86_64"]
    if architectures == want.architectures:
        return ""
    return f"Architectures {architectures[0]} → {want.architectures[0]}"


def _url_changes(url: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in url.items() if current.get(key) != value}


def _url_text(url: dict[str, Any]) -> str:
    return f"AuthType {url['AuthType']}, InvokeMode {url['InvokeMode']}"


# -- errors, in Lambda's terms ------------------------------------------------------


def error_of(exc: ClientError) -> tuple[str, str]:
    """The error code and message of an AWS answer, the message on one line."""
    error = exc.response.get("Error") or {}
    code, message = str(error.get("Code") or ""), str(error.get("Message") or "")
    # An answer in XML to this JSON API (a gateway, a test server's IAM check): read
    # the code and message out of the markup rather than show it.
    if message.lstrip().startswith("<"):
        code = _xml_text("Code", message) or code
        message = _xml_text("Message", message) or message
    return code, " ".join(message.split())


def _xml_text(tag: str, text: str) -> str:
    found = re.search(rf"<{tag}>([^<]*)</{tag}>", text)
    return found.group(1) if found else ""


def _waiter_problem(exc: WaiterError, what: str) -> str:
    last = exc.last_response or {}
    if "Error" in last:
        error = last["Error"]
        return f"{error.get('Code')} on lambda:GetFunction: {error.get('Message')}"
    held = last.get("Configuration") or {}
    status = held.get("LastUpdateStatus") or held.get("State")
    if status == "Failed":
        reason = held.get("LastUpdateStatusReason") or held.get("StateReason")
        code = held.get("LastUpdateStatusReasonCode") or held.get("StateReasonCode")
        return f"the {what} failed: {code}: {reason}"
    return f"the {what} did not finish within five minutes (status {status})"
