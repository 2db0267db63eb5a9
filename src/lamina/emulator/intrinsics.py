"""CloudFormation's intrinsic functions, as far as one machine can answer them.

``!Ref`` to parameters' defaults, pseudo parameters and resources; ``!Sub`` over
those; ``!GetAtt Function.Arn`` for the template's functions. Anything else is left
empty, with one warning.
"""

from __future__ import annotations

import re
from typing import Any

from lamina.emulator.constraints import BadValue
from lamina.emulator.function import ACCOUNT_ID, function_arn, region

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"


class Intrinsics:
    """Resolution for a template reader: it provides ``document`` and ``warn``."""

    document: dict[str, Any]
    _open: set[int]

    def warn(self, message: str) -> None:
        raise NotImplementedError

    def resolve(self, value: Any, logical_id: str) -> Any:
        if not isinstance(value, list | dict):
            return value
        # An alias inside its own anchor (&a [*a]) makes a value that contains
        # itself: CloudFormation refuses it, and walking it would never end.
        if id(value) in self._open:
            raise BadValue("contains itself (a YAML alias inside its own anchor)")
        self._open.add(id(value))
        try:
            return self._resolve(value, logical_id)
        finally:
            self._open.discard(id(value))

    def _resolve(self, value: list[Any] | dict[Any, Any], logical_id: str) -> Any:
        if isinstance(value, list):
            return [self.resolve(item, logical_id) for item in value]
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(str(arg), logical_id)
            if key == "Fn::Sub":
                return self._sub(arg, logical_id)
            if key == "Fn::GetAtt":
                return self._get_att(arg, logical_id)
            if isinstance(key, str) and key.startswith("Fn::"):
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

    def _get_att(self, arg: Any, logical_id: str) -> str:
        """A function's ``Arn``; any other attribute has no value locally."""
        if isinstance(arg, str) and "." in arg:
            arg = arg.split(".", 1)
        if isinstance(arg, list) and len(arg) == 2 and arg[1] == "Arn":
            resource = (self.document.get("Resources") or {}).get(arg[0])
            if isinstance(resource, dict) and resource.get("Type") in (
                SERVERLESS_FUNCTION,
                LAMBDA_FUNCTION,
            ):
                props = resource.get("Properties") or {}
                name = props.get("FunctionName") if isinstance(props, dict) else None
                if not isinstance(name, str) or not name:
                    name = str(arg[0])
                return function_arn(name)
        self.warn(f"{logical_id}: Fn::GetAtt is not evaluated locally; left empty")
        return ""

    def _sub(self, arg: Any, logical_id: str) -> str:
        text, names = arg, {}
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text, names = arg
        if isinstance(text, list | dict):
            raise BadValue(
                "Fn::Sub takes a string, or a list of a string and a mapping of "
                "variables"
            )

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):  # ${!Name} is the literal ${Name}
                return "${" + key[1:] + "}"
            if key in names:
                return str(self.resolve(names[key], logical_id))
            return str(self._ref(key, logical_id))

        return re.sub(r"\$\{([^}]+)\}", substitute, str(text))
