"""Control groups for execution environments: memory, processes, freezing, killing.

One cgroup per environment, under a folder per ``lamina serve`` process
(``lamina-<pid>``) inside the service's own cgroup, so that limits nest:

- **v2** (one unified hierarchy, as on a current laptop, as root or in a
  systemd-delegated scope): ``memory.max`` = MemorySize, ``memory.swap.max`` = 0,
  ``pids.max`` = 1,024, ``memory.peak`` for Max Memory Used, ``memory.events``
  for the OOM kill, ``cgroup.freeze`` and ``cgroup.kill``;
- **v1** (a hierarchy per controller): ``memory`` (``memory.limit_in_bytes``,
  ``memory.memsw.limit_in_bytes``, ``memory.max_usage_in_bytes``,
  ``memory.oom_control``) and ``pids`` (``pids.max``). v1's freezer is not used:
  a task it froze ignores SIGKILL until thawed, so an environment frozen when
  ``lamina serve`` is killed would outlive it. Every member is stopped with
  SIGSTOP instead (the cgroup's list catches what left the process group), which
  a SIGKILL always ends.

A child joins its environment's cgroups itself, before it runs the bootstrap,
so that nothing it starts escapes them.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import time
from pathlib import Path

from lamina.emulator.errors import LaminaError

ROOT = Path("/sys/fs/cgroup")
PIDS_MAX = 1024
V1_CONTROLLERS = ("memory", "pids")
_MB = 1024 * 1024
_sequence = itertools.count(1)


class CgroupError(LaminaError):
    """A cgroup could not be made or written; the message says which and why."""


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror}") from exc


def _read_int(path: Path, key: str | None = None) -> int:
    """A number file, or the value of ``key`` in a ``key value`` file; 0 if absent."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    if key is None:
        return int(text.split()[0]) if text.strip() else 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def own_cgroup(controller: str | None) -> str:
    """This process's cgroup path in a v1 hierarchy, or in v2's (``None``)."""
    with open("/proc/self/cgroup") as listing:
        for line in listing:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller is None and names == "":
                return path
            if controller is not None and controller in names.split(","):
                return path
    raise CgroupError(f"this process is in no {controller or 'v2'} cgroup")


def _members(folder: Path) -> list[int]:
    try:
        return [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _remove(folder: Path) -> None:
    # A cgroup goes once its last member is reaped; the kernel may lag a moment.
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
        time.sleep(0.002)


class Cgroup:
    """One environment's cgroup(s); the same calls on either version."""

    version = ""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders
        # Opened before the fork: the child only writes to them.
        self.procs_files = [str(folder / "cgroup.procs") for folder in folders.values()]

    def join(self) -> None:
        """In the child, before exec: move this process into the cgroup."""
        for path in self.procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def members(self) -> list[int]:
        return sorted(
            {pid for folder in self.folders.values() for pid in _members(folder)}
        )

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Thaw (a frozen task keeps a SIGKILL pending), then kill every member."""
        _end_members(next(iter(self.folders.values())))

    def peak_mb(self) -> int:
        raise NotImplementedError

    def oom_kills(self) -> int:
        raise NotImplementedError

    def remove(self) -> None:
        """Kill what is left, then take the cgroup away."""
        self.kill()
        for folder in self.folders.values():
            _remove(folder)


class CgroupV1(Cgroup):
    version = "v1"

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        for pid in _members(self.folders["pids"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def peak_mb(self) -> int:
        used = _read_int(self.folders["memory"] / "memory.max_usage_in_bytes")
        return max(1, round(used / _MB))

    def oom_kills(self) -> int:
        control = self.folders["memory"] / "memory.oom_control"
        kills = _read_int(control, "oom_kill")
        if kills == 0 and _read_int(control, "under_oom"):
            return 1
        return kills


class CgroupV2(Cgroup):
    version = "v2"

    @property
    def _folder(self) -> Path:
        return self.folders["unified"]

    def freeze(self) -> None:
        with contextlib.suppress(OSError):
            (self._folder / "cgroup.freeze").write_text("1")

    def thaw(self) -> None:
        with contextlib.suppress(OSError):
            (self._folder / "cgroup.freeze").write_text("0")

    def peak_mb(self) -> int:
        used = _read_int(self._folder / "memory.peak")
        return max(1, round(used / _MB))

    def oom_kills(self) -> int:
        return _read_int(self._folder / "memory.events", "oom_kill")


class Hierarchy:
    """Where this service makes its environments' cgroups, and of which version."""

    def __init__(self, version: str, parents: dict[str, Path]) -> None:
        self.version = version
        self.parents = parents  # controller (or "unified") -> lamina-<pid> folder
        self.controllers: set[str] = set()
        if version == "v2":
            available = (parents["unified"] / "cgroup.controllers").read_text()
            self.controllers = set(available.split()) & {"memory", "pids"}

    def describe(self) -> str:
        places = ", ".join(str(path.parent) for path in self.parents.values())
        return f"cgroup {self.version} in {places} (a lamina-<pid> folder per service)"

    def create(self, memory_mb: int) -> Cgroup:
        name = f"env-{next(_sequence)}"
        folders = {key: parent / name for key, parent in self.parents.items()}
        try:
            for folder in folders.values():
                folder.mkdir()
            if self.version == "v1":
                memory = folders["memory"]
                _write(memory / "memory.limit_in_bytes", str(memory_mb * _MB))
                if (memory / "memory.memsw.limit_in_bytes").exists():
                    _write(memory / "memory.memsw.limit_in_bytes", str(memory_mb * _MB))
                _write(folders["pids"] / "pids.max", str(PIDS_MAX))
                return CgroupV1(folders)
            folder = folders["unified"]
            if "memory" in self.controllers:
                _write(folder / "memory.max", str(memory_mb * _MB))
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", "0")
            if "pids" in self.controllers:
                _write(folder / "pids.max", str(PIDS_MAX))
            return CgroupV2(folders)
        except (OSError, CgroupError) as exc:
            for folder in folders.values():
                _remove(folder)
            if isinstance(exc, CgroupError):
                raise
            raise CgroupError(f"cannot make a cgroup: {exc}") from exc

    def close(self) -> None:
        for parent in self.parents.values():
            _remove_service_folder(parent)


def _service_folder(base: Path) -> Path:
    folder = base / f"lamina-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder


def sweep(bases: list[Path]) -> list[Path]:
    """Take away the cgroups of ``lamina serve`` processes that died without it.

    Whatever still runs in them is killed first. Returns the folders removed.
    """
    removed = []
    for base in bases:
        for folder in base.glob("lamina-*"):
            pid = folder.name.removeprefix("lamina-")
            if not pid.isdigit() or _alive(int(pid)):
                continue
            _remove_service_folder(folder)
            removed.append(folder)
    return removed


def _remove_service_folder(folder: Path) -> None:
    """End what still runs in a service's environments, then take them all away."""
    if not folder.is_dir():
        return
    for env in [child for child in folder.iterdir() if child.is_dir()]:
        _end_members(env)
        _remove(env)
    _remove(folder)


def _end_members(folder: Path) -> None:
    """Thaw and kill whatever runs in a cgroup of either version."""
    for pid in _members(folder):  # stopped by SIGSTOP: SIGKILL ends them anyway
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)
    for name, value in (
        ("freezer.state", "THAWED"),
        ("cgroup.freeze", "0"),
        ("cgroup.kill", "1"),
    ):
        if (folder / name).exists():
            with contextlib.suppress(OSError):
                (folder / name).write_text(value)
    for _ in range(100):
        pids = _members(folder)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.001)


def _alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped by its parent, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _v2_base(root: Path) -> Path:
    """The service's own v2 cgroup, made able to hold environments with limits."""
    base = root / own_cgroup(None).lstrip("/")
    wanted = set((base / "cgroup.controllers").read_text().split()) & {"memory", "pids"}
    if not wanted:
        return base
    enable = " ".join(f"+{name}" for name in sorted(wanted))
    try:
        _write(base / "cgroup.subtree_control", enable)
    except CgroupError as exc:
        # A cgroup with processes cannot hand controllers to children (v2's "no
        # internal processes" rule): the service moves into a leaf of its own.
        if not _members(base):
            raise
        leaf = base / "lamina-service"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(os.getpid()))
        try:
            _write(base / "cgroup.subtree_control", enable)
        except CgroupError:
            raise exc from None
    return base


def probe(root: Path = ROOT) -> tuple[Hierarchy | None, str]:
    """The cgroups this process can make environments in, or None and why not."""
    try:
        if (root / "cgroup.controllers").is_file():
            base = _v2_base(root)
            sweep([base])
            return Hierarchy("v2", {"unified": _service_folder(base)}), ""
        missing = [name for name in V1_CONTROLLERS if not (root / name).is_dir()]
        if missing:
            if not root.is_dir():
                return None, f"no cgroup file system at {root}"
            return None, f"cgroup v1 controllers missing: {', '.join(missing)}"
        bases = {
            name: root / name / own_cgroup(name).lstrip("/") for name in V1_CONTROLLERS
        }
        sweep(list(bases.values()))
        parents = {name: _service_folder(base) for name, base in bases.items()}
        return Hierarchy("v1", parents), ""
    except (OSError, CgroupError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return (
            None,
            f"cannot make cgroups here ({reason}); run as root or in a delegated scope",
        )


def v2_at(base: Path) -> Hierarchy:
    """A v2 hierarchy at ``base`` (a cgroup2 mount or a delegated cgroup)."""
    return Hierarchy("v2", {"unified": _service_folder(base)})
