"""Put AWS's Lambda Runtime Interface Emulator next to the virtualenv's interpreter.

AWS ships the emulator binary inside the ``aws-sam-cli`` wheel. Only that wheel is
downloaded (no dependencies) and only the binary for this machine is unpacked, to
``.venv/bin/aws-lambda-rie``. The tests and benchmarks use it as a reference peer.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SAM_CLI = "aws-sam-cli==1.170.0"
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def main() -> int:
    target = Path(sys.executable).parent / "aws-lambda-rie"
    if target.exists():
        return 0
    arch = ARCH.get(platform.machine().lower())
    if arch is None:
        print(f"fetch_rie: no emulator build for {platform.machine()}", file=sys.stderr)
        return 1

    print(f"fetch_rie: downloading {SAM_CLI} (wheel only) for its emulator binary")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                tmp,
                SAM_CLI,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("aws_sam_cli-*.whl"))
        member = f"samcli/local/rapid/aws-lambda-rie-{arch}"
        with zipfile.ZipFile(wheel) as archive:
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
    os.chmod(partial, 0o755)
    partial.replace(target)
    print(f"fetch_rie: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
