"""``lamina new`` and ``lamina build``: projects that run, zips that ship.

Real commands in real folders: the project ``lamina new`` makes is invoked, built,
inspected and invoked again from its zip; dependencies are resolved by pip from
PyPI for the target (C19); the zips are checked byte for byte (C18).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lamina.toolchain.build import EPOCH
from tests.conftest import lamina


def _new(tmp_path: Path, name: str, *options: str) -> Path:
    made = lamina("new", name, *options, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    return tmp_path / name


def _modes(package: Path) -> dict[str, int]:
    with zipfile.ZipFile(package) as zipped:
        return {info.filename: info.external_attr >> 16 for info in zipped.infolist()}


@pytest.mark.parametrize("runtime", ["python3.12", "provided.al2023"])
def test_a_new_project_invokes_builds_inspects_clean_and_runs_from_its_zip(
    tmp_path: Path, runtime: str
) -> None:
    project = _new(tmp_path, "hello", "--runtime", runtime)

    # Its own test passes as made: it invokes the function through lamina.
    own = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert own.returncode == 0, own.stdout + own.stderr

    built = lamina("build", cwd=project, timeout=300)
    assert built.returncode == 0, built.stderr
    package = project / ".lamina" / "build" / "hello.zip"
    assert re.search(
        r"hello\s+[\d.]+ MB\s+[\d.]+ MB\s+\d+\s+" + str(package), built.stdout
    )

    inspected = lamina("inspect", str(package), "--target", runtime, cwd=project)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr

    ran = lamina("invoke", "hello", "--built", "-e", "events/event.json", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(json.loads(ran.stdout)["body"])["message"] == "hello, lamina"

    modes = _modes(package)
    if runtime.startswith("provided"):
        assert modes["bootstrap"] == 0o100755
        # lamina's runtime client travels in the package, standard library only.
        assert "lamina/runtime/loop.py" in modes
    assert modes["app.py"] == 0o100644


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    project = _new(tmp_path, "same")
    first = lamina("build", cwd=project)
    assert first.returncode == 0, first.stderr
    package = project / ".lamina" / "build" / "same.zip"
    before = package.read_bytes()

    # New timestamps and a cache folder change nothing in the package.
    source = project / "src" / "app.py"
    os.utime(source, (1_900_000_000, 1_900_000_000))
    (project / "src" / "__pycache__").mkdir()
    (project / "src" / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"x")
    again = lamina("build", cwd=project)

    assert again.returncode == 0, again.stderr
    assert package.read_bytes() == before
    with zipfile.ZipFile(package) as zipped:
        infos = zipped.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {EPOCH}
    assert not any("__pycache__" in info.filename for info in infos)


def _custom(tmp_path: Path, layer: bool = False) -> Path:
    """A provided.al2023 function whose code holds what each test puts there."""
    (tmp_path / "code").mkdir()
    layers = ""
    if layer:
        (tmp_path / "layer").mkdir()
        bootstrap = tmp_path / "layer" / "bootstrap"
        bootstrap.write_text("#!/bin/sh\nexit 0\n")
        bootstrap.chmod(0o755)
        layers = (
            "\n      Layers: [!Ref Runtime]\n  Runtime:\n"
            "    Type: AWS::Serverless::LayerVersion\n    Properties:\n"
            "      ContentUri: layer"
        )
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: provided.al2023\n      Handler: x\n      CodeUri: code" + layers
    )
    return tmp_path / "code"


def test_a_bootstrap_is_zipped_executable_whatever_its_mode_here(
    tmp_path: Path,
) -> None:
    code = _custom(tmp_path)
    (code / "bootstrap").write_text("#!/bin/sh\necho hi\n")
    (code / "bootstrap").chmod(0o644)
    (code / "data.txt").write_text("data")
    (code / "data.txt").chmod(0o600)
    (code / "tool").write_text("#!/bin/sh\n")
    (code / "tool").chmod(0o700)

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 0, built.stderr
    package = tmp_path / ".lamina" / "build" / "fn.zip"
    with zipfile.ZipFile(package) as zipped:
        assert {info.create_system for info in zipped.infolist()} == {3}
    assert _modes(package) == {
        "bootstrap": 0o100755,
        "data.txt": 0o100644,
        "tool": 0o100755,
    }


def test_a_bootstrap_where_lambda_does_not_look_is_refused(tmp_path: Path) -> None:
    code = _custom(tmp_path)
    (code / "bin").mkdir()
    (code / "bin" / "bootstrap").write_text("#!/bin/sh\n")

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 1
    assert "/var/task/bootstrap or /opt/bootstrap" in built.stderr
    assert "found bin/bootstrap" in built.stderr
    assert "Traceback" not in built.stderr
    assert not (tmp_path / ".lamina" / "build" / "fn.zip").exists()


def test_a_layer_that_brings_opt_bootstrap_is_enough(tmp_path: Path) -> None:
    code = _custom(tmp_path, layer=True)
    (code / "handler.sh").write_text("echo\n")

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 0, built.stderr
    assert _modes(tmp_path / ".lamina" / "build" / "layers" / "Runtime.zip") == {
        "bootstrap": 0o100755
    }


@pytest.mark.parametrize(
    ("binary", "reason"),
    [
        pytest.param(
            # An aarch64 ELF header (e_machine 183), static: no loader to look for.
            b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xb7\x00" + bytes(44),
            "bootstrap: aarch64 binary, provided.al2023 on x86_64 needs x86_64",
            id="aarch64",
        ),
        pytest.param(
            b"\xcf\xfa\xed\xfe" + bytes(200),
            "bootstrap: Mach-O (macOS) binary, not a Linux ELF executable",
            id="mach-o",
        ),
    ],
)
def test_a_bootstrap_for_another_machine_fails_the_build(
    tmp_path: Path, binary: bytes, reason: str
) -> None:
    code = _custom(tmp_path)
    (code / "bootstrap").write_bytes(binary)
    (code / "bootstrap").chmod(0o755)

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 1
    assert "fn: the package cannot run on provided.al2023 (x86_64" in built.stderr
    assert reason in built.stderr
    assert "Traceback" not in built.stderr
    assert not (tmp_path / ".lamina" / "build" / "fn.zip").exists()


def _wheel_tags(package: Path) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags, read from its WHEEL file."""
    tags: dict[str, list[str]] = {}
    with zipfile.ZipFile(package) as zipped:
        for name in zipped.namelist():
            if name.endswith(".dist-info/WHEEL"):
                text = zipped.read(name).decode()
                dist = name.split("/")[0].split("-")[0].lower()
                tags[dist] = re.findall(r"^Tag: (\S+)$", text, re.MULTILINE)
    return tags


def _python_project(tmp_path: Path, runtime: str, arch: str, wanted: str) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("def handler(e, c):\n    return e\n")
    (tmp_path / "code" / "requirements.txt").write_text(wanted + "\n")
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        f"      Runtime: {runtime}\n      Handler: app.handler\n      CodeUri: code\n"
        f"      Architectures: [{arch}]\n"
    )
    return tmp_path


def test_dependencies_are_wheels_for_the_target_python_and_machine(
    tmp_path: Path,
) -> None:
    project = _python_project(tmp_path, "python3.12", "arm64", "pydantic>=2,<3")

    built = lamina("build", cwd=project, timeout=300)

    assert built.returncode == 0, built.stderr
    tags = _wheel_tags(project / ".lamina" / "build" / "fn.zip")
    core = tags["pydantic_core"]
    assert core and all(tag.startswith("cp312-cp312-manylinux") for tag in core)
    assert all(tag.endswith("_aarch64") for tag in core)
    # Every native file is an aarch64 ELF: lamina inspect agrees, and fails x86_64.
    package = str(project / ".lamina" / "build" / "fn.zip")
    arm = lamina(
        "inspect", package, "--target", "python3.12", "--arch", "arm64", cwd=project
    )
    assert arm.returncode == 0, arm.stdout
    x86 = lamina(
        "inspect", package, "--target", "python3.12", "--arch", "x86_64", cwd=project
    )
    assert x86.returncode == 1
    assert "aarch64" in x86.stdout + x86.stderr


def test_an_older_runtime_gets_wheels_for_its_older_glibc(tmp_path: Path) -> None:
    # python3.9 runs on Amazon Linux 2 (glibc 2.26): no manylinux_2_28 wheel fits.
    project = _python_project(tmp_path, "python3.9", "x86_64", "cryptography")

    built = lamina("build", cwd=project, timeout=300)

    assert built.returncode == 0, built.stderr
    tags = [
        tag
        for found in _wheel_tags(project / ".lamina" / "build" / "fn.zip").values()
        for tag in found
    ]
    glibc = [int(m) for tag in tags for m in re.findall(r"manylinux_2_(\d+)", tag)]
    assert glibc, tags
    assert max(glibc) <= 26, tags


def test_a_dependency_without_a_wheel_for_the_target_says_so(tmp_path: Path) -> None:
    project = _python_project(
        tmp_path, "python3.12", "x86_64", "lamina-no-such-dist-zz"
    )

    built = lamina("build", cwd=project, timeout=300)

    assert built.returncode == 1
    assert "cannot install the dependencies for python3.12 (x86_64" in built.stderr
    assert "Traceback" not in built.stderr


def test_over_lambdas_size_limits_is_refused_with_the_numbers(tmp_path: Path) -> None:
    code = _custom(tmp_path, layer=True)
    (code / "bootstrap").write_text("#!/bin/sh\n")
    # A sparse 300 MB file in the layer: over 250 MB unzipped, function and layers.
    with open(tmp_path / "layer" / "big.bin", "wb") as big:
        big.truncate(300 * 1024 * 1024)

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 1
    assert "300.0 MB unzipped with its layers" in built.stderr
    assert "Lambda allows 250.0 MB" in built.stderr


def test_a_zip_over_50_mb_is_refused_for_direct_upload(tmp_path: Path) -> None:
    code = _custom(tmp_path)
    (code / "bootstrap").write_text("#!/bin/sh\n")
    (code / "noise.bin").write_bytes(os.urandom(51 * 1024 * 1024))

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 1
    assert re.search(
        r"the zip is 51\.\d MB: a direct upload takes at most 50\.0 MB", built.stderr
    )


def _python_code(tmp_path: Path, layer: str = "") -> Path:
    """A python3.12 function at code/ (app.handler), optionally with a layer."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("def handler(e, c):\n    return e\n")
    layers = ""
    if layer:
        layers = (
            f"\n      Layers: [!Ref {layer}]\n  {layer}:\n"
            "    Type: AWS::Serverless::LayerVersion\n    Properties:\n"
            f"      ContentUri: {layer.lower()}"
        )
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: python3.12\n      Handler: app.handler\n      CodeUri: code"
        + layers
    )
    return tmp_path / "code"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        pytest.param(
            lambda code: (code / "self").symlink_to("."), None, id="link-to-itself"
        ),
        pytest.param(
            lambda code: (code / "a").symlink_to("b") or (code / "b").symlink_to("a"),
            "a symbolic link to b, which cannot be read",
            id="link-loop",
        ),
        pytest.param(
            lambda code: (code / "gone").symlink_to("nowhere"),
            "a symbolic link to nowhere, which does not exist",
            id="dangling-link",
        ),
        pytest.param(
            lambda code: os.mkfifo(code / "pipe"),
            "not a regular file (a FIFO, socket or device)",
            id="fifo",
        ),
    ],
)
def test_odd_files_in_the_code_folder_never_hang_the_build(
    tmp_path: Path, make: Any, says: str | None
) -> None:
    make(_python_code(tmp_path))

    built = lamina("build", cwd=tmp_path, timeout=60)

    assert "Traceback" not in built.stderr
    if says is None:  # a folder already walked is not walked again
        assert built.returncode == 0, built.stderr
        assert set(_modes(tmp_path / ".lamina" / "build" / "fn.zip")) == {"app.py"}
    else:
        assert built.returncode == 1
        assert says in built.stderr


def test_requirements_files_are_read_by_pip_itself(tmp_path: Path) -> None:
    code = _python_code(tmp_path)
    (code / "requirements.txt").write_text("-r more.txt  # the pins\n")
    (code / "more.txt").write_text("idna==3.10  # pinned\n")

    built = lamina("build", cwd=tmp_path, timeout=300)

    assert built.returncode == 0, built.stderr
    assert "idna" in _wheel_tags(tmp_path / ".lamina" / "build" / "fn.zip")


@pytest.mark.parametrize(
    "line", ["./vendor/pkg", "git+https://example.invalid/x.git", "x @ file:///tmp/x"]
)
def test_a_requirement_pip_would_build_here_is_refused(
    tmp_path: Path, line: str
) -> None:
    code = _python_code(tmp_path)
    (code / "requirements.txt").write_text(line + "\n")

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 1
    assert "which pip would build on this machine, not for Lambda" in built.stderr


def test_an_empty_package_or_a_missing_handler_module_is_refused(
    tmp_path: Path,
) -> None:
    code = _python_code(tmp_path)
    (code / "app.py").rename(code / "main.py")

    missing = lamina("build", cwd=tmp_path)
    (code / "main.py").unlink()
    empty = lamina("build", cwd=tmp_path)

    assert missing.returncode == 1
    assert "Handler app.handler names module app, but the package has no app.py" in (
        missing.stderr
    )
    assert empty.returncode == 1
    assert "holds no files: Lambda refuses an empty package" in empty.stderr


def test_a_layer_binary_the_target_cannot_run_fails_the_build(tmp_path: Path) -> None:
    _python_code(tmp_path, layer="Tools")
    source = tmp_path / "arc.c"
    # arc4random is versioned GLIBC_2.36: newer than python3.12's Amazon Linux 2023.
    source.write_text(
        "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n"
    )
    (tmp_path / "tools" / "bin").mkdir(parents=True)
    compiled = subprocess.run(
        ["gcc", "-o", str(tmp_path / "tools" / "bin" / "arc"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if compiled.returncode != 0:
        pytest.skip(f"this glibc has no arc4random: {compiled.stderr.strip()}")

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 1
    assert "layer Tools, as fn's, cannot run on python3.12" in built.stderr
    assert "/opt/bin/arc: needs GLIBC_2.36, python3.12 has 2.34" in built.stderr


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    _python_code(tmp_path)
    (tmp_path / "taken").write_text("")

    built = lamina("build", "-o", str(tmp_path / "taken"), cwd=tmp_path)

    assert built.returncode == 2
    assert "a file, not a folder" in built.stderr
    assert "Traceback" not in built.stderr


def test_code_that_imports_the_runtime_client_gets_it_packed(tmp_path: Path) -> None:
    code = _python_code(tmp_path)
    (code / "app.py").write_text(
        "from lamina.runtime.streaming import http_response\n\n"
        "def handler(e, c):\n    return e\n"
    )

    built = lamina("build", cwd=tmp_path)

    assert built.returncode == 0, built.stderr
    names = set(_modes(tmp_path / ".lamina" / "build" / "fn.zip"))
    assert {"app.py", "lamina/runtime/streaming.py", "lamina/__init__.py"} <= names
