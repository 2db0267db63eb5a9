"""The runtime client's cold-start path: standard library only, nothing else of lamina."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_runtime_client_imports_only_the_standard_library() -> None:
    probe = (
        "import sys; before = set(sys.modules); import lamina.runtime, lamina.runtime.loop;"
        "import json; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded = json.loads(out)

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
    # logging too: the runtime configures it only once the function imports it.
    assert "logging" not in loaded
