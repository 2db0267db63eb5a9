"""Read functions out of an AWS SAM or CloudFormation template."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lamina.emulator.errors import TemplateError
from lamina.emulator.function import (
    ACCOUNT_ID,
    MEMORY_RANGE,
    TIMEOUT_RANGE,
    FunctionConfig,
    Layer,
    LogSettings,
    region,
)

logger = logging.getLogger(__name__)

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
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


@dataclass(frozen=True)
class _Bounded:
    """A whole-number property and the range Lambda accepts for it."""

    name: str
    default: int
    low: int
    high: int
    unit: str


_MEMORY = _Bounded("MemorySize", 128, *MEMORY_RANGE, "MB")
_TIMEOUT = _Bounded("Timeout", 3, *TIMEOUT_RANGE, "seconds")
_STORAGE = _Bounded("Size", 512, 512, 10240, "MB")


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (``!Ref``, ``!Sub``, ...)."""


def _intrinsic(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


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
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TemplateError(str(path), f"not valid YAML{where}: {exc}") from exc
    except OSError as exc:
        raise TemplateError(str(path), f"cannot read: {exc.strerror}") from exc
    if not isinstance(document, dict):
        raise TemplateError(str(path), "not a template: expected a mapping at the top")
    resources = document.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(str(path), "no Resources", field="Resources")

    reader = _Reader(path, document)
    template = Template(path=path)
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            raise TemplateError(str(path), "expected a mapping", logical_id)
        kind = resource.get("Type")
        if kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            config = reader.function(logical_id, resource)
            if config is not None:
                if config.name in template.functions:
                    raise TemplateError(
                        str(path),
                        f"function name {config.name!r} is already used by another "
                        "resource",
                        logical_id,
                        "FunctionName",
                    )
                template.functions[config.name] = config
    # One line per unsupported property, however many functions use it.
    for name, users in sorted(reader.unsupported.items()):
        reader.warn(
            f"property {name} is not supported locally; ignored ({', '.join(users)})"
        )
    template.warnings = reader.warnings
    if not template.functions:
        raise TemplateError(
            str(path), "no AWS::Serverless::Function or AWS::Lambda::Function resource"
        )
    return template


class _Reader:
    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = path
        self.base = path.parent
        self.document = document
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self.unsupported: dict[str, list[str]] = {}
        globals_ = document.get("Globals") or {}
        self.globals: dict[str, Any] = (
            globals_.get("Function") or {} if isinstance(globals_, dict) else {}
        )

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)
            logger.warning("%s", message)

    def fail(self, logical_id: str, name: str, message: str) -> TemplateError:
        return TemplateError(str(self.path), message, logical_id, name)

    # -- intrinsic functions, as far as one machine can answer them -------------

    def resolve(self, value: Any, logical_id: str) -> Any:
        if isinstance(value, list):
            return [self.resolve(item, logical_id) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(str(arg), logical_id)
            if key == "Fn::Sub":
                return self._sub(arg, logical_id)
            if key.startswith("Fn::"):
                self.warn(f"{logical_id}: {key} is not evaluated locally; left empty")
                return ""
        return {k: self.resolve(v, logical_id) for k, v in value.items()}

    def _ref(self, name: str, logical_id: str) -> Any:
        pseudo = {
            "AWS::Region": region(),
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": "lamina",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        parameter = (self.document.get("Parameters") or {}).get(name)
        if isinstance(parameter, dict) and "Default" in parameter:
            return parameter["Default"]
        resources = self.document.get("Resources") or {}
        if name in resources:
            return name
        self.warn(f"{logical_id}: !Ref {name} has no value locally; left empty")
        return ""

    def _sub(self, arg: Any, logical_id: str) -> str:
        text, names = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):  # ${!Name} is the literal ${Name}
                return "${" + key[1:] + "}"
            if key in names:
                return str(self.resolve(names[key], logical_id))
            return str(self._ref(key, logical_id))

        return re.sub(r"\$\{([^}]+)\}", substitute, str(text))

    # -- functions -------------------------------------------------------------

    def function(
        self, logical_id: str, resource: dict[str, Any]
    ) -> FunctionConfig | None:
        props = dict(resource.get("Properties") or {})
        if resource["Type"] == SERVERLESS_FUNCTION:
            props = _merge_globals(self.globals, props)
        props = {k: self.resolve(v, logical_id) for k, v in props.items()}

        for name in sorted(set(props) - _SUPPORTED - _NO_LOCAL_EFFECT):
            self.unsupported.setdefault(name, []).append(logical_id)

        runtime = str(props.get("Runtime") or "")
        if props.get("PackageType") == "Image":
            self.warn(
                f"{logical_id}: container image functions are not supported; skipped"
            )
            return None
        if not _RUNTIME.match(runtime):
            self.warn(
                f"{logical_id}: runtime {runtime or '(none)'} is not supported "
                "(python3.x and provided.* are); skipped"
            )
            return None

        memory = self._int(logical_id, props, _MEMORY)
        timeout = self._int(logical_id, props, _TIMEOUT)
        storage = props.get("EphemeralStorage")
        storage_mb = self._int(
            logical_id, storage if isinstance(storage, dict) else {}, _STORAGE
        )
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
            name=str(props.get("FunctionName") or logical_id),
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
            sample_events=_sample_events(resource),
            max_concurrency=self._max_concurrency(logical_id, resource),
            url_invoke_mode=self._url_mode(logical_id, props),
            log_settings=self._logging(logical_id, props),
        )

    def _int(self, logical_id: str, props: dict[str, Any], spec: _Bounded) -> int:
        name, low, high, unit = spec.name, spec.low, spec.high, spec.unit
        value = props.get(name, spec.default)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(logical_id, name, f"{value!r} is not a whole number")
        if not low <= value <= high:
            raise self.fail(
                logical_id,
                name,
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
        env = props.get("Environment") or {}
        variables = env.get("Variables") if isinstance(env, dict) else None
        if variables is None:
            return {}
        if not isinstance(variables, dict):
            raise self.fail(logical_id, "Environment.Variables", "expected a mapping")
        return {str(k): _env_value(v) for k, v in variables.items()}

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
        for ref in props.get("Layers") or []:
            resource = resources.get(ref) if isinstance(ref, str) else None
            if not isinstance(resource, dict) or resource.get("Type") not in (
                SERVERLESS_LAYER,
                LAMBDA_LAYER,
            ):
                self.warn(f"{logical_id}: layer {ref} is not in this template; ignored")
                continue
            layer_props = resource.get("Properties") or {}
            content = layer_props.get("ContentUri") or layer_props.get("Content")
            if not isinstance(content, str) or not (self.base / content).is_dir():
                raise self.fail(ref, "ContentUri", "expected a local folder")
            layers.append(Layer(ref, (self.base / content).resolve()))
        return tuple(layers)


def _merge_globals(globals_: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    merged = dict(globals_)
    for key, value in props.items():
        if key == "Environment" and isinstance(merged.get(key), dict):
            variables = dict(merged[key].get("Variables") or {})
            variables.update((value or {}).get("Variables") or {})
            merged[key] = {"Variables": variables}
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + value  # lists add up, Globals' first
        else:
            merged[key] = value
    return merged


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sample_events(resource: dict[str, Any]) -> tuple[str, ...]:
    metadata = resource.get("Metadata") or {}
    lamina = metadata.get("Lamina") if isinstance(metadata, dict) else None
    names = lamina.get("SampleEvents") if isinstance(lamina, dict) else None
    return tuple(str(name) for name in names) if isinstance(names, list) else ()
