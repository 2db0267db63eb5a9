"""``lamina inspect`` on real binaries built here with gcc, musl-gcc and a cross gcc."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.toolchain.elf import NotReadable, read_elf
from lamina.toolchain.inspect import problems
from lamina.toolchain.targets import target
from tests.conftest import LAMINA

HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
# arc4random came with glibc 2.36, past what Amazon Linux 2023 has.
ARC4RANDOM = (
    "#include <stdio.h>\n#include <stdlib.h>\n"
    'int main(void) { printf("%u\\n", arc4random()); return 0; }\n'
)
# Freestanding, so the cross compiler needs no aarch64 C library headers.
AARCH64_EXIT = """
void _start(void) {
    register long number __asm__("x8") = 93;
    register long status __asm__("x0") = 0;
    __asm__ volatile("svc 0" : : "r"(number), "r"(status));
    for (;;) {}
}
"""
MODULE = "int PyInit_m(void) { return 0; }\n"

Compile = Callable[..., Path]


@pytest.fixture(scope="module")
def compile_c(tmp_path_factory: pytest.TempPathFactory) -> Compile:
    """Compile a C source with a named compiler; skip when that compiler is absent."""
    out_dir = tmp_path_factory.mktemp("bin")

    def build(name: str, source: str, compiler: str, *flags: str) -> Path:
        if shutil.which(compiler) is None:
            pytest.skip(f"{compiler} is not installed (scripts/system_packages.sh)")
        out = out_dir / name
        if not out.exists():
            src = out_dir / f"{name}.c"
            src.write_text(source)
            subprocess.run(
                [compiler, *flags, "-o", str(out), str(src)],
                check=True,
                capture_output=True,
            )
        return out

    return build


def inspect(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAMINA, "inspect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def inspect_json(*args: str | Path) -> dict[str, Any]:
    done = inspect(*args, "--json")
    assert done.returncode in (0, 1), done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def only_file(document: dict[str, Any]) -> dict[str, Any]:
    (entry,) = document["files"]
    assert isinstance(entry, dict)
    return entry


def make_zip(path: Path, members: dict[str, tuple[bytes, int | None]]) -> Path:
    """Write a zip; each member's mode goes where Unix zip tools put it."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name)
            if mode is None:
                # As zipped on Windows: a DOS archive attribute, no Unix mode.
                info.create_system = 0
                info.external_attr = 0x20
            else:
                info.create_system = 3
                info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, data)
    return path


def objdump_glibc(binary: Path) -> tuple[int, ...]:
    if shutil.which("objdump") is None:
        pytest.skip("objdump is not installed")
    out = subprocess.run(
        ["objdump", "-T", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    found = re.findall(r"\(GLIBC_(\d+(?:\.\d+)+)\)", out)
    return max(tuple(int(part) for part in version.split(".")) for version in found)


# -- what a binary is -----------------------------------------------------------------


def test_dynamic_glibc_program(compile_c: Compile) -> None:
    binary = compile_c("hello", HELLO, "gcc")

    entry = only_file(inspect_json(binary))

    assert entry["kind"] == "executable"
    assert entry["machine"] == "x86_64"
    assert entry["linkage"] == "dynamic"
    assert entry["libc"] == "glibc"
    assert entry["interpreter"].endswith("ld-linux-x86-64.so.2")
    assert "libc.so.6" in entry["needed"]
    label = entry["max_glibc"]
    version = tuple(int(part) for part in label.removeprefix("GLIBC_").split("."))
    assert version >= (2, 2, 5)
    assert version == objdump_glibc(binary)
    assert entry["verdicts"]["provided.al2023"] == {"ok": True, "reasons": []}

    done = inspect(binary, "--target", "provided.al2023")
    assert done.returncode == 0, done.stdout
    assert re.search(r"hello\s+executable\s+x86_64\s+dynamic\s+glibc", done.stdout)


def test_symbol_newer_than_al2023(compile_c: Compile) -> None:
    try:
        binary = compile_c("arc", ARC4RANDOM, "gcc")
    except subprocess.CalledProcessError:
        pytest.skip("this machine's glibc has no arc4random (before 2.36)")
    if objdump_glibc(binary) < (2, 36):
        pytest.skip("arc4random here is not versioned GLIBC_2.36")

    done = inspect(binary, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "arc: needs GLIBC_2.36, provided.al2023 has 2.34" in done.stdout
    entry = only_file(inspect_json(binary, "--target", "provided.al2023"))
    assert entry["max_glibc"] == "GLIBC_2.36"
    assert entry["verdicts"]["provided.al2023"]["ok"] is False


def test_static_musl_runs_everywhere(compile_c: Compile) -> None:
    binary = compile_c("musl-static", HELLO, "musl-gcc", "-static")

    document = inspect_json(binary)

    entry = only_file(document)
    assert (entry["linkage"], entry["libc"], entry["interpreter"]) == (
        "static",
        "musl",
        None,
    )
    assert entry["needed"] == []
    assert entry["max_glibc"] is None
    assert [t["runtime"] for t in document["targets"]] == [
        "provided.al2023",
        "provided.al2",
    ]
    assert all(verdict["ok"] for verdict in entry["verdicts"].values())
    for runtime in ("provided.al2023", "provided.al2", "python3.12"):
        assert inspect(binary, "--target", runtime).returncode == 0


def test_dynamic_musl_has_no_loader_on_lambda(compile_c: Compile) -> None:
    binary = compile_c("musl-dynamic", HELLO, "musl-gcc")

    done = inspect(binary, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "musl-dynamic: needs musl's loader /lib/ld-musl-x86_64.so.1" in done.stdout
    entry = only_file(inspect_json(binary))
    assert (entry["linkage"], entry["libc"]) == ("dynamic", "musl")


def test_static_pie(compile_c: Compile) -> None:
    binary = compile_c("pie", HELLO, "gcc", "-static-pie")

    entry = only_file(inspect_json(binary))

    assert (entry["kind"], entry["linkage"], entry["libc"]) == (
        "executable",
        "static-pie",
        "glibc",
    )
    assert entry["interpreter"] is None
    assert inspect(binary, "--target", "provided.al2").returncode == 0


def test_static_glibc(compile_c: Compile) -> None:
    binary = compile_c("glibc-static", HELLO, "gcc", "-static")

    entry = only_file(inspect_json(binary))

    assert (entry["linkage"], entry["libc"]) == ("static", "glibc")


def test_damaged_elf_is_named(compile_c: Compile, tmp_path: Path) -> None:
    (tmp_path / "cut").write_bytes(compile_c("hello", HELLO, "gcc").read_bytes()[:300])

    done = inspect(tmp_path / "cut", "--target", "provided.al2023")

    assert done.returncode == 1
    assert "cut: not a readable ELF file" in done.stdout


@settings(max_examples=150, deadline=2000)
@given(
    edits=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=24),
    cut=st.none() | st.integers(4, 20_000),
)
def test_damaged_elf_never_escapes(
    compile_c: Compile, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(compile_c("hello", HELLO, "gcc").read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value

    with contextlib.suppress(NotReadable):
        read_elf(bytes(data[:cut]))


# -- architectures and foreign formats ------------------------------------------------


def test_aarch64_bootstrap_for_x86_64(compile_c: Compile, tmp_path: Path) -> None:
    flags = ("-static", "-nostdlib", "-ffreestanding")
    binary = compile_c("a64", AARCH64_EXIT, "aarch64-linux-gnu-gcc", *flags)
    package = make_zip(tmp_path / "fn.zip", {"bootstrap": (binary.read_bytes(), 0o755)})

    done = inspect(package, "--target", "provided.al2023")

    assert done.returncode == 1
    line = "bootstrap: aarch64 binary, provided.al2023 on x86_64 needs x86_64"
    assert line in done.stdout
    assert (
        inspect(package, "--target", "provided.al2023", "--arch", "arm64").returncode
        == 0
    )
    assert only_file(inspect_json(package))["machine"] == "aarch64"
    # Only describing (no --target), it is judged for the machine it is built for.
    described = inspect(package)
    assert described.returncode == 0
    assert "provided.al2023 (arm64" in described.stdout


@pytest.mark.parametrize(
    "magic",
    [
        pytest.param(b"\xcf\xfa\xed\xfe", id="64-bit"),
        pytest.param(b"\xce\xfa\xed\xfe", id="32-bit"),
        pytest.param(b"\xfe\xed\xfa\xcf", id="big-endian"),
        pytest.param(b"\xca\xfe\xba\xbe\x00\x00\x00\x02", id="universal"),
    ],
)
def test_macho_is_not_linux(tmp_path: Path, magic: bytes) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(magic + bytes(200))

    done = inspect(binary, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "tool: Mach-O (macOS)" in done.stdout
    assert "not a Linux ELF executable" in done.stdout


def test_pe_is_not_linux(tmp_path: Path) -> None:
    header = bytearray(256)
    header[:2] = b"MZ"
    header[0x3C:0x40] = (0x80).to_bytes(4, "little")
    header[0x80:0x84] = b"PE\0\0"
    (tmp_path / "tool.exe").write_bytes(bytes(header))

    done = inspect(tmp_path, "--target", "python3.12")

    assert done.returncode == 1
    assert "tool.exe: PE (Windows) binary, not a Linux ELF executable" in done.stdout


def test_java_classes_and_text_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "Handler.class").write_bytes(
        b"\xca\xfe\xba\xbe\x00\x00\x00\x41" + bytes(64)
    )
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return 1\n")

    document = inspect_json(tmp_path, "--target", "python3.12")

    assert document["files"] == []
    assert document["targets"][0]["ok"] is True


# -- the bootstrap --------------------------------------------------------------------


def test_bootstrap_only_in_bin_is_refused(tmp_path: Path) -> None:
    package = make_zip(tmp_path / "fn.zip", {"bin/bootstrap": (b"#!/bin/sh\n", 0o755)})

    done = inspect(package, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "bin/bootstrap: not where Lambda looks" in done.stdout
    assert "/var/task/bootstrap" in done.stdout
    assert "/opt/bootstrap" in done.stdout
    # Python runtimes never run a bootstrap.
    assert inspect(package, "--target", "python3.12").returncode == 0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        pytest.param(0o644, "bootstrap: not executable (mode 644)", id="no-x-bit"),
        pytest.param(
            None, "bootstrap: the zip records no Unix permissions", id="windows"
        ),
    ],
)
def test_bootstrap_needs_execute_bit(
    tmp_path: Path, mode: int | None, reason: str
) -> None:
    package = make_zip(tmp_path / "fn.zip", {"bootstrap": (b"#!/bin/sh\necho\n", mode)})

    done = inspect(package, "--target", "provided.al2")

    assert done.returncode == 1
    assert reason in done.stdout


def test_executable_script_bootstrap_is_fine(tmp_path: Path) -> None:
    script = tmp_path / "bootstrap"
    script.write_text("#!/bin/sh\nexec ./handler\n")
    script.chmod(0o755)

    done = inspect(tmp_path, "--target", "provided.al2023")

    assert done.returncode == 0, done.stdout
    assert "#!/bin/sh" in done.stdout


def test_a_script_saved_with_windows_line_endings_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bootstrap"
    script.write_bytes(b"#!/bin/sh\r\nexec ./handler\r\n")
    script.chmod(0o755)

    done = inspect(tmp_path, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "bootstrap: its #! line ends in a carriage return" in done.stdout


def test_a_fifo_given_as_the_path_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    done = inspect(fifo)

    assert done.returncode == 2
    assert "not a regular file, folder or zip" in done.stderr


def test_zip_entries_outside_the_package_are_named(tmp_path: Path) -> None:
    package = make_zip(
        tmp_path / "evil.zip",
        {
            "bootstrap": (b"#!/bin/sh\n", 0o755),
            "/abs/evil": (b"x", 0o644),
            "ok/../../evil": (b"x", 0o644),
        },
    )

    done = inspect(package, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "/abs/evil: a zip entry outside the package" in done.stdout
    assert "ok/../../evil: a zip entry outside the package" in done.stdout


def test_missing_bootstrap_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("layer brings the runtime\n")

    done = inspect(tmp_path, "--target", "provided.al2023")

    assert done.returncode == 0
    assert "note: no bootstrap" in done.stdout


def test_linked_bootstrap_in_zip_is_not_read_as_text(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "fn.zip", "w") as archive:
        link = zipfile.ZipInfo("bootstrap")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "bin/run")
        run = zipfile.ZipInfo("bin/run")
        run.create_system = 3
        run.external_attr = 0o100755 << 16
        archive.writestr(run, "#!/bin/sh\n")

    done = inspect(tmp_path / "fn.zip", "--target", "provided.al2023")

    assert done.returncode == 0, done.stdout
    assert "symbolic link" in done.stdout


def test_text_bootstrap_is_refused(tmp_path: Path) -> None:
    package = make_zip(tmp_path / "fn.zip", {"bootstrap": (b"echo hi\n", 0o755)})

    done = inspect(package, "--target", "provided.al2023")

    assert done.returncode == 1
    assert "bootstrap: neither an ELF executable nor a #! script" in done.stdout


# -- Python extension modules and wheels ------------------------------------------------


def test_extension_for_another_python(compile_c: Compile, tmp_path: Path) -> None:
    module = compile_c("m.so", MODULE, "gcc", "-shared", "-fPIC")
    shutil.copy(module, tmp_path / "m.cpython-311-x86_64-linux-gnu.so")

    done = inspect(tmp_path, "--target", "python3.12")

    assert done.returncode == 1
    assert (
        "m.cpython-311-x86_64-linux-gnu.so: built for CPython 3.11, python3.12 loads "
        "cpython-312 or abi3 modules"
    ) in done.stdout
    assert inspect(tmp_path, "--target", "python3.11").returncode == 0
    entry = only_file(inspect_json(tmp_path))
    assert (entry["kind"], entry["python_abi"]) == ("python extension", "cpython-311")


def test_extension_found_by_its_init_function(
    compile_c: Compile, tmp_path: Path
) -> None:
    module = compile_c("m.so", MODULE, "gcc", "-shared", "-fPIC")
    shutil.copy(module, tmp_path / "m.so")

    entry = only_file(inspect_json(tmp_path))

    assert (entry["kind"], entry["linkage"], entry["python_abi"]) == (
        "python extension",
        "shared",
        None,
    )


@pytest.mark.parametrize(
    ("tags", "is_ok"),
    [
        pytest.param(["cp312-cp312-manylinux_2_17_x86_64"], True, id="same-python"),
        pytest.param(["cp311-cp311-manylinux_2_17_x86_64"], False, id="other-python"),
        pytest.param(["cp38-abi3-manylinux2014_x86_64"], True, id="abi3-older"),
        pytest.param(["cp313-abi3-manylinux2014_x86_64"], False, id="abi3-newer"),
        pytest.param(["py3-none-any"], True, id="pure"),
        pytest.param(["cp312-cp312-musllinux_1_1_x86_64"], False, id="musl"),
        pytest.param(["cp312-cp312-manylinux_2_17_aarch64"], False, id="other-arch"),
        pytest.param(["cp312-cp312-macosx_11_0_arm64"], False, id="macos"),
    ],
)
def test_wheel_tags(tmp_path: Path, tags: list[str], is_ok: bool) -> None:
    info = tmp_path / "pkg-1.0.dist-info"
    info.mkdir()
    lines = ["Wheel-Version: 1.0", *(f"Tag: {tag}" for tag in tags)]
    (info / "WHEEL").write_text("\n".join(lines) + "\n")

    found = problems(tmp_path, target("python3.12"))

    assert (found == []) is is_ok, found
    if not is_ok:
        assert found[0].startswith("pkg-1.0.dist-info/WHEEL: installed from a ")


# -- the library function, JSON and bad input ---------------------------------------


def test_problems_on_folder_and_zip(compile_c: Compile, tmp_path: Path) -> None:
    folder = tmp_path / "fn"
    folder.mkdir()
    shutil.copy(
        compile_c("musl-static", HELLO, "musl-gcc", "-static"), folder / "bootstrap"
    )
    (folder / "bootstrap").chmod(0o755)
    tgt = target("provided.al2023", "x86_64")

    assert problems(folder, tgt) == []

    shutil.copy(compile_c("musl-dynamic", HELLO, "musl-gcc"), folder / "helper")
    members = {p.name: (p.read_bytes(), 0o755) for p in sorted(folder.iterdir())}
    package = make_zip(tmp_path / "fn.zip", members)
    (line,) = problems(package, tgt)
    assert line.startswith("helper: needs musl's loader")
    assert problems(package, target("provided.al2023", "arm64")) == [
        "bootstrap: x86_64 binary, provided.al2023 on arm64 needs aarch64",
        "helper: x86_64 binary, provided.al2023 on arm64 needs aarch64",
    ]


def test_json_shape(compile_c: Compile, tmp_path: Path) -> None:
    shutil.copy(compile_c("hello", HELLO, "gcc"), tmp_path / "hello")

    document = inspect_json(tmp_path, "--target", "provided.al2")

    assert set(document) == {"path", "files", "targets"}
    entry = only_file(document)
    assert set(entry) == {
        "path",
        "kind",
        "machine",
        "linkage",
        "libc",
        "interpreter",
        "needed",
        "max_glibc",
        "python_abi",
        "mode",
        "verdicts",
    }
    assert entry["path"] == "hello"
    assert entry["mode"] == "755"
    (summary,) = document["targets"]
    assert summary["runtime"] == "provided.al2"
    assert summary["arch"] == "x86_64"
    assert summary["glibc"] == "2.26"
    assert summary["ok"] is False
    assert summary["problems"] == [
        f"hello: needs {entry['max_glibc']}, provided.al2 has 2.26"
    ]
    assert entry["verdicts"]["provided.al2"]["reasons"] == [
        f"needs {entry['max_glibc']}, provided.al2 has 2.26"
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "missing", "no such file or folder", id="missing"),
        pytest.param(
            lambda p: (p / "bad.zip", (p / "bad.zip").write_bytes(b"not a zip"))[0],
            "not a readable zip",
            id="bad-zip",
        ),
    ],
)
def test_bad_path(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    done = inspect(make(tmp_path))

    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_target(tmp_path: Path) -> None:
    done = inspect(tmp_path, "--target", "python2.7")

    assert done.returncode == 2
    assert done.stderr.startswith("lamina inspect: unknown target 'python2.7'")
