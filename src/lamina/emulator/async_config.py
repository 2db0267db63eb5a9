"""A function's ``EventInvokeConfig`` and dead-letter queue, read from a template.

Destinations lamina can deliver to: another function of the template (its name,
logical id, ARN or ``!GetAtt X.Arn``), or a JSON-lines file (``file:///abs/path`` or
a path relative to the template's folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.emulator.constraints import Bounded
from lamina.emulator.errors import InvalidParameterValue, TemplateError
from lamina.emulator.function import (
    EVENT_AGE_RANGE,
    RETRY_ATTEMPTS_RANGE,
    Destination,
    EventInvokeConfig,
    parse_function_name,
)

if TYPE_CHECKING:
    from lamina.emulator.template import Template

_RETRIES = Bounded(
    "MaximumRetryAttempts", 2, *RETRY_ATTEMPTS_RANGE, "retries", "EventInvokeConfig"
)
_EVENT_AGE = Bounded(
    "MaximumEventAgeInSeconds", 21600, *EVENT_AGE_RANGE, "seconds", "EventInvokeConfig"
)


class EventInvokeReader:
    """For a template reader: it provides ``base``, ``warn``, ``fail`` and ``_int``."""

    base: Path

    def warn(self, message: str) -> None:
        raise NotImplementedError

    def fail(self, logical_id: str, name: str, message: str) -> TemplateError:
        raise NotImplementedError

    def _int(self, logical_id: str, props: dict[str, Any], spec: Bounded) -> int:
        raise NotImplementedError

    def _event_invoke(
        self, logical_id: str, props: dict[str, Any]
    ) -> EventInvokeConfig:
        config = props.get("EventInvokeConfig") or {}
        if not isinstance(config, dict):
            raise self.fail(logical_id, "EventInvokeConfig", "expected a mapping")
        destinations = config.get("DestinationConfig") or {}
        if not isinstance(destinations, dict):
            raise self.fail(
                logical_id, "EventInvokeConfig.DestinationConfig", "expected a mapping"
            )
        found: dict[str, Destination | None] = {}
        for name in ("OnSuccess", "OnFailure"):
            where = f"EventInvokeConfig.DestinationConfig.{name}"
            spec = destinations.get(name)
            if spec is None:
                found[name] = None
                continue
            if not isinstance(spec, dict) or not spec.get("Destination"):
                raise self.fail(
                    logical_id, where, "expected a mapping with Type and Destination"
                )
            found[name] = self._destination(
                logical_id, where, str(spec["Destination"]), str(spec.get("Type", ""))
            )
        return EventInvokeConfig(
            max_retry_attempts=self._int(logical_id, config, _RETRIES),
            max_event_age_s=self._int(logical_id, config, _EVENT_AGE),
            on_success=found["OnSuccess"],
            on_failure=found["OnFailure"],
            dead_letter=self._dead_letter(logical_id, props),
        )

    def _dead_letter(
        self, logical_id: str, props: dict[str, Any]
    ) -> Destination | None:
        for name in ("DeadLetterQueue", "DeadLetterConfig"):
            spec = props.get(name)
            if spec is None:
                continue
            if not isinstance(spec, dict) or not spec.get("TargetArn"):
                raise self.fail(logical_id, name, "expected a mapping with TargetArn")
            return self._destination(logical_id, name, str(spec["TargetArn"]), "")
        return None

    def _destination(
        self, logical_id: str, where: str, raw: str, kind: str
    ) -> Destination | None:
        """A file (``file:///abs/path`` or a path relative to the template's folder)
        or a function (its name, logical id or ARN); None for a service lamina lacks.
        """
        if raw.startswith("file://"):
            return Destination("file", str(Path(raw.removeprefix("file://"))))
        if not raw.startswith("arn:") and ("/" in raw or "." in raw):
            return Destination("file", str((self.base / raw).resolve()))
        try:
            if kind not in ("", "Lambda"):  # SQS, SNS, EventBridge, S3
                raise InvalidParameterValue(kind)
            ref = parse_function_name(raw)
        except InvalidParameterValue:
            if kind == "Lambda":
                raise self.fail(
                    logical_id, where, f"{raw!r} is not a function"
                ) from None
            self.warn(
                f"{logical_id}: {where} {raw} is not a function or a file; "
                "no records are sent there locally"
            )
            return None
        return Destination("function", ref.name)


def link_destinations(template: Template) -> None:
    """Point every function destination at a function of the template, by its name."""
    names = {config.name: config.name for config in template.functions.values()}
    names.update(
        {config.logical_id: config.name for config in template.functions.values()}
    )
    for key, config in template.functions.items():
        settings = config.event_invoke
        linked: dict[str, Any] = {}
        for attr, where in (
            ("on_success", "EventInvokeConfig.DestinationConfig.OnSuccess"),
            ("on_failure", "EventInvokeConfig.DestinationConfig.OnFailure"),
            ("dead_letter", "DeadLetterQueue"),
        ):
            destination: Destination | None = getattr(settings, attr)
            if destination is None or not destination.is_function:
                continue
            if destination.target not in names:
                raise TemplateError(
                    str(template.path),
                    f"function {destination.target!r} is not in this template",
                    config.logical_id,
                    where,
                )
            linked[attr] = Destination("function", names[destination.target])
        if linked:
            template.functions[key] = dataclasses.replace(
                config, event_invoke=dataclasses.replace(settings, **linked)
            )
