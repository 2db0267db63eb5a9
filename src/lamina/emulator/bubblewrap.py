"""An execution environment's file system and namespaces, as Lambda lays them out.

Each process of an environment runs under bubblewrap (``bwrap``) with:

- the machine's own folders read-only (``/usr``, ``/etc``, the interpreters...),
  on a root that is itself read-only;
- the function's code read-only at ``/var/task``, its layers merged read-only at
  ``/opt`` (a later layer's file takes an earlier one's place);
- a private ``/tmp`` of the function's ``EphemeralStorage`` size — the only
  writable place, as on Lambda;
- its own pid, ipc and uts namespaces, and Lambda's user (uid 993, gid 990) in a
  user namespace; the network is the machine's, so the Runtime API is reachable.

Paths of the code and layers in the command and the variables are rewritten to
``/var/task`` and ``/opt``; other paths the function needs that the sandbox
would hide (a cache under ``/tmp``) are bound read-only where they are.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamina.emulator.process import ChildProcess, children_of

TASK = "/var/task"
OPT = "/opt"
SANDBOX_UID = 993  # Lambda's sbx_user1051
SANDBOX_GID = 990
_HIDDEN = ("/tmp", "/var/tmp")
_OWN_MOUNTS = {"proc", "dev", "tmp", "var", "opt", "run"}
# /run holds the machine's service sockets (a database's, D-Bus's, Docker's): a
# function sees none of them, only the resolver's files that /etc/resolv.conf may
# point into.
_RUN_KEPT = ("/run/systemd/resolve", "/run/resolvconf")
_PATH_LISTS = ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH")
_MB = 1024 * 1024
_HOST_MACHINE = {"x86_64": 62, "aarch64": 183}  # ELF e_machine values
# The kernel's settings stay read-only: run by root, the sandbox's user is root
# outside its user namespace, and /proc/sys would otherwise take its writes.
_KERNEL_SETTINGS = ["--ro-bind", "/proc/sys", "/proc/sys"] + (
    ["--ro-bind", "/dev/null", "/proc/sysrq-trigger"]
    if os.path.exists("/proc/sysrq-trigger")
    else []
)


def find() -> str | None:
    return shutil.which("bwrap")


def works(path: str) -> tuple[bool, str]:
    """Whether ``bwrap`` can make the namespaces here (user namespaces allowed)."""
    command = [path, "--ro-bind", "/", "/", "--unshare-user", "--unshare-pid"]
    command += ["--uid", str(SANDBOX_UID), "--", "true"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if result.returncode != 0:
        return False, result.stderr.strip() or f"exit status {result.returncode}"
    return True, ""


def _bind_host(folder: str, skip: set[str]) -> list[str]:
    args: list[str] = []
    for name in sorted(os.listdir(folder)):
        if name in skip:
            continue
        path = os.path.join(folder, name)
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _merge(dest: str, sources: list[Path], args: list[str]) -> None:
    """Lay ``sources`` over each other at ``dest``, the last one on top."""
    if len(sources) == 1 or not all(s.is_dir() and not s.is_symlink() for s in sources):
        top = sources[-1]
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), dest]
        else:
            args += ["--ro-bind", str(top), dest]
        return
    args += ["--dir", dest]
    names = sorted({entry.name for source in sources for entry in source.iterdir()})
    for name in names:
        below = [
            s / name for s in sources if (s / name).exists() or (s / name).is_symlink()
        ]
        _merge(f"{dest}/{name}", below, args)


class Bubblewrap:
    """Builds the ``bwrap`` command for one function's processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        # The machine's folders, read-only; listed once per service.
        self._host = _bind_host("/", _OWN_MOUNTS)
        self._host += ["--dir", "/var", *_bind_host("/var", {"task", "tmp", "runtime"})]
        self._host += ["--tmpfs", "/run"]
        for kept in _RUN_KEPT:
            if os.path.isdir(kept):
                self._host += ["--ro-bind", kept, kept]
        self._host += ["--remount-ro", "/run"]

    def command(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        code_dir: Path,
        layers: Sequence[Path],
        tmp_mb: int,
        info_fd: int,
    ) -> tuple[list[str], dict[str, str]]:
        places = [(str(code_dir), TASK)] + [(str(layer), OPT) for layer in layers]

        def inside(value: str) -> str:
            for outside, there in places:
                if value == outside or value.startswith(outside + "/"):
                    return there + value[len(outside) :]
            return value

        inner_argv = [inside(arg) for arg in argv]
        inner_env = {}
        for name, value in env.items():
            if name in _PATH_LISTS:
                parts = [inside(part) for part in value.split(os.pathsep)]
                inner_env[name] = os.pathsep.join(dict.fromkeys(parts))
            else:
                inner_env[name] = inside(value)

        args = [self.path, *self._host, "--ro-bind", str(code_dir), TASK]
        args += ["--tmpfs", OPT]
        layer_dirs = [layer for layer in layers if layer.is_dir()]
        names = sorted({e.name for layer in layer_dirs for e in layer.iterdir()})
        for name in names:
            below = [layer / name for layer in layer_dirs if (layer / name).exists()]
            _merge(f"{OPT}/{name}", below, args)
        args += ["--size", str(tmp_mb * _MB), "--tmpfs", "/tmp"]
        # A script's interpreter too (an extension's #! naming a venv under /tmp).
        interpreter = _interpreter_of(argv[0]) if argv else None
        named = [*inner_argv, *([interpreter] if interpreter else [])]
        for path in self._hidden(named, inner_env):
            args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", *_KERNEL_SETTINGS]
        args += ["--remount-ro", OPT, "--remount-ro", "/dev", "--remount-ro", "/"]
        args += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)]
        args += ["--die-with-parent", "--chdir", TASK, "--info-fd", str(info_fd)]
        return [*args, "--", *inner_argv], inner_env

    @staticmethod
    def _hidden(argv: list[str], env: dict[str, str]) -> list[str]:
        """Paths the function names that the sandbox's own mounts would hide."""
        candidates = list(argv)
        for name, value in env.items():
            candidates += value.split(os.pathsep) if name in _PATH_LISTS else [value]
        found = []
        for value in candidates:
            is_hidden = any(value.startswith(place + "/") for place in _HIDDEN)
            if is_hidden and os.path.exists(value) and value not in found:
                found.append(value)
        # A parent bound first would hide nothing; a child inside it is redundant.
        found.sort()
        kept: list[str] = []
        for path in found:
            if not any(path.startswith(parent + "/") for parent in kept):
                kept.append(path)
        return kept


def check_executable(path: str) -> None:
    """Raise what ``execve`` would raise for ``path``, before bwrap hides it."""
    if not os.path.isfile(path):
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if not os.access(path, os.X_OK):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)
    with open(path, "rb") as file:
        header = file.read(20)
    if header.startswith(b"#!"):
        _check_interpreter(path)
        return
    # Else an ELF file for this machine (e_machine, little-endian), or nothing.
    host = _HOST_MACHINE.get(platform.machine())
    machine = int.from_bytes(header[18:20], "little") if len(header) == 20 else None
    is_elf = header.startswith(b"\x7fELF") and header[5:6] == b"\x01"
    if not is_elf or machine is None or (host is not None and machine != host):
        raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC), path)


def _interpreter_of(path: str) -> str | None:
    """The interpreter a ``#!`` script names, or None."""
    try:
        with open(path, "rb") as file:
            line = file.readline(256)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    words = line[2:].strip().split(b" ", 1)
    return words[0].decode(errors="replace") if words[0] else None


def _check_interpreter(path: str) -> None:
    """A script's interpreter must exist (a CRLF line ending makes ``/bin/sh\\r``)."""
    with open(path, "rb") as file:
        line = file.readline(256)
    words = line[2:].split(b" ", 1)[0].strip(b" \t\n")
    interpreter = words.decode(errors="replace")
    if interpreter.startswith((TASK, OPT)):
        return  # inside the package: checked when it runs
    if not interpreter or not os.access(interpreter, os.X_OK) or "\r" in interpreter:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)


class SandboxedProcess(ChildProcess):
    """``bwrap`` and, inside it, the process the environment started.

    Signals go to that process (found through bwrap's info file), not to bwrap;
    bwrap reports a death by signal N as exit status 128 + N, read back here.
    """

    info_fd = -1
    _init: int | None = None

    @classmethod
    def start(cls, argv: list[str], info_read: int, **options: Any) -> SandboxedProcess:
        process = cls.spawn(argv, **options)
        assert isinstance(process, SandboxedProcess)
        process.info_fd = info_read
        process._exited.add_done_callback(lambda _: process._close_info())
        return process

    def _close_info(self) -> None:
        if self.info_fd >= 0:
            os.close(self.info_fd)
            self.info_fd = -1

    def main_pid(self) -> int | None:
        return self.inner_pid()

    def inner_pid(self) -> int | None:
        if self._init is None and self.info_fd >= 0:
            with contextlib.suppress(OSError, ValueError, KeyError):
                self._init = int(json.loads(os.read(self.info_fd, 4096))["child-pid"])
            self._close_info()
        if self._init is None:
            return None
        # bwrap's init is pid 1 inside; the command is its one child.
        found = sorted(children_of(self._init))
        return found[0] if found else None

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        pid = self.inner_pid()
        if pid is None:
            super().send_signal(sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _settle(self, code: int) -> None:
        if code > 128 and code - 128 in signal.valid_signals():
            code = -(code - 128)
        super()._settle(code)
