"""A template file as a YAML document, read as CloudFormation reads it.

CloudFormation's short-form intrinsics (``!Ref``, ``!Sub``, ...) become their long
form; a key given twice in one mapping is refused; every problem is one line that
names the file and, where YAML knows it, the line.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from lamina.emulator.errors import TemplateError

_MERGE_KEY = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (``!Ref``, ``!Sub``, ...)."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        # YAML would keep the last of two equal keys; CloudFormation refuses them,
        # and a second Handler silently winning is a bug waiting to happen.
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_KEY:
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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


def read_document(path: Path) -> Any:
    """The parsed YAML of ``path``, or a ``TemplateError`` saying what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TemplateError(
            str(path), f"not UTF-8 text (line {line}): save the template as UTF-8"
        ) from exc
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise TemplateError(str(path), _yaml_problem(exc)) from exc
    except RecursionError as exc:
        raise TemplateError(str(path), "not a template: nested too deeply") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong with the YAML, on one line, with the line it is on."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"not valid YAML: {' '.join(str(exc).split())}"
    mark = exc.problem_mark or exc.context_mark
    where = f" (line {mark.line + 1})" if mark is not None else ""
    what = "; ".join(part for part in (exc.problem, exc.context) if part)
    return f"not valid YAML{where}: {what or ' '.join(str(exc).split())}"
