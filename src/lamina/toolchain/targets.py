"""What a Lambda runtime offers a package: its OS, C library, Python and machines."""

from __future__ import annotations

from dataclasses import dataclass

from lamina.emulator.errors import LaminaError

# Lambda's names for machines, and the names ELF files and wheel tags use.
ELF_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
# Where Lambda looks for a custom runtime's bootstrap: the code, then the layers.
BOOTSTRAP_PLACES = "/var/task/bootstrap or /opt/bootstrap"

_AL2 = ("Amazon Linux 2", (2, 26))
_AL2023 = ("Amazon Linux 2023", (2, 34))
_PYTHON_OS = {
    "python3.8": _AL2,
    "python3.9": _AL2,
    "python3.10": _AL2,
    "python3.11": _AL2,
    "python3.12": _AL2023,
    "python3.13": _AL2023,
    "python3.14": _AL2023,
}
_PROVIDED_OS = {"provided.al2": _AL2, "provided.al2023": _AL2023, "provided": _AL2}


class UnknownTarget(LaminaError, ValueError):
    """Not a runtime lamina knows the OS of."""


@dataclass(frozen=True)
class Target:
    """A Lambda runtime on one architecture."""

    runtime: str
    arch: str  # Lambda's name: x86_64 or arm64
    os_name: str
    glibc: tuple[int, int]

    @property
    def python(self) -> tuple[int, int] | None:
        """The managed runtime's Python version; None for provided.*."""
        if not self.runtime.startswith("python"):
            return None
        major, minor = self.runtime.removeprefix("python").split(".")
        return int(major), int(minor)

    @property
    def elf_machine(self) -> str:
        return ELF_MACHINES[self.arch]

    @property
    def glibc_text(self) -> str:
        return f"{self.glibc[0]}.{self.glibc[1]}"

    def manylinux_platforms(self) -> list[str]:
        """Every wheel platform tag this target runs, newest first (PEP 600 and legacy)."""
        machine = self.elf_machine
        tags = [
            f"manylinux_2_{minor}_{machine}" for minor in range(self.glibc[1], 16, -1)
        ]
        tags.append(f"manylinux2014_{machine}")
        if machine == "x86_64":
            tags += [f"manylinux_2_{minor}_{machine}" for minor in (12, 5)]
            tags += [f"manylinux2010_{machine}", f"manylinux1_{machine}"]
        return tags

    def describe(self) -> str:
        return f"{self.runtime} ({self.arch}, {self.os_name}, glibc {self.glibc_text})"


def target(runtime: str, arch: str = "x86_64") -> Target:
    if arch not in ELF_MACHINES:
        raise UnknownTarget(f"unknown architecture {arch!r}: use x86_64 or arm64")
    known = _PYTHON_OS.get(runtime) or _PROVIDED_OS.get(runtime)
    if known is None:
        names = ", ".join([*_PROVIDED_OS, *_PYTHON_OS])
        raise UnknownTarget(f"unknown target {runtime!r}: use one of {names}")
    os_name, glibc = known
    return Target(runtime, arch, os_name, glibc)
