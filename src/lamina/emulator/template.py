"""Read functions out of an AWS SAM or CloudFormation template."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina import events
from lamina.emulator.async_config import EventInvokeReader, link_destinations
from lamina.emulator.constraints import (
    BadValue,
    Bounded,
    Refused,
    check_function_name,
    check_python_runtime,
    environment_variables,
)
from lamina.emulator.document import read_document
from lamina.emulator.errors import TemplateError
from lamina.emulator.function import (
    MEMORY_RANGE,
    TIMEOUT_RANGE,
    FunctionConfig,
    Layer,
    LogSettings,
)
from lamina.emulator.intrinsics import LAMBDA_FUNCTION, SERVERLESS_FUNCTION, Intrinsics

logger = logging.getLogger(__name__)

SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"

_RUNTIME = re.compile(r"^(python3\.\d+|provided(\.al2|\.al2023)?)$")
_SUPPORTED = {
    "Handler",
    "Runtime",
    "CodeUri",
    "Code",
    "MemorySize",
    "Timeout",
    "Environment",
    "Architectures",
    "Layers",
    "ReservedConcurrentExecutions",
    "EphemeralStorage",
    "FunctionName",
    "FunctionUrlConfig",
    "LoggingConfig",
    "EventInvokeConfig",
    "DeadLetterQueue",
    "DeadLetterConfig",
}
# Properties that mean nothing on one machine; accepted without a word.
_NO_LOCAL_EFFECT = {
    "Description",
    "Role",
    "Policies",
    "Tags",
    "PermissionsBoundary",
    "Tracing",
    "AutoPublishAlias",
    "KmsKeyArn",
    "RuntimeManagementConfig",
    "PackageType",
}
DEFAULT_NAMES = ("template.yaml", "template.yml")
_LOG_FORMATS = ("Text", "JSON")
_APPLICATION_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")


_MEMORY = Bounded("MemorySize", 128, *MEMORY_RANGE, "MB")
_TIMEOUT = Bounded("Timeout", 3, *TIMEOUT_RANGE, "seconds")
_STORAGE = Bounded("Size", 512, 512, 10240, "MB", parent="EphemeralStorage")


@dataclass
class Template:
    path: Path
    functions: dict[str, FunctionConfig] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def find_template(explicit: str | None, cwd: Path | None = None) -> Path:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise TemplateError(str(path), "no such template file")
        return path
    here = cwd or Path.cwd()
    for name in DEFAULT_NAMES:
        if (here / name).is_file():
            return here / name
    raise TemplateError(
        str(here), "no template.yaml or template.yml here; pass --template PATH"
    )


def load_template(path: Path) -> Template:
    """Parse ``path`` into function configurations; warn once per unsupported thing."""
    document = read_document(path)
    if not isinstance(document, dict):
        raise TemplateError(str(path), "not a template: expected a mapping at the top")
    resources = document.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(str(path), "no Resources", field="Resources")
    for section in ("Parameters", "Globals"):
        if not isinstance(document.get(section) or {}, dict):
            raise TemplateError(str(path), "expected a mapping", field=section)

    reader = _Reader(path, document)
    template = Template(path=path)
    for logical_id, resource in resources.items():
        config = _read_resource(reader, str(logical_id), resource)
        if config is None:
            continue
        if config.name in template.functions:
            raise TemplateError(
                str(path),
                f"function name {config.name!r} is already used by another resource",
                str(logical_id),
                "FunctionName",
            )
        template.functions[config.name] = config
    # One line per unsupported property, however many functions use it.
    for name, users in sorted(reader.unsupported.items()):
        reader.warn(
            f"property {name} is not supported locally; ignored ({', '.join(users)})"
        )
    template.warnings = reader.warnings
    link_destinations(template)
    if not template.functions and reader.skipped:
        raise TemplateError(
            str(path),
            f"no function lamina can run: {', '.join(reader.skipped)}; lamina runs "
            "python3.x and provided.* functions from local folders",
        )
    if not template.functions:
        raise TemplateError(
            str(path), "no AWS::Serverless::Function or AWS::Lambda::Function resource"
        )
    return template


def _read_resource(
    reader: _Reader, logical_id: str, resource: Any
) -> FunctionConfig | None:
    """The function a resource declares; None for other resources and skipped ones."""
    if not isinstance(resource, dict):
        raise TemplateError(str(reader.path), "expected a mapping", logical_id)
    if resource.get("Type") not in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
        return None
    try:
        return reader.function(logical_id, resource)
    except TemplateError:
        raise
    except Exception as exc:
        # A shape none of the checks foresaw: still one line that names the resource.
        raise TemplateError(
            str(reader.path),
            f"cannot read this resource ({type(exc).__name__}: {exc})",
            logical_id,
        ) from exc


class _Reader(Intrinsics, EventInvokeReader):
    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = path
        self.base = path.parent
        self.document = document
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self.unsupported: dict[str, list[str]] = {}
        # The functions lamina cannot run, and why: "Api uses nodejs20.x".
        self.skipped: list[str] = []
        # The values being resolved now, to notice one that contains itself.
        self._open: set[int] = set()
        self.globals = (document.get("Globals") or {}).get("Function") or {}
        if not isinstance(self.globals, dict):
            raise TemplateError(str(path), "expected a mapping", "Globals", "Function")
        environment = self.globals.get("Environment")
        self._variables_of(environment, "Globals", "Function.Environment")

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)
            logger.warning("%s", message)

    def fail(self, logical_id: str, name: str, message: str) -> TemplateError:
        return TemplateError(str(self.path), message, logical_id, name)

    # -- functions -------------------------------------------------------------

    def function(
        self, logical_id: str, resource: dict[str, Any]
    ) -> FunctionConfig | None:
        props = resource.get("Properties") or {}
        if not isinstance(props, dict):
            raise self.fail(logical_id, "Properties", "expected a mapping")
        if resource["Type"] == SERVERLESS_FUNCTION:
            props = self._with_globals(logical_id, props)
        props = {
            str(k): self._resolve_property(logical_id, str(k), v)
            for k, v in props.items()
        }

        for name in sorted(set(props) - _SUPPORTED - _NO_LOCAL_EFFECT):
            self.unsupported.setdefault(name, []).append(logical_id)

        runtime = self._runtime(logical_id, props)
        if runtime is None:
            return None
        name = str(props.get("FunctionName") or logical_id)
        if props.get("FunctionName"):
            try:
                check_function_name(name)
            except Refused as exc:
                raise self.fail(logical_id, exc.field, exc.message) from None

        memory = self._int(logical_id, props, _MEMORY)
        timeout = self._int(logical_id, props, _TIMEOUT)
        storage = props.get("EphemeralStorage")
        if storage is None:
            storage = {_STORAGE.name: _STORAGE.default}
        if not isinstance(storage, dict) or _STORAGE.name not in storage:
            raise self.fail(
                logical_id,
                "EphemeralStorage",
                "expected a mapping with Size, such as {Size: 1024}",
            )
        storage_mb = self._int(logical_id, storage, _STORAGE)
        reserved = props.get("ReservedConcurrentExecutions")
        if isinstance(reserved, str) and reserved.isascii() and reserved.isdigit():
            reserved = int(reserved)
        if reserved is not None and (
            not isinstance(reserved, int) or isinstance(reserved, bool) or reserved < 0
        ):
            raise self.fail(
                logical_id,
                "ReservedConcurrentExecutions",
                f"{reserved!r} is not a whole number of 0 or more",
            )

        return FunctionConfig(
            name=name,
            runtime=runtime,
            code_dir=self._code_dir(logical_id, resource["Type"], props),
            handler=str(props.get("Handler") or ""),
            memory_mb=memory,
            timeout_s=float(timeout),
            environment=self._environment(logical_id, props),
            architecture=self._architecture(logical_id, props),
            layers=self._layers(logical_id, props),
            reserved_concurrency=reserved,
            ephemeral_storage_mb=storage_mb,
            sample_events=self._sample_events(logical_id, resource),
            max_concurrency=self._max_concurrency(logical_id, resource),
            url_invoke_mode=self._url_mode(logical_id, props),
            log_settings=self._logging(logical_id, props),
            logical_id=logical_id,
            event_invoke=self._event_invoke(logical_id, props),
        )

    def _resolve_property(self, logical_id: str, name: str, value: Any) -> Any:
        try:
            return self.resolve(value, logical_id)
        except BadValue as exc:
            raise self.fail(logical_id, name, str(exc)) from None

    def _runtime(self, logical_id: str, props: dict[str, Any]) -> str | None:
        """The runtime, or None when lamina cannot run the function (skipped)."""
        runtime = str(props.get("Runtime") or "")
        if props.get("PackageType") == "Image":
            self.warn(
                f"{logical_id}: container image functions are not supported; skipped"
            )
            self.skipped.append(f"{logical_id} is a container image")
            return None
        if not _RUNTIME.match(runtime):
            self.warn(
                f"{logical_id}: runtime {runtime or '(none)'} is not supported "
                "(python3.x and provided.* are); skipped"
            )
            self.skipped.append(f"{logical_id} uses {runtime or 'no runtime'}")
            return None
        if runtime.startswith("python"):
            try:
                check_python_runtime(runtime)
            except Refused as exc:
                raise self.fail(logical_id, exc.field, exc.message) from None
        return runtime

    def _int(self, logical_id: str, props: dict[str, Any], spec: Bounded) -> int:
        name, low, high, unit = spec.name, spec.low, spec.high, spec.unit
        field_name = f"{spec.parent}.{name}" if spec.parent else name
        value = props.get(name, spec.default)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(logical_id, field_name, f"{value!r} is not a whole number")
        if not low <= value <= high:
            raise self.fail(
                logical_id,
                field_name,
                f"{value} is outside Lambda's range of {low}–{high} {unit}",
            )
        return value

    def _code_dir(self, logical_id: str, kind: str, props: dict[str, Any]) -> Path:
        field_name = "CodeUri" if kind == SERVERLESS_FUNCTION else "Code"
        code = props.get(field_name)
        if code is None:
            return self.base
        if not isinstance(code, str):
            raise self.fail(
                logical_id,
                field_name,
                "only a local folder is supported (an S3 location or inline code is not)",
            )
        if code.startswith("s3://"):
            raise self.fail(
                logical_id, field_name, f"{code} is in S3; give a local folder"
            )
        path = (self.base / code).resolve()
        if not path.is_dir():
            raise self.fail(logical_id, field_name, f"folder {path} does not exist")
        return path

    def _max_concurrency(self, logical_id: str, resource: dict[str, Any]) -> int:
        metadata = resource.get("Metadata") or {}
        lamina = metadata.get("Lamina") if isinstance(metadata, dict) else None
        value = lamina.get("MaxConcurrency", 1) if isinstance(lamina, dict) else 1
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 1 <= value <= 1000
        ):
            raise self.fail(
                logical_id,
                "Metadata.Lamina.MaxConcurrency",
                f"{value!r} is not a whole number from 1 to 1000",
            )
        return value

    def _sample_events(
        self, logical_id: str, resource: dict[str, Any]
    ) -> tuple[str, ...]:
        metadata = resource.get("Metadata") or {}
        lamina = metadata.get("Lamina") if isinstance(metadata, dict) else None
        names = lamina.get("SampleEvents") if isinstance(lamina, dict) else None
        if names is None:
            return ()
        field_name = "Metadata.Lamina.SampleEvents"
        if not isinstance(names, list):
            raise self.fail(
                logical_id, field_name, "expected a list of sample event names"
            )
        for name in names:
            if str(name) not in events.names():
                message = events.UnknownEventError(str(name)).args[0]
                raise self.fail(logical_id, field_name, message)
        return tuple(str(name) for name in names)

    def _url_mode(self, logical_id: str, props: dict[str, Any]) -> str | None:
        config = props.get("FunctionUrlConfig")
        if config is None:
            return None
        if not isinstance(config, dict):
            raise self.fail(logical_id, "FunctionUrlConfig", "expected a mapping")
        mode = config.get("InvokeMode", "BUFFERED")
        if mode not in ("BUFFERED", "RESPONSE_STREAM"):
            raise self.fail(
                logical_id,
                "FunctionUrlConfig.InvokeMode",
                f"{mode!r} is not BUFFERED or RESPONSE_STREAM",
            )
        return str(mode)

    def _logging(self, logical_id: str, props: dict[str, Any]) -> LogSettings:
        config = props.get("LoggingConfig")
        if config is None:
            return LogSettings()
        if not isinstance(config, dict):
            raise self.fail(logical_id, "LoggingConfig", "expected a mapping")
        values: dict[str, str | None] = {}
        for name, allowed in (
            ("LogFormat", _LOG_FORMATS),
            ("ApplicationLogLevel", _APPLICATION_LOG_LEVELS),
            ("SystemLogLevel", _SYSTEM_LOG_LEVELS),
        ):
            value = config.get(name)
            if value is not None and value not in allowed:
                raise self.fail(
                    logical_id,
                    f"LoggingConfig.{name}",
                    f"{value!r} is not one of {', '.join(allowed)}",
                )
            values[name] = value
        log_format = values["LogFormat"] or "Text"
        if log_format != "JSON" and (
            values["ApplicationLogLevel"] or values["SystemLogLevel"]
        ):
            # Lambda filters by level only in the JSON format.
            self.warn(
                f"{logical_id}: LoggingConfig log levels apply only with "
                "LogFormat: JSON; ignored"
            )
            values["ApplicationLogLevel"] = values["SystemLogLevel"] = None
        group = config.get("LogGroup")
        return LogSettings(
            format=log_format,
            application_level=values["ApplicationLogLevel"],
            system_level=values["SystemLogLevel"],
            group=str(group) if group else None,
        )

    def _environment(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        env = props.get("Environment")
        variables = self._variables_of(env, logical_id, "Environment")
        try:
            return environment_variables(variables)
        except Refused as exc:
            raise self.fail(logical_id, exc.field, exc.message) from None

    def _variables_of(self, env: Any, resource: str, name: str) -> dict[Any, Any]:
        """The ``Variables`` of an ``Environment`` property, once its shape is right."""
        if env is None:
            return {}
        if not isinstance(env, dict):
            raise TemplateError(
                str(self.path), "expected a mapping with Variables", resource, name
            )
        variables = env.get("Variables")
        if variables is None:
            return {}
        if not isinstance(variables, dict):
            raise TemplateError(
                str(self.path), "expected a mapping", resource, f"{name}.Variables"
            )
        return variables

    def _with_globals(self, logical_id: str, props: dict[Any, Any]) -> dict[Any, Any]:
        """A serverless function's properties, with ``Globals.Function`` under them."""
        merged = dict(self.globals)
        for key, value in props.items():
            if key == "Environment" and key in merged:
                shared = self._variables_of(
                    merged[key], "Globals", "Function.Environment"
                )
                own = self._variables_of(value, logical_id, "Environment")
                merged[key] = {"Variables": {**shared, **own}}
            elif isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + value  # lists add up, Globals' first
            else:
                merged[key] = value
        return merged

    def _architecture(self, logical_id: str, props: dict[str, Any]) -> str:
        archs = props.get("Architectures") or ["x86_64"]
        if not isinstance(archs, list) or len(archs) != 1:
            raise self.fail(
                logical_id, "Architectures", "expected one of [x86_64], [arm64]"
            )
        if archs[0] not in ("x86_64", "arm64"):
            raise self.fail(
                logical_id, "Architectures", f"{archs[0]!r} is not x86_64 or arm64"
            )
        return str(archs[0])

    def _layers(self, logical_id: str, props: dict[str, Any]) -> tuple[Layer, ...]:
        layers = []
        resources = self.document.get("Resources") or {}
        refs = props.get("Layers") or []
        if not isinstance(refs, list):
            raise self.fail(logical_id, "Layers", "expected a list of layers")
        for ref in refs:
            resource = resources.get(ref) if isinstance(ref, str) else None
            if not isinstance(resource, dict) or resource.get("Type") not in (
                SERVERLESS_LAYER,
                LAMBDA_LAYER,
            ):
                self.warn(f"{logical_id}: layer {ref} is not in this template; ignored")
                continue
            layer_props = resource.get("Properties") or {}
            if not isinstance(layer_props, dict):
                raise self.fail(ref, "Properties", "expected a mapping")
            content = layer_props.get("ContentUri") or layer_props.get("Content")
            if not isinstance(content, str) or not (self.base / content).is_dir():
                raise self.fail(ref, "ContentUri", "expected a local folder")
            layers.append(Layer(ref, (self.base / content).resolve()))
        return tuple(layers)
