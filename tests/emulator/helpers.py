"""Helpers the emulator's end-to-end tests share: a service per module, an invoke."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import Served, code_dir, start_serve, stop_process


def serving(folder: Path, resources: str) -> Iterator[Served]:
    """``lamina serve`` of a template of ``resources`` (``function_yaml`` pieces) over
    the test functions' code, stopped when the caller is done with it.

    Made for module-scoped fixtures: ``yield from serving(folder, resources)``.
    """
    code_dir(folder)
    template = folder / "template.yaml"
    template.write_text("Resources:" + resources)
    served = start_serve(template)
    yield served
    stop_process(served.process)


def invoke(
    served: Served, name: str, event: object = None, **extra: object
) -> dict[str, Any]:
    """A boto3 Invoke of ``name``: its answer, with the payload decoded as ``Body``
    and the request id as ``RequestId``."""
    answer: dict[str, Any] = served.client().invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event or {}), **extra
    )
    answer["Body"] = json.loads(answer["Payload"].read())
    answer["RequestId"] = answer["ResponseMetadata"]["RequestId"]
    return answer
