"""What a ``python3.x`` function runs on: interpreter, runtime client, dependencies.

A Python function sees lamina's runtime client, its own code, its layers and the
packages its ``requirements.txt`` declares — not whatever sits next to lamina. The
interpreter is started with ``-S`` so that no site-packages are on its path.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lamina.runtime
from lamina.emulator.errors import LaminaError
from lamina.emulator.function import FunctionConfig

logger = logging.getLogger(__name__)


class DependencyError(LaminaError):
    """``requirements.txt`` could not be installed."""


def cache_dir() -> Path:
    base = os.environ.get("LAMINA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lamina"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def interpreter_for(version: str) -> tuple[str, bool]:
    """The real interpreter for ``3.12``: (path, is_exact). Shims are seen through."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version == here:
        return sys.executable, True
    for candidate in _candidates(version):
        # A version manager's shim costs tens of milliseconds per start: ask the
        # interpreter once where it really lives, and start that from then on.
        try:
            real = subprocess.run(
                [candidate, "-S", "-c", "import sys; print(sys.executable)"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            real = ""
        if real and os.access(real, os.X_OK):
            return real, True
    return sys.executable, False


def _candidates(version: str) -> list[str]:
    """Where an interpreter for ``version`` may live: PATH, then version managers."""
    found = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    home = Path.home()
    roots = [
        Path(os.environ.get("PYENV_ROOT") or home / ".pyenv") / "versions",
        home / ".local" / "share" / "uv" / "python",
    ]
    for root in roots:
        if root.is_dir():
            for folder in sorted(root.iterdir(), reverse=True):
                binary = folder / "bin" / f"python{version}"
                if binary.is_file() and binary.name.endswith(version):
                    found.append(str(binary))
    found += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    return [path for path in found if os.access(path, os.X_OK)]


@functools.cache
def runtime_client_dir() -> Path:
    """A folder holding only ``lamina/runtime``: the one thing a function may import."""
    source = Path(lamina.runtime.__file__).parent
    files = sorted(source.glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = cache_dir() / f"runtime-{digest.hexdigest()[:16]}"
    if not target.exists():
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".runtime-"))
        package = staging / "lamina" / "runtime"
        package.mkdir(parents=True)
        (staging / "lamina" / "__init__.py").write_text("")
        for path in files:
            shutil.copyfile(path, package / path.name)
        try:
            staging.rename(target)
        except OSError:  # another service made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def requirements_of(config: FunctionConfig) -> Path | None:
    path = config.code_dir / "requirements.txt"
    if not path.is_file():
        return None
    meaningful = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return path if meaningful else None


def dependencies_dir(config: FunctionConfig, interpreter: str) -> Path | None:
    """Install the function's requirements once into a cache keyed by their hash."""
    requirements = requirements_of(config)
    if requirements is None:
        return None
    key = hashlib.sha256(
        requirements.read_bytes()
        + f"\0{config.runtime}\0{config.architecture}".encode()
    ).hexdigest()[:16]
    target = cache_dir() / "deps" / key
    if target.exists():
        return target

    print(
        f"lamina: installing {config.name}'s requirements.txt for {config.runtime} "
        f"(once; cached in {target})",
        file=sys.stderr,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".install-"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(staging),
        "-r",
        str(requirements),
        "--python-version",
        config.python_version,
        "--only-binary=:all:",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DependencyError(
            f"{config.name}: installing {requirements} failed:\n{result.stderr.strip()}"
        )
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def python_path(config: FunctionConfig, deps: Path | None) -> str:
    """``sys.path`` in Lambda's order: code, layers, dependencies, runtime client."""
    entries = [str(config.code_dir)]
    for layer in config.layers:
        entries.append(
            str(layer.path / "python" / "lib" / config.runtime / "site-packages")
        )
        entries.append(str(layer.path / "python"))
    if deps is not None:
        entries.append(str(deps))
    entries.append(str(runtime_client_dir()))
    return os.pathsep.join(entries)


_compiled: set[tuple[str, str]] = set()


def precompile(interpreter: str, folders: list[Path]) -> None:
    """Byte-compile ``folders`` into the shared cache, where functions look for it.

    In the namespaces sandbox the cache is read-only to the function, so what is
    not compiled here would be compiled again at every cold start.
    """
    todo = [str(f) for f in folders if (interpreter, str(f)) not in _compiled]
    if not todo:
        return
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache_dir() / "pycache"))
    command = [interpreter, "-m", "compileall", "-q", "-j", "0", *todo]
    result = subprocess.run(command, env=env, capture_output=True, check=False)
    # The standard library's modules too: with a cache prefix Python reads their
    # compiled form from the prefix alone, not from the library's __pycache__.
    warm = "import lamina.runtime.loop, lamina.runtime.logging_setup, json, logging"
    env["PYTHONPATH"] = str(runtime_client_dir())
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [interpreter, "-S", "-c", warm], env=env, capture_output=True, check=False
    )
    if result.returncode == 0:
        _compiled.update((interpreter, folder) for folder in todo)
