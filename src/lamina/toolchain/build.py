"""``lamina build``: one deployment zip per function and per layer, for its target.

A package is what Lambda unpacks into ``/var/task`` (or a layer into ``/opt``):

- the function's code folder, without caches and local state;
- for ``python3.x``: the dependencies of ``requirements.txt`` (or
  ``pyproject.toml``'s ``[project] dependencies``), installed by pip for the
  target — its Python version, its machine, and wheels whose manylinux tag needs
  no newer glibc than the target's OS has; pip is never allowed to build from
  source for this machine (``--only-binary=:all:``);
- for ``provided.*``: the ``bootstrap`` at the root. A Python project on a custom
  runtime also gets lamina's runtime client (``lamina/runtime``, 66 KB of source),
  and its ``bootstrap`` looks for an interpreter in a layer (``/opt/python/bin``
  or ``/opt/bin``), since Amazon Linux 2023's own image has none.

The zip is deterministic: sorted entries, fixed timestamps, ``bootstrap`` and
executables 0755 and everything else 0644, so the same inputs give the same bytes
(and Lambda's ``CodeSha256`` stays put). Lambda's size limits are checked, and
every native file is checked against the target with ``lamina inspect``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from lamina.emulator.errors import LaminaError
from lamina.emulator.function import FunctionConfig, Layer, function_named
from lamina.toolchain.targets import BOOTSTRAP_PLACES, Target, UnknownTarget, target

ZIPPED_LIMIT = 50 * 1024 * 1024  # direct upload
UNZIPPED_LIMIT = 250 * 1024 * 1024  # function and layers together
EPOCH = (1980, 1, 1, 0, 0, 0)
BUILD_DIR = Path(".lamina") / "build"
_SKIPPED = {"__pycache__", ".git", ".lamina", ".aws-sam", ".venv", ".pytest_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


class BuildError(LaminaError):
    """The package cannot be built, or would not work on Lambda; says why."""


@dataclass(frozen=True)
class Package:
    """A built zip and its sizes."""

    name: str
    path: Path
    zipped: int
    unzipped: int
    files: int


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


# -- collecting files -----------------------------------------------------------------


def package_files(root: Path) -> Iterable[tuple[str, Path]]:
    """(name in the zip, file) for every file under ``root``, sorted.

    Symbolic links are followed (the zip holds what they point at), a folder seen
    before is not entered again (a link loop), and what cannot go into a zip — a
    dangling link, a FIFO, a socket, a name that is not UTF-8 — is a ``BuildError``.
    """
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = os.stat(folder)
        if (here.st_dev, here.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((here.st_dev, here.st_ino))
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for name in sorted(files):
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            yield _checked(relative, path), path


def _checked(relative: str, path: Path) -> str:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise BuildError(
            f"{path.parent / ascii(path.name)}: the name is not UTF-8, which a zip "
            "for Lambda needs: rename it"
        ) from None
    try:
        info = path.stat()
    except OSError as exc:
        if path.is_symlink():
            raise BuildError(
                f"{path}: a symbolic link to {os.readlink(path)}, which "
                f"{'does not exist' if isinstance(exc, FileNotFoundError) else 'cannot be read'}"
            ) from None
        raise BuildError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise BuildError(
            f"{path}: not a regular file (a FIFO, socket or device): a Lambda package "
            "holds files only"
        )
    return relative


def _mode(name: str, path: Path) -> int:
    # Lambda runs /var/task/bootstrap and a layer's extensions: executable whatever
    # the mode on this machine (a checkout on another system may have lost it).
    if name == "bootstrap" or name.startswith("extensions/"):
        return 0o755
    return _file_mode(path)


def _file_mode(path: Path) -> int:
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


def write_zip(files: list[tuple[str, Path]], out: Path) -> tuple[int, int]:
    """Write ``files`` deterministically; returns (zipped, unzipped) bytes."""
    unzipped = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for name, path in sorted(files):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.create_system = 3  # Unix, so that the mode bits count
            info.external_attr = (0o100000 | _mode(name, path)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            zipped.writestr(info, data)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial")
    staging.write_bytes(buffer.getvalue())
    staging.replace(out)
    return out.stat().st_size, unzipped


# -- dependencies -----------------------------------------------------------------------


def requirements(code_dir: Path) -> list[str]:
    """pip's arguments for the project's dependencies: ``-r requirements.txt``, else
    ``pyproject.toml``'s ``[project] dependencies``; empty when there are none."""
    listed = code_dir / "requirements.txt"
    if listed.is_file():
        lines = _logical_lines(listed.read_text(errors="replace"))
        if not lines:
            return []
        for line in lines:
            _refuse_direct(line, listed)
        return ["-r", str(listed)]
    project = code_dir / "pyproject.toml"
    if project.is_file():
        try:
            document = tomllib.loads(project.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise BuildError(f"{project}: not valid TOML: {exc}") from exc
        wanted = [str(d) for d in document.get("project", {}).get("dependencies", [])]
        for line in wanted:
            _refuse_direct(line, project)
        return wanted
    return []


def _logical_lines(text: str) -> list[str]:
    """A requirements file's lines, joined where they continue, without comments."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line]


def _refuse_direct(line: str, source: Path) -> None:
    # pip builds a local folder, a URL or a VCS checkout on this machine, wheels-only
    # options or not: such a package would hold code compiled for here.
    if line.startswith("-") and not line.startswith(("-e", "--editable")):
        return  # an option: --index-url, --hash, -r other.txt, ...
    direct = (
        line.startswith((".", "/", "~", "-e", "--editable", "file:"))
        or "://" in line
        or re.search(r"\s@\s", line) is not None
    )
    if direct:
        raise BuildError(
            f"{source}: {line!r} is a path or URL, which pip would build on this "
            "machine, not for Lambda: publish a wheel and pin it, or vendor the "
            "package's files into the code folder"
        )


def pip_command(
    wanted: list[str], where: Path, python: tuple[int, int], tgt: Target
) -> list[str]:
    """pip, resolving ``wanted`` for the target and installing into ``where``."""
    version = f"{python[0]}.{python[1]}"
    command = [sys.executable, "-m", "pip", "install", "--quiet"]
    command += ["--disable-pip-version-check", "--no-compile", "--no-input"]
    # Everything the package needs goes into it, whatever this venv holds.
    command += ["--ignore-installed"]
    command += ["--target", str(where), "--only-binary=:all:"]
    command += ["--implementation", "cp", "--python-version", version]
    for platform in tgt.manylinux_platforms():
        command += ["--platform", platform]
    return [*command, *wanted]


def install_dependencies(
    wanted: list[str],
    where: Path,
    python: tuple[int, int],
    tgt: Target,
    cwd: Path | None = None,
) -> None:
    result = subprocess.run(
        pip_command(wanted, where, python, tgt),
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    if result.returncode == 0:
        # Console scripts name this machine's interpreter in their #! line:
        # useless on Lambda, and they would tie the zip's bytes to this venv.
        shutil.rmtree(where / "bin", ignore_errors=True)
        return
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith("WARNING: Location")
    ]
    why = "\n".join(lines[-6:]) or f"pip exited with status {result.returncode}"
    hint = ""
    missing = re.search(r"satisfies the requirement (\S+) \(from versions: none\)", why)
    if missing:
        hint = (
            f"\nNo wheel of {missing.group(1)} fits Python {python[0]}.{python[1]} on "
            f"{tgt.arch} with glibc {tgt.glibc_text}: it may publish only a source "
            "distribution, which lamina does not build for this machine. Pin a "
            "version that publishes such a wheel, or vendor the package."
        )
    raise BuildError(
        f"cannot install the dependencies for {tgt.describe()}:\n{why}{hint}"
    )


# -- a function -------------------------------------------------------------------------

PYTHON_BOOTSTRAP = """#!/bin/sh
# Starts lamina's runtime client on Python. Amazon Linux 2023 has no Python of its
# own: a layer brings one (at /opt/python/bin or /opt/bin); locally the machine's.
PYTHON=python3
for candidate in /opt/python/bin/python3 /opt/bin/python3; do
    if [ -x "$candidate" ]; then PYTHON=$candidate; break; fi
done
export PYTHONPATH="$LAMBDA_TASK_ROOT${LAMBDA_RUNTIME_DIR:+:$LAMBDA_RUNTIME_DIR}"
exec "$PYTHON" -S -m lamina.runtime
"""


def _runtime_client_files() -> list[tuple[str, Path]]:
    """lamina/__init__.py (empty) and lamina/runtime/*.py, nothing else of lamina."""
    from lamina.emulator.pythonrt import runtime_client_dir

    return list(package_files(runtime_client_dir()))


def _is_python_project(code_dir: Path) -> bool:
    bootstrap = code_dir / "bootstrap"
    if bootstrap.is_file():
        with contextlib.suppress(OSError):
            return "lamina.runtime" in bootstrap.read_text(errors="replace")
    return False


def _imports_runtime_client(files: list[tuple[str, Path]]) -> bool:
    """Code that imports lamina.runtime (its streaming helpers, say) needs it packed."""
    for name, path in files:
        if name.endswith(".py"):
            with contextlib.suppress(OSError):
                if "lamina.runtime" in path.read_text(errors="replace"):
                    return True
    return False


def _check_bootstrap(config: FunctionConfig, names: set[str]) -> None:
    if "bootstrap" in names:
        return
    if any((layer.path / "bootstrap").is_file() for layer in config.layers):
        return  # a layer brings /opt/bootstrap
    misplaced = sorted(name for name in names if name.endswith("/bootstrap"))
    found = (
        f" (found {', '.join(misplaced)}, which Lambda does not look at)"
        if misplaced
        else ""
    )
    raise BuildError(
        f"{config.name}: {config.runtime} needs an executable bootstrap at "
        f"{BOOTSTRAP_PLACES}{found}: put it at the root of {config.code_dir}"
    )


def _check_handler(config: FunctionConfig, names: set[str]) -> None:
    """The handler's module is in the package, as the runtime will look for it."""
    module = config.handler.rsplit(".", 1)[0]
    stem = module.replace(".", "/")
    if f"{stem}.py" in names or f"{stem}/__init__.py" in names:
        return
    if any(n.startswith(f"{stem}.") and n.endswith(".so") for n in names):
        return
    raise BuildError(
        f"{config.name}: Handler {config.handler} names module {module}, but the "
        f"package has no {stem}.py: Lambda would fail with Runtime.ImportModuleError"
    )


def build_function(
    config: FunctionConfig,
    out_dir: Path,
    arch: str | None = None,
    say: Callable[[str], None] = print,
) -> Package:
    """Build ``<out_dir>/<name>.zip`` for the function's runtime and architecture."""
    try:
        tgt = target(config.runtime, arch or config.architecture)
    except UnknownTarget as exc:
        raise BuildError(f"{config.name}: {exc}") from exc
    if not config.code_dir.is_dir():
        raise BuildError(f"{config.name}: code folder {config.code_dir} does not exist")
    files = list(package_files(config.code_dir))
    if not files:
        raise BuildError(
            f"{config.name}: {config.code_dir} holds no files: Lambda refuses an "
            "empty package"
        )
    wanted = requirements(config.code_dir)
    is_custom = tgt.python is None
    is_python_project = _is_python_project(config.code_dir)
    python = tgt.python or sys.version_info[:2]
    if is_custom:
        _check_bootstrap(config, {name for name, _ in files})
    if is_python_project or _imports_runtime_client(files):
        names = {name for name, _ in files}
        files += [f for f in _runtime_client_files() if f[0] not in names]
    with tempfile.TemporaryDirectory(prefix="lamina-build-") as scratch:
        if wanted and (not is_custom or is_python_project):
            say(
                f"  {config.name}: resolving its dependencies for "
                f"{tgt.describe()}, Python {python[0]}.{python[1]}"
            )
            deps = Path(scratch) / "deps"
            install_dependencies(wanted, deps, python, tgt, cwd=config.code_dir)
            taken = {name for name, _ in files}
            files += [(n, p) for n, p in package_files(deps) if n not in taken]
        if not is_custom:
            _check_handler(config, {name for name, _ in files})
        out = out_dir / f"{config.name}.zip"
        zipped, unzipped = write_zip(files, out)
    package = Package(config.name, out, zipped, unzipped, len(files))
    try:
        _check_limits(config, package)
        _check_binaries(config, package, tgt)
    except BuildError:
        out.unlink()
        raise
    return package


def _check_limits(config: FunctionConfig, package: Package) -> None:
    layers = sum(
        path.stat().st_size
        for layer in config.layers
        for _, path in package_files(layer.path)
    )
    total = package.unzipped + layers
    if total > UNZIPPED_LIMIT:
        raise BuildError(
            f"{config.name}: {megabytes(total)} unzipped with its layers "
            f"({megabytes(package.unzipped)} code, {megabytes(layers)} layers): "
            f"Lambda allows {megabytes(UNZIPPED_LIMIT)}"
        )
    if package.zipped > ZIPPED_LIMIT:
        raise BuildError(
            f"{config.name}: the zip is {megabytes(package.zipped)}: a direct upload "
            f"takes at most {megabytes(ZIPPED_LIMIT)} (upload larger packages through "
            "S3, or move dependencies into a layer)"
        )


def _check_binaries(config: FunctionConfig, package: Package, tgt: Target) -> None:
    from lamina.toolchain.inspect import problems

    found = problems(package.path, tgt)
    if found:
        listed = "\n".join(f"  {line}" for line in found)
        raise BuildError(
            f"{config.name}: the package cannot run on {tgt.describe()}:\n{listed}"
        )


def build_layer(layer: Layer, out_dir: Path) -> Package:
    files = list(package_files(layer.path))
    out = out_dir / "layers" / f"{layer.name}.zip"
    zipped, unzipped = write_zip(files, out)
    return Package(layer.name, out, zipped, unzipped, len(files))


# -- running a built package ----------------------------------------------------------


def built_dir(template_dir: Path) -> Path:
    return template_dir / BUILD_DIR


def unpack(package: Path, where: Path) -> Path:
    """Unzip ``package`` as Lambda does, mode bits included; returns the folder."""
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    with zipfile.ZipFile(package) as zipped:
        for info in zipped.infolist():
            target_path = where / info.filename
            if not target_path.resolve().is_relative_to(where.resolve()):
                raise BuildError(
                    f"{package}: {info.filename} points outside the package"
                )
            zipped.extract(info, where)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target_path.chmod(mode)
    return where


def as_built(config: FunctionConfig, template_dir: Path) -> FunctionConfig:
    """The function as its built zip runs: unpacked code, unpacked layers."""
    out = built_dir(template_dir)
    package = out / f"{config.name}.zip"
    if not package.is_file():
        raise BuildError(
            f"{config.name}: no built package at {package}: run lamina build first"
        )
    code = unpack(package, out / "unpacked" / config.name)
    layers = []
    for layer in config.layers:
        zipped = out / "layers" / f"{layer.name}.zip"
        if not zipped.is_file():
            raise BuildError(
                f"{config.name}: layer {layer.name} is not built: run lamina build first"
            )
        layers.append(
            Layer(layer.name, unpack(zipped, out / "unpacked" / "layers" / layer.name))
        )
    return replace(config, code_dir=code, layers=tuple(layers))


# -- the command ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from lamina.emulator.template import find_template, load_template

    template_path = find_template(args.template)
    functions = load_template(template_path).functions
    layers = {layer.name: layer for c in functions.values() for layer in c.layers}
    only_layer = None
    if args.function:
        config = function_named(functions, args.function)
        chosen = {config.name: config} if config else {}
        only_layer = layers.get(args.function) if not chosen else None
        if not chosen and only_layer is None:
            names = ", ".join(sorted([*functions, *layers]))
            print(
                f"lamina: no function or layer {args.function!r} in {template_path} "
                f"({names})",
                file=sys.stderr,
            )
            return 2
        functions = chosen
    out_dir = Path(args.output) if args.output else built_dir(template_path.parent)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"lamina: -o {out_dir}: a file, not a folder", file=sys.stderr)
        return 2
    print(
        f"lamina: building {len(functions)} function(s) into {out_dir}",
        file=sys.stderr,
    )
    built: list[Package] = []
    failed = 0
    wanted_layers: dict[str, list[tuple[str, Target]]] = {}
    for config in functions.values():
        try:
            built.append(build_function(config, out_dir, args.arch, say=_say))
        except BuildError as exc:
            failed += 1
            print(f"lamina: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failed += 1
            print(
                f"lamina: {config.name}: {exc.filename}: {exc.strerror}",
                file=sys.stderr,
            )
            continue
        tgt = target(config.runtime, args.arch or config.architecture)
        for layer in config.layers:
            wanted_layers.setdefault(layer.name, []).append((config.name, tgt))
    if only_layer is not None:
        wanted_layers[only_layer.name] = []
    for name, users in wanted_layers.items():
        try:
            package = build_layer(layers[name], out_dir)
        except (BuildError, OSError) as exc:
            failed += 1
            print(f"lamina: layer {name}: {exc}", file=sys.stderr)
            continue
        built.append(package)
        for function, tgt in users:
            found = _layer_problems(package, tgt)
            if found:
                failed += 1
                listed = "\n".join(f"  /opt/{line}" for line in found)
                print(
                    f"lamina: layer {name}, as {function}'s, cannot run on "
                    f"{tgt.describe()}:\n{listed}",
                    file=sys.stderr,
                )
    _table(built)
    return 1 if failed else 0


def _layer_problems(package: Package, tgt: Target) -> list[str]:
    from lamina.toolchain.inspect import problems

    # A layer need not bring a bootstrap: only its binaries are judged.
    return [line for line in problems(package.path, tgt) if "bootstrap" not in line]


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _table(built: list[Package]) -> None:
    if not built:
        return
    width = max(len("package"), *(len(p.name) for p in built))
    print(f"{'package':<{width}}  {'zipped':>9}  {'unzipped':>9}  {'files':>6}  path")
    for p in built:
        print(
            f"{p.name:<{width}}  {megabytes(p.zipped):>9}  {megabytes(p.unzipped):>9}  "
            f"{p.files:>6}  {p.path}"
        )
