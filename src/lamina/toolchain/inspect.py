"""``lamina inspect``: can these binaries run on a Lambda runtime, and if not, why.

A package (zip or folder) or a single file is read once into an ``Inspection``; the
verdicts for each target are worked out from it without touching the files again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import stat
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypedDict

from lamina.emulator.errors import LaminaError
from lamina.toolchain.elf import (
    HEAD_SIZE,
    Elf,
    NotReadable,
    foreign_format,
    is_elf,
    read_elf,
)
from lamina.toolchain.targets import BOOTSTRAP_PLACES, Target, UnknownTarget, target

log = logging.getLogger(__name__)

ZIP_SUFFIXES = (".zip", ".whl", ".jar")
LARGEST_FILE = 250 * 1024 * 1024  # Lambda unzips at most this much in all
# Verdicts shown when no --target is given.
COMMON_TARGETS = ("provided.al2023", "provided.al2")
_EXTENSION = re.compile(r"\.cpython-(\d)(\d+)[a-z]*-[^.]+\.so$")
_ABI3 = re.compile(r"\.abi3\.so$")


class InspectError(LaminaError):
    """The path cannot be inspected: missing, unreadable, or a damaged zip."""


@dataclass(frozen=True)
class FileReport:
    """One file worth a verdict: a binary, or the package's bootstrap."""

    path: str
    kind: str  # executable, shared library, python extension, object, script, ...
    elf: Elf | None = None
    foreign: str | None = None  # "Mach-O (macOS) binary", "PE (Windows) binary"
    unreadable: str | None = None  # why pyelftools gave up on an ELF file
    script: str | None = None  # a #! line's interpreter
    python: tuple[int, int] | None = None  # CPython version from the module's name
    python_abi: str | None = None  # cpython-312, abi3
    mode: int | None = None  # permission bits; None when a zip recorded none


@dataclass(frozen=True)
class Wheel:
    """An installed distribution's ``*.dist-info/WHEEL`` tags."""

    path: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Inspection:
    path: str
    is_package: bool  # a zip or a folder, where the bootstrap rules apply
    files: tuple[FileReport, ...]
    wheels: tuple[Wheel, ...] = ()
    misplaced_bootstraps: tuple[str, ...] = ()
    has_bootstrap: bool = False
    # Zip entries an unzip would write outside /var/task (absolute, or with "..").
    unsafe_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Member:
    path: str
    mode: int | None
    open: Callable[[], IO[bytes]]
    is_link: bool = False  # a symbolic link kept as such in a zip


# -- reading ------------------------------------------------------------------------


def inspect_path(path: Path) -> Inspection:
    """Read a zip, a folder or a single file; raise ``InspectError`` if unreadable."""
    if not path.exists():
        raise InspectError(f"{path}: no such file or folder")
    try:
        if path.is_dir():
            return _inspect_members(str(path), _folder_members(path))
        if path.name.lower().endswith(ZIP_SUFFIXES):
            return _inspect_zip(path)
        if not path.is_file():
            raise InspectError(f"{path}: not a regular file, folder or zip")
        member = _Member(path.name, _file_mode(path), lambda: path.open("rb"))
        report = _examine(member, keep_plain=True)
        return Inspection(str(path), False, (report,) if report else ())
    except OSError as exc:
        raise InspectError(f"{path}: {exc.strerror or exc}") from exc


def _inspect_zip(path: Path) -> Inspection:
    try:
        with zipfile.ZipFile(path) as archive:
            return _inspect_members(str(path), _zip_members(archive))
    # RuntimeError is how zipfile refuses an encrypted member.
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise InspectError(f"{path}: not a readable zip ({exc})") from exc


def _inspect_members(root: str, members: Iterator[_Member]) -> Inspection:
    files: list[FileReport] = []
    wheels: list[Wheel] = []
    misplaced: list[str] = []
    has_bootstrap = False
    unsafe: list[str] = []
    for member in members:
        parts = member.path.split("/")
        if member.path.startswith("/") or ".." in parts:
            unsafe.append(member.path)
        if member.path == "bootstrap":
            has_bootstrap = True
        elif member.path.rsplit("/", 1)[-1] == "bootstrap":
            misplaced.append(member.path)
        if re.fullmatch(r"[^/]+\.dist-info/WHEEL", member.path):
            with member.open() as stream:
                wheels.append(Wheel(member.path, _wheel_tags(stream.read())))
            continue
        report = _examine(member, keep_plain=member.path == "bootstrap")
        if report is not None:
            files.append(report)
    files.sort(key=lambda report: report.path)
    return Inspection(
        root,
        True,
        tuple(files),
        tuple(wheels),
        tuple(misplaced),
        has_bootstrap,
        tuple(unsafe),
    )


def _folder_members(root: Path) -> Iterator[_Member]:
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            if not path.is_file():
                continue  # a dangling link, a socket, a device
            relative = path.relative_to(root).as_posix()
            yield _Member(relative, _file_mode(path), _opener(path))


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _zip_members(archive: zipfile.ZipFile) -> Iterator[_Member]:
    for info in archive.infolist():
        if info.is_dir():
            continue
        unix = info.external_attr >> 16
        mode = stat.S_IMODE(unix) if unix else None
        is_link = stat.S_ISLNK(unix)
        yield _Member(info.filename, mode, _zip_opener(archive, info), is_link)


def _zip_opener(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo
) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


def _examine(member: _Member, keep_plain: bool) -> FileReport | None:
    if member.is_link:
        return FileReport(member.path, "symbolic link") if keep_plain else None
    with member.open() as stream:
        head = stream.read(HEAD_SIZE)
        # No file Lambda runs is larger than its 250 MB unzipped: read no more.
        data = head + stream.read(LARGEST_FILE) if is_elf(head) else head
    if len(data) > LARGEST_FILE:
        return FileReport(
            member.path,
            "ELF",
            unreadable="larger than the 250 MB Lambda unzips in all",
            mode=member.mode,
        )

    if is_elf(head):
        log.debug("reading %s as ELF", member.path)
        return _examine_elf(member, data)
    foreign = foreign_format(head)
    if foreign:
        kind = foreign.split(" ", 1)[0]
        return FileReport(member.path, kind, foreign=foreign, mode=member.mode)
    if not keep_plain:
        return None
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].decode(errors="replace").strip(" \t")
        return FileReport(member.path, "script", script=line, mode=member.mode)
    return FileReport(member.path, "file", mode=member.mode)


def _examine_elf(member: _Member, data: bytes) -> FileReport:
    try:
        elf = read_elf(data)
    except NotReadable as exc:
        return FileReport(member.path, "ELF", unreadable=str(exc), mode=member.mode)
    kind = elf.kind
    python: tuple[int, int] | None = None
    abi: str | None = None
    name = member.path.rsplit("/", 1)[-1]
    if match := _EXTENSION.search(name):
        python = int(match[1]), int(match[2])
        abi = f"cpython-{match[1]}{match[2]}"
    elif _ABI3.search(name):
        abi = "abi3"
    if abi or elf.has_python_init:
        kind = "python extension"
    return FileReport(
        member.path, kind, elf=elf, python=python, python_abi=abi, mode=member.mode
    )


def _wheel_tags(text: bytes) -> tuple[str, ...]:
    tags = []
    for line in text.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Tag":
            tags.append(value.strip())
    return tuple(tags)


# -- judging ------------------------------------------------------------------------


def reasons(report: FileReport, tgt: Target, in_package: bool = True) -> list[str]:
    """Why this file cannot run on the target, in the target's terms; [] if it can."""
    found = _binary_reasons(report, tgt)
    if in_package and report.path == "bootstrap" and tgt.python is None:
        found += _bootstrap_reasons(report)
    return found


def _binary_reasons(report: FileReport, tgt: Target) -> list[str]:
    if report.foreign:
        return [f"{report.foreign}, not a Linux ELF executable"]
    if report.unreadable:
        return [f"not a readable ELF file ({report.unreadable})"]
    elf = report.elf
    if elf is None or elf.kind in ("object", "core"):
        return []  # not loaded at run time
    if elf.machine != tgt.elf_machine:
        return [
            f"{elf.machine} binary, {tgt.runtime} on {tgt.arch} needs {tgt.elf_machine}"
        ]

    found = []
    if elf.libc == "musl" and elf.linkage == "dynamic":
        found.append(
            f"needs musl's loader {elf.interpreter}, which {tgt.runtime} lacks: "
            "link it statically or against glibc"
        )
    elif elf.libc == "musl" and elf.needed:
        musl = next((lib for lib in elf.needed if lib.startswith("libc.")), "libc.so")
        found.append(f"needs musl's C library ({musl}), {tgt.runtime} has glibc only")
    if elf.glibc and elf.glibc.version > tgt.glibc:
        found.append(
            f"needs {elf.glibc.describe()}, {tgt.runtime} has {tgt.glibc_text}"
        )
    if report.python and tgt.python and report.python != tgt.python:
        major, minor = tgt.python
        found.append(
            f"built for CPython {report.python[0]}.{report.python[1]}, {tgt.runtime} "
            f"loads cpython-{major}{minor} or abi3 modules"
        )
    return found


def _bootstrap_reasons(report: FileReport) -> list[str]:
    if report.kind == "symbolic link":
        # TODO: the link's target is judged as a file of its own but not as the
        # bootstrap, so a link to a non-executable file passes unnoticed.
        return []
    found = []
    if report.mode is None:
        found.append(
            "the zip records no Unix permissions for it (zipped on Windows?), so "
            "Lambda cannot execute it"
        )
    elif not report.mode & 0o111:
        found.append(
            f"not executable (mode {report.mode:o}): chmod 755 it before packaging"
        )
    if report.kind == "file":
        found.append("neither an ELF executable nor a #! script")
    elif report.kind == "script" and report.script and report.script.endswith("\r"):
        found.append(
            "its #! line ends in a carriage return (Windows line endings): the "
            "interpreter's name ends in \\r, so it is not found; save it with \\n"
        )
    elif report.elf and report.elf.kind != "executable":
        found.append(f"an ELF {report.elf.kind}, not an executable")
    return found


def _wheel_fits(tag: str, tgt: Target) -> bool:
    parts = tag.split("-")
    if len(parts) != 3 or tgt.python is None:
        return True
    interpreters, abis, platforms = (part.split(".") for part in parts)
    major, minor = tgt.python
    is_python = any(
        (abi == "none" and re.fullmatch(rf"(py|cp){major}\d*", interp) is not None)
        or (abi == "abi3" and _cp_minor(interp, major) <= minor)
        or (abi.startswith("cp") and abi.rstrip("mdu") == f"cp{major}{minor}")
        for interp in interpreters
        for abi in abis
    )
    is_platform = any(
        plat == "any"
        or (
            plat.startswith(("manylinux", "linux_"))
            and plat.endswith(f"_{tgt.elf_machine}")
        )
        for plat in platforms
    )
    return is_python and is_platform


def _cp_minor(interpreter: str, major: int) -> int:
    match = re.fullmatch(rf"cp{major}(\d+)", interpreter)
    return int(match[1]) if match else 1_000


def problems_in(inspection: Inspection, tgt: Target) -> list[str]:
    """Every reason, one line each, why the inspected path cannot run on ``tgt``."""
    found = [
        f"{report.path}: {reason}"
        for report in inspection.files
        for reason in reasons(report, tgt, inspection.is_package)
    ]
    if inspection.is_package and tgt.python is None and not inspection.has_bootstrap:
        found += [
            f"{path}: not where Lambda looks: {tgt.runtime} runs {BOOTSTRAP_PLACES}"
            for path in inspection.misplaced_bootstraps
        ]
    found += [
        f"{name}: a zip entry outside the package (absolute, or with ..): Lambda "
        "refuses or drops it"
        for name in inspection.unsafe_names
    ]
    for wheel in inspection.wheels:
        if wheel.tags and not any(_wheel_fits(tag, tgt) for tag in wheel.tags):
            major, minor = tgt.python or (3, 0)
            found.append(
                f"{wheel.path}: installed from a {' '.join(wheel.tags)} wheel, "
                f"{tgt.runtime} on {tgt.arch} needs cp{major}{minor}, abi3 or pure "
                f"Python wheels for manylinux {tgt.elf_machine}"
            )
    return found


def notes_in(inspection: Inspection, tgt: Target) -> list[str]:
    """What may still go wrong but depends on more than the package (a layer)."""
    if (
        inspection.is_package
        and tgt.python is None
        and not inspection.has_bootstrap
        and not inspection.misplaced_bootstraps
    ):
        return [
            f"no bootstrap: {tgt.runtime} runs {BOOTSTRAP_PLACES}, so a layer must "
            "bring one"
        ]
    return []


def problems(path: Path, target: Target) -> list[str]:
    """Why the package (folder or zip) cannot run on ``target``; [] when it can."""
    return problems_in(inspect_path(path), target)


# -- showing ------------------------------------------------------------------------


class Verdict(TypedDict):
    ok: bool
    reasons: list[str]


class FileJson(TypedDict):
    path: str
    kind: str
    machine: str | None
    linkage: str | None
    libc: str | None
    interpreter: str | None
    needed: list[str]
    max_glibc: str | None
    python_abi: str | None
    mode: str | None
    verdicts: dict[str, Verdict]


class TargetJson(TypedDict):
    runtime: str
    arch: str
    os: str
    glibc: str
    ok: bool
    problems: list[str]
    notes: list[str]


class InspectionJson(TypedDict):
    path: str
    files: list[FileJson]
    targets: list[TargetJson]


def to_json(inspection: Inspection, targets: list[Target]) -> InspectionJson:
    files: list[FileJson] = []
    for report in inspection.files:
        elf = report.elf
        verdicts: dict[str, Verdict] = {}
        for tgt in targets:
            found = reasons(report, tgt, inspection.is_package)
            verdicts[tgt.runtime] = {"ok": not found, "reasons": found}
        files.append(
            {
                "path": report.path,
                "kind": report.kind,
                "machine": elf.machine if elf else None,
                "linkage": elf.linkage if elf else None,
                "libc": elf.libc if elf else None,
                "interpreter": elf.interpreter if elf else report.script,
                "needed": list(elf.needed) if elf else [],
                "max_glibc": elf.glibc.label if elf and elf.glibc else None,
                "python_abi": report.python_abi,
                "mode": None if report.mode is None else f"{report.mode:o}",
                "verdicts": verdicts,
            }
        )
    summaries: list[TargetJson] = []
    for tgt in targets:
        found = problems_in(inspection, tgt)
        summaries.append(
            {
                "runtime": tgt.runtime,
                "arch": tgt.arch,
                "os": tgt.os_name,
                "glibc": tgt.glibc_text,
                "ok": not found,
                "problems": found,
                "notes": notes_in(inspection, tgt),
            }
        )
    return {"path": inspection.path, "files": files, "targets": summaries}


def to_text(inspection: Inspection, targets: list[Target]) -> str:
    lines: list[str] = []
    if inspection.files:
        header = ["FILE", "KIND", "MACHINE", "LINKAGE", "C LIBRARY", "GLIBC"]
        rows = [header + [tgt.runtime for tgt in targets]]
        for report in inspection.files:
            verdicts = [
                "no" if reasons(report, tgt, inspection.is_package) else "ok"
                for tgt in targets
            ]
            rows.append(_row(report) + verdicts)
        widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            lines.append("  ".join(cells).rstrip())
    else:
        lines.append(f"no binaries in {inspection.path}")

    for tgt in targets:
        found = problems_in(inspection, tgt)
        count = f"{len(found)} problem{'s' * (len(found) != 1)}" if found else "ok"
        lines += ["", f"{tgt.describe()}: {count}"]
        lines += [f"  {line}" for line in found]
        lines += [f"  note: {line}" for line in notes_in(inspection, tgt)]
    return "\n".join(lines)


def _row(report: FileReport) -> list[str]:
    elf = report.elf
    kind = report.kind
    if report.python_abi:
        kind = f"{kind} ({report.python_abi})"
    if elf is None:
        libc = f"#!{report.script}" if report.script else "-"
        return [report.path, kind, "-", "-", libc, "-"]
    libc = elf.libc or "-"
    if elf.interpreter:
        libc = f"{libc} ({elf.interpreter.rsplit('/', 1)[-1]})"
    glibc = elf.glibc.label if elf.glibc else "-"
    return [report.path, kind, elf.machine, elf.linkage, libc, glibc]


def run(args: argparse.Namespace) -> int:
    try:
        inspection = inspect_path(Path(args.path))
        # Checking against a target, Lambda's default machine unless told; only
        # describing, the machine the binaries are for.
        arch = args.arch or ("x86_64" if args.target else _arch_of(inspection))
        if args.target:
            targets = [target(args.target, arch)]
        else:
            targets = [target(name, arch) for name in COMMON_TARGETS]
    except (UnknownTarget, InspectError) as exc:
        print(f"lamina inspect: {exc}", file=sys.stderr)
        return 2

    if args.json:
        print(json.dumps(to_json(inspection, targets), indent=2))
    else:
        print(to_text(inspection, targets))
    if args.target and problems_in(inspection, targets[0]):
        return 1
    return 0


def _arch_of(inspection: Inspection) -> str:
    """The Lambda architecture the ELF files are for: arm64 if all are aarch64."""
    machines = {report.elf.machine for report in inspection.files if report.elf}
    return "arm64" if machines == {"aarch64"} else "x86_64"
