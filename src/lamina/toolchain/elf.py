"""What one binary is: its format, machine, linkage, C library and GLIBC needs.

I/O-free: everything here reads bytes already in memory, so a zip member and a file
on disk go through the same code. ELF files are read with pyelftools.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import NoteSection, SymbolTableSection
from elftools.elf.segments import InterpSegment

# Enough of a file's start to tell the formats apart (a PE header sits past the DOS one).
HEAD_SIZE = 4096

_MACHO_MAGICS = {
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
}
_FAT_MAGIC = b"\xca\xfe\xba\xbe"

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_386": "i386",
    "EM_ARM": "arm",
    "EM_RISCV": "riscv",
    "EM_PPC64": "ppc64",
    "EM_S390": "s390x",
}
_DF_1_PIE = 0x08000000
_VERNEED_ENTRY_SIZE = 16  # Elf32/64_Verneed and _Vernaux alike
_GLIBC_VERSION = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")
# Binaries linked with packed relative relocations need a loader from glibc 2.36 on.
_GLIBC_MARKERS = {"GLIBC_ABI_DT_RELR": (2, 36)}


class NotReadable(ValueError):
    """The file starts like an ELF file but pyelftools cannot read it."""


@dataclass(frozen=True)
class GlibcNeed:
    """The newest glibc symbol version a file asks for."""

    label: str  # as the file spells it: GLIBC_2.36, GLIBC_ABI_DT_RELR
    version: tuple[int, ...]

    def describe(self) -> str:
        if _GLIBC_VERSION.fullmatch(self.label):
            return self.label
        return f"{self.label} (glibc {'.'.join(map(str, self.version))})"


@dataclass(frozen=True)
class Elf:
    machine: str  # x86_64, aarch64, i386, ...
    kind: str  # executable, shared library, object, core
    linkage: str  # static, static-pie, dynamic, shared, relocatable
    interpreter: str | None
    libc: str | None  # glibc, musl, none (Go); None when it cannot be told
    needed: tuple[str, ...]
    glibc: GlibcNeed | None
    has_python_init: bool  # exports PyInit_*: a CPython extension module


def foreign_format(head: bytes) -> str | None:
    """Name a non-Linux executable format, or None."""
    magic = head[:4]
    if magic in _MACHO_MAGICS:
        return "Mach-O (macOS) binary"
    # Java class files share the fat Mach-O magic; there the next word is a class
    # file version (45 and up), in a fat binary it counts the architectures.
    if magic == _FAT_MAGIC and len(head) >= 8 and int.from_bytes(head[4:8]) < 30:
        return "Mach-O (macOS) universal binary"
    if head[:2] == b"MZ" and _has_pe_header(head):
        return "PE (Windows) binary"
    return None


def _has_pe_header(head: bytes) -> bool:
    # A DOS header's last field points at the PE signature.
    if len(head) < 0x40:
        return False
    offset = int.from_bytes(head[0x3C:0x40], "little")
    if offset + 4 > len(head):
        return offset < 0x10000  # out of the head's reach; trust a plausible pointer
    return head[offset : offset + 4] == b"PE\0\0"


def is_elf(head: bytes) -> bool:
    return head[:4] == b"\x7fELF"


def read_elf(data: bytes) -> Elf:
    try:
        return _read(ELFFile(io.BytesIO(data)), data)
    except (
        ELFError,
        ConstructError,
        ValueError,
        KeyError,
        OSError,
        OverflowError,
    ) as exc:
        raise NotReadable(str(exc) or type(exc).__name__) from exc


def _read(elf: ELFFile, data: bytes) -> Elf:
    e_type = elf.header["e_type"]
    machine = _MACHINES.get(elf.header["e_machine"], str(elf.header["e_machine"]))
    if machine.startswith("EM_"):
        machine = machine.removeprefix("EM_").lower()
    interpreter = next(
        (
            seg.get_interp_name()
            for seg in elf.iter_segments()
            if isinstance(seg, InterpSegment)
        ),
        None,
    )
    needed, flags_1 = _dynamic(elf)
    kind, linkage = _linkage(
        e_type, interpreter, needed, flags_1, elf.header["e_entry"]
    )
    return Elf(
        machine=machine,
        kind=kind,
        linkage=linkage,
        interpreter=interpreter,
        libc=_libc(elf, data, interpreter, needed),
        needed=needed,
        glibc=_glibc_need(elf, len(data)),
        has_python_init=kind == "shared library" and _exports_python_init(elf),
    )


def _dynamic(elf: ELFFile) -> tuple[tuple[str, ...], int]:
    needed: list[str] = []
    flags_1 = 0
    for section in elf.iter_sections():
        if not isinstance(section, DynamicSection):
            continue
        for tag in section.iter_tags():
            if tag.entry.d_tag == "DT_NEEDED":
                # pyelftools sets the library's name as an attribute of its own.
                needed.append(str(vars(tag)["needed"]))
            elif tag.entry.d_tag == "DT_FLAGS_1":
                flags_1 = int(tag.entry.d_val)
    return tuple(needed), flags_1


def _linkage(
    e_type: str,
    interpreter: str | None,
    needed: tuple[str, ...],
    flags: int,
    entry: int,
) -> tuple[str, str]:
    if e_type == "ET_REL":
        return "object", "relocatable"
    if e_type == "ET_CORE":
        return "core", "-"
    if interpreter is not None:
        return "executable", "dynamic"
    if e_type == "ET_EXEC":
        return "executable", "static"
    # ET_DYN without a loader: a static-pie executable or a shared library.
    if flags & _DF_1_PIE or (entry and not needed):
        return "executable", "static-pie"
    return "shared library", "shared"


def _libc(
    elf: ELFFile, data: bytes, interpreter: str | None, needed: tuple[str, ...]
) -> str | None:
    if interpreter is not None:
        name = interpreter.rsplit("/", 1)[-1]
        if name.startswith("ld-musl-"):
            return "musl"
        if name.startswith(("ld-linux", "ld64.so")):
            return "glibc"
        return None
    for lib in needed:
        if lib.startswith("libc.musl-") or lib == "libc.so":
            return "musl"
        if lib == "libc.so.6":
            return "glibc"
    if needed:
        return None

    # A static binary keeps no loader name; what it links in leaves traces.
    if _has_gnu_abi_tag(elf) or b"GLIBC_" in data or b"glibc" in data:
        return "glibc"
    if elf.get_section_by_name(".note.go.buildid") or elf.get_section_by_name(
        ".go.buildinfo"
    ):
        return "none (Go)"
    if b"musl" in data:
        return "musl"
    return None


def _has_gnu_abi_tag(elf: ELFFile) -> bool:
    for section in elf.iter_sections():
        if isinstance(section, NoteSection):
            for note in section.iter_notes():
                if note["n_type"] == "NT_GNU_ABI_TAG":
                    return True
    return False


def _glibc_need(elf: ELFFile, size: int) -> GlibcNeed | None:
    # TODO: a binary stripped of its section headers keeps its version needs only in
    # the dynamic segment; those are not read, so its GLIBC need shows as unknown.
    best: GlibcNeed | None = None
    for section in elf.iter_sections():
        if not isinstance(section, GNUVerNeedSection):
            continue
        # Entries are 16 bytes; counts in a damaged file can claim billions of them.
        budget = min(int(section["sh_size"]), size) // _VERNEED_ENTRY_SIZE
        for _, auxiliaries in section.iter_versions():
            for aux in auxiliaries:
                budget -= 1
                if budget < 0:
                    raise NotReadable("version needs run past their section")
                need = _parse_glibc(str(aux.name))
                if need is not None and (best is None or need.version > best.version):
                    best = need
    return best


def _parse_glibc(label: str) -> GlibcNeed | None:
    match = _GLIBC_VERSION.fullmatch(label)
    if match:
        return GlibcNeed(label, tuple(int(part) for part in match[1].split(".")))
    if label in _GLIBC_MARKERS:
        return GlibcNeed(label, _GLIBC_MARKERS[label])
    return None


def _exports_python_init(elf: ELFFile) -> bool:
    symbols = elf.get_section_by_name(".dynsym")
    if not isinstance(symbols, SymbolTableSection):
        return False
    return any(
        symbol.name.startswith("PyInit_") and symbol["st_shndx"] != "SHN_UNDEF"
        for symbol in symbols.iter_symbols()
    )
