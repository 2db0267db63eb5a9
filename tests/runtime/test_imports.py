"""The runtime client's cold-start path: standard library only, nothing else of lamina."""

from __future__ import annotations

import sys

from tests.runtime.conftest import modules_imported_by


def test_runtime_client_imports_only_the_standard_library() -> None:
    loaded = modules_imported_by("import lamina.runtime, lamina.runtime.loop")

    assert "lamina.runtime.loop" in loaded
    ours = [name for name in loaded if name.split(".")[0] == "lamina"]
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names and name not in ours
    ]
    assert foreign == []
    assert all(name == "lamina" or name.startswith("lamina.runtime") for name in ours)
    # Heavy modules stay off the cold-start path until an error needs them.
    assert "traceback" not in loaded
    assert "http.client" not in loaded
    assert "asyncio" not in loaded
    # jsonfast drives _json itself; typing serves the type checker only.
    assert "json" not in loaded
    assert "typing" not in loaded
    # logging too: the runtime configures it only once the function imports it.
    assert "logging" not in loaded
