"""``lamina new NAME``: a function project that invokes, builds and deploys as it is."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lamina.toolchain.build import PYTHON_BOOTSTRAP
from lamina.toolchain.targets import UnknownTarget, target

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: {name}, made by lamina new

Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {name}
      Runtime: {runtime}
      Handler: app.handler
      CodeUri: src/
      Architectures: [{arch}]
      MemorySize: 128
      Timeout: 5
"""

HANDLER = '''\
"""{name}: greets whoever the event names."""

import json


def handler(event, context):
    who = event.get("name", "world") if isinstance(event, dict) else "world"
    return {{
        "statusCode": 200,
        "headers": {{"Content-Type": "application/json"}},
        "body": json.dumps(
            {{"message": f"hello, {{who}}", "requestId": context.aws_request_id}}
        ),
    }}
'''

REQUIREMENTS = """\
# The function's dependencies, one per line; lamina build installs them for the
# function's runtime and architecture.
"""

EVENT = '{\n  "name": "lamina"\n}\n'

TEST = '''\
"""Invokes the function through lamina, as Lambda runs it: python -m pytest tests"""

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def lamina(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_greets_the_name_in_the_event() -> None:
    result = lamina("invoke", "{name}", "-e", "events/event.json")

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["message"] == "hello, lamina"
    assert "REPORT RequestId:" in result.stderr
'''

README = """\
# {name}

A Lambda function ({runtime}, {arch}), made by `lamina new`.

    lamina invoke {name} -e events/event.json   # run it once, as Lambda would
    python -m pytest tests                       # the same, as a test
    lamina build                                 # .lamina/build/{name}.zip
    lamina inspect .lamina/build/{name}.zip --target {runtime} --arch {arch}
    lamina invoke {name} --built -e events/event.json   # run the built zip
    lamina deploy --role arn:aws:iam::ACCOUNT:role/ROLE  # to AWS Lambda
{custom}"""

CUSTOM_NOTE = """
`provided.al2023` has no Python of its own: `src/bootstrap` starts lamina's
runtime client (packaged by `lamina build`, 66 KB of source) on the interpreter a
layer brings at `/opt/python/bin/python3` or `/opt/bin/python3`. Add such a layer
(a Python build for Amazon Linux, 30-40 MB zipped) before you deploy.
"""


def create(folder: Path, name: str, runtime: str, arch: str) -> list[Path]:
    """Write the project; returns the files written."""
    files = {
        "template.yaml": TEMPLATE.format(name=name, runtime=runtime, arch=arch),
        "src/app.py": HANDLER.format(name=name),
        "src/requirements.txt": REQUIREMENTS,
        "events/event.json": EVENT,
        "tests/test_function.py": TEST.replace("{name}", name),
        "README.md": README.format(
            name=name,
            runtime=runtime,
            arch=arch,
            custom=CUSTOM_NOTE if runtime.startswith("provided") else "",
        ),
        ".gitignore": ".lamina/\n__pycache__/\n",
    }
    if runtime.startswith("provided"):
        files["src/bootstrap"] = PYTHON_BOOTSTRAP
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if relative.endswith("bootstrap"):
            path.chmod(0o755)
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    name = Path(args.name).name
    if not _NAME.match(name):
        print(
            f"lamina: {name!r} cannot name a Lambda function: use 1 to 64 letters, "
            "digits, hyphens or underscores",
            file=sys.stderr,
        )
        return 2
    try:
        target(args.runtime, args.arch)
    except UnknownTarget as exc:
        print(f"lamina: {exc}", file=sys.stderr)
        return 2
    if args.runtime in {"provided.al2", "provided"}:
        print(
            "lamina: use provided.al2023 for a new function (provided.al2 is Amazon "
            "Linux 2, near its end of support)",
            file=sys.stderr,
        )
        return 2
    folder = Path(args.name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        print(
            f"lamina: {folder} exists and is not an empty folder; pick another NAME",
            file=sys.stderr,
        )
        return 2
    written = create(folder, name, args.runtime, args.arch)
    print(f"lamina: made {folder}/ ({args.runtime}, {args.arch})")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    print(f"next: cd {folder} && lamina invoke {name} -e events/event.json")
    return 0
