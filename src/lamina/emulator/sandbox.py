"""How this machine builds execution environments: the backend, chosen by probing.

In order of preference:

1. **namespaces + cgroups**: each process under bubblewrap (read-only code at
   ``/var/task``, layers at ``/opt``, a private capped ``/tmp``, its own pid, ipc
   and uts namespaces, uid 993) and every process of an environment in one
   cgroup (v2, or v1) for memory, the 1,024 processes, freezing and killing.
   Either half is used without the other where only it works.
2. **fallback**: rlimits, a memory watchdog and SIGSTOP/SIGCONT freezing.
3. **plain processes**: no limits, with one warning; only where even the
   fallback cannot work (no ``/proc``), or when asked for.

``--sandbox`` (or ``LAMINA_SANDBOX``) picks one: ``auto`` (the default),
``namespaces``, ``cgroups``, ``fallback`` or ``plain``.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lamina.emulator import bubblewrap, cgroups
from lamina.emulator.errors import LaminaError
from lamina.emulator.function import FunctionConfig
from lamina.emulator.limits import (
    FREEZE_AFTER_S,
    NOFILE_LIMIT,
    SAMPLE_INTERVAL_S,
    CgroupLimits,
    EnvironmentLimits,
    PlainLimits,
)
from lamina.emulator.process import ChildProcess, die_with_parent, libc

logger = logging.getLogger(__name__)

MODES = ("auto", "namespaces", "cgroups", "fallback", "plain")


class SandboxUnavailable(LaminaError):
    """The backend asked for cannot work here; the message says why and what to do."""


@dataclass(frozen=True)
class Enforcement:
    """One of Lambda's limits, and whether (and how) this machine enforces it."""

    limit: str
    is_enforced: bool
    how: str


@dataclass
class Backend:
    """The parts this service builds environments from."""

    mode: str
    bwrap: bubblewrap.Bubblewrap | None = None
    hierarchy: cgroups.Hierarchy | None = None
    notes: list[str] = field(default_factory=list)  # why a part is missing

    @property
    def name(self) -> str:
        if self.mode == "plain":
            return "plain processes (no limits)"
        parts = []
        if self.bwrap is not None:
            parts.append("namespaces (bubblewrap)")
        if self.hierarchy is not None:
            parts.append(f"cgroup {self.hierarchy.version}")
        else:
            parts.append("fallback limits (rlimits, memory watchdog, SIGSTOP)")
        return " + ".join(parts)

    def limits(
        self,
        config: FunctionConfig,
        groups: Callable[[], list[int]],
        on_exceeded: Callable[[int], None],
    ) -> EnvironmentLimits:
        if self.mode == "plain":
            return PlainLimits(config.memory_mb, groups, on_exceeded)
        if self.hierarchy is not None:
            try:
                group = self.hierarchy.create(config.memory_mb)
            except cgroups.CgroupError as exc:
                logger.warning("%s: %s; using the fallback limits", config.name, exc)
            else:
                return CgroupLimits(group, config.memory_mb, groups, on_exceeded)
        return EnvironmentLimits(config.memory_mb, groups, on_exceeded)

    def launcher(self, config: FunctionConfig, limits: EnvironmentLimits) -> Launcher:
        return Launcher(self, config, limits)

    def close(self) -> None:
        if self.hierarchy is not None:
            self.hierarchy.close()

    def enforcements(self) -> list[Enforcement]:
        return _enforcements(self)


class Launcher:
    """Starts one environment's processes, in its sandbox and under its limits."""

    def __init__(
        self, backend: Backend, config: FunctionConfig, limits: EnvironmentLimits
    ) -> None:
        self.backend = backend
        self.config = config
        self.limits = limits
        libc()  # loaded here, not again in every child

    def _child_setup(self) -> None:
        die_with_parent()
        self.limits.child_setup()

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        output_fd: int,
        pass_fds: Sequence[int] = (),
    ) -> ChildProcess:
        """Start a process of the environment; OSError as ``execve`` would raise it."""
        options = dict(
            stdin=subprocess.DEVNULL,
            stdout=output_fd,
            stderr=output_fd,
            start_new_session=True,
            preexec_fn=self._child_setup,
        )
        wrapper = self.backend.bwrap
        if wrapper is None:
            return ChildProcess.spawn(
                argv, env=env, cwd=cwd, pass_fds=tuple(pass_fds), **options
            )
        bubblewrap.check_executable(argv[0])
        info_read, info_write = os.pipe()
        try:
            command, inner_env = wrapper.command(
                argv,
                env,
                code_dir=self.config.code_dir,
                layers=[layer.path for layer in self.config.layers],
                tmp_mb=self.config.ephemeral_storage_mb,
                info_fd=info_write,
            )
            return bubblewrap.SandboxedProcess.start(
                command,
                info_read,
                env=inner_env,
                cwd="/",
                pass_fds=(*pass_fds, info_write),
                **options,
            )
        except BaseException:
            os.close(info_read)
            raise
        finally:
            os.close(info_write)


_chosen: dict[str, Backend] = {}


def backend(mode: str | None = None) -> Backend:
    """The backend for ``mode``, probed once per process and shared by its services."""
    mode = mode or os.environ.get("LAMINA_SANDBOX") or "auto"
    if mode not in _chosen:
        chosen = _chosen[mode] = choose(mode)
        atexit.register(chosen.close)
        if chosen.mode == "plain":
            logger.warning(
                "execution environments run as plain processes: no memory, process "
                "or file limits, no freezing (%s)",
                "; ".join(chosen.notes) or "asked for with --sandbox plain",
            )
    return _chosen[mode]


def choose(mode: str | None = None, cgroup_root: Path = cgroups.ROOT) -> Backend:
    """Probe this machine for the best backend, or the one ``mode`` names.

    Raises ``SandboxUnavailable`` when a backend asked for by name cannot work.
    """
    mode = mode or os.environ.get("LAMINA_SANDBOX") or "auto"
    if mode not in MODES:
        raise SandboxUnavailable(
            f"unknown sandbox {mode!r}: choose one of {', '.join(MODES)}"
        )
    backend = Backend(mode)
    if mode == "plain":
        return backend
    if mode in ("auto", "namespaces"):
        path = bubblewrap.find()
        if path is None:
            backend.notes.append(
                "bubblewrap (bwrap) is not on PATH (Debian/Ubuntu: apt-get install "
                "bubblewrap)"
            )
        else:
            is_working, why = bubblewrap.works(path)
            if is_working:
                backend.bwrap = bubblewrap.Bubblewrap(path)
            else:
                backend.notes.append(f"bubblewrap cannot make namespaces here: {why}")
        if mode == "namespaces" and backend.bwrap is None:
            raise SandboxUnavailable("; ".join(backend.notes))
    if mode in ("auto", "namespaces", "cgroups"):
        hierarchy, why = cgroups.probe(cgroup_root)
        if hierarchy is None:
            backend.notes.append(why)
            if mode == "cgroups":
                raise SandboxUnavailable(why)
        backend.hierarchy = hierarchy
    is_bare = backend.bwrap is None and backend.hierarchy is None
    if is_bare and mode == "auto" and not os.path.isdir("/proc/self/task"):
        backend.mode = "plain"
        backend.notes.append("no /proc: the memory watchdog cannot work")
    return backend


def _enforcements(backend: Backend) -> list[Enforcement]:
    """Each of Lambda's limits, and how (or why not) the backend enforces it."""
    plain = backend.mode == "plain"
    group = backend.hierarchy
    wrap = backend.bwrap
    off = f"off with --sandbox {backend.mode}"
    why_not_wrap = "; ".join(n for n in backend.notes if "bubblewrap" in n) or off
    why_not_group = "; ".join(n for n in backend.notes if "cgroup" in n) or off
    memory = (
        "none"
        if plain
        else (
            f"cgroup {group.version}: the kernel's limit, OOM kill and peak"
            if group is not None
            else f"watchdog samples resident memory every {SAMPLE_INTERVAL_S * 1000:.0f} ms "
            "in the init and invoke phases and kills the environment over it"
        )
    )
    counts_pids = group is not None and (
        group.version == "v1" or "pids" in group.controllers
    )
    pids = (
        f"cgroup {group.version} pids.max = {cgroups.PIDS_MAX}"
        if group is not None and counts_pids
        else "needs cgroups with the pids controller (RLIMIT_NPROC counts every "
        f"process of the user): {why_not_group}"
    )
    if group is not None and group.version == "v2":
        freezing = "cgroup v2 freezer (cgroup.freeze)"
    elif group is not None:
        freezing = "SIGSTOP to every process of the cgroup"
    else:
        freezing = "SIGSTOP to the process groups"
    freezing += f", {FREEZE_AFTER_S * 1000:.0f} ms after the environment goes idle"
    if plain:
        limits = [
            "memory (MemorySize)",
            "file descriptors (1,024)",
            "processes and threads (1,024)",
            "freezing between invokes",
            "read-only /var/task and /opt; only /tmp writable",
            "/tmp capped at EphemeralStorage",
            "own pid, ipc and uts namespaces; uid 993",
        ]
        return [Enforcement(limit, False, "none: plain processes") for limit in limits]
    return [
        Enforcement("memory (MemorySize)", not plain, memory),
        Enforcement(
            "file descriptors (1,024)", not plain, f"RLIMIT_NOFILE = {NOFILE_LIMIT}"
        ),
        Enforcement("processes and threads (1,024)", counts_pids, pids),
        Enforcement("freezing between invokes", not plain, freezing),
        Enforcement(
            "read-only /var/task and /opt; only /tmp writable",
            wrap is not None,
            "bubblewrap mounts" if wrap is not None else why_not_wrap,
        ),
        Enforcement(
            "/tmp capped at EphemeralStorage",
            wrap is not None,
            "a private tmpfs of that size (under cgroups its files count as memory)"
            if wrap is not None
            else why_not_wrap,
        ),
        Enforcement(
            "own pid, ipc and uts namespaces; uid 993",
            wrap is not None,
            "bubblewrap" if wrap is not None else why_not_wrap,
        ),
        Enforcement(
            "processes left behind",
            not plain,
            "cgroup kill"
            if group is not None
            else "the service adopts and ends "
            "what a function starts in a session of its own (child subreaper)",
        ),
    ]
