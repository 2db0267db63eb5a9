"""The ``lamina`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from lamina.emulator.logs import LogSink

log = logging.getLogger("lamina")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lamina", description="AWS Lambda, real and visible, on this machine."
    )
    parser.add_argument("--version", action="version", version=f"lamina {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    invoke = commands.add_parser(
        "invoke", help="invoke a function once; payload on stdout, logs on stderr"
    )
    invoke.add_argument(
        "name", metavar="FUNCTION", help="function name (or logical id)"
    )
    _add_template(invoke)
    source = invoke.add_mutually_exclusive_group()
    source.add_argument("-e", "--event", help="event file, or - for standard input")
    source.add_argument(
        "-s", "--sample", help="a bundled sample event (lamina events list)"
    )
    _add_log_file(invoke)
    _add_sandbox(invoke)
    _add_built(invoke)

    serve = commands.add_parser(
        "serve", help="run the Invoke API for a template's functions"
    )
    _add_template(serve)
    serve.add_argument("--host", type=_host, default="127.0.0.1")
    serve.add_argument(
        "--port", type=_port, default=9000, help="0 to 65535; 0 picks a free port"
    )
    serve.add_argument(
        "--max-concurrency",
        type=_at_least_one,
        default=1000,
        help="service-wide limit of concurrent invokes, all functions together "
        "(default 1000, as on AWS)",
    )
    serve.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where accepted Event invokes are kept across restarts "
        "(default: .lamina/ next to the template)",
    )
    serve.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=600.0,
        help="end an execution environment idle this long (default 600)",
    )
    serve.add_argument(
        "--async-retry-delay",
        metavar="SECONDS",
        type=_positive_seconds,
        default=60.0,
        help="delay before the first retry of a failed Event invoke; the second "
        "waits twice as long (default 60, about as on AWS)",
    )
    _add_log_file(serve)
    _add_sandbox(serve)
    _add_built(serve)

    events = commands.add_parser("events", help="bundled sample events")
    event_commands = events.add_subparsers(
        dest="events_command", required=True, metavar="{list,show}"
    )
    event_commands.add_parser("list", help="list the sample events")
    show = event_commands.add_parser("show", help="print one sample event as JSON")
    show.add_argument("event", metavar="NAME")

    doctor = commands.add_parser(
        "doctor", help="how this machine runs functions: limits, interpreters"
    )
    _add_sandbox(doctor)

    _toolchain_parsers(commands)

    demo = commands.add_parser(
        "demo", help="invoke every function of a template on its sample events"
    )
    _add_template(demo)
    return parser


def _whole_number(low: int, high: float, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


_port = _whole_number(0, 65535, "a port number (0 to 65535)")
_at_least_one = _whole_number(1, float("inf"), "a whole number of 1 or more")


def _host(text: str) -> str:
    # Digits and dots are an IPv4 address or nothing: no name lookup for them.
    if text and set(text) <= set("0123456789."):
        import ipaddress

        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text} is not an IPv4 address") from None
    return text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds above 0")
    return value


ARCHITECTURES = ("x86_64", "arm64")


def _add_template(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-t", "--template", help="SAM template (default: ./template.yaml)"
    )


def _toolchain_parsers(commands: Any) -> None:
    new = commands.add_parser("new", help="start a function project, ready to invoke")
    new.add_argument("name", metavar="NAME", help="the project's folder and function")
    new.add_argument(
        "--runtime",
        default="python3.12",
        help="python3.x or provided.al2023 (default python3.12)",
    )
    new.add_argument("--arch", choices=ARCHITECTURES, default="x86_64")

    build = commands.add_parser(
        "build", help="a deployment zip per function and layer, for its Lambda target"
    )
    build.add_argument("function", metavar="FUNCTION", nargs="?", help="one function")
    _add_template(build)
    build.add_argument(
        "--arch", choices=ARCHITECTURES, help="override the template's Architectures"
    )
    build.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="default: .lamina/build next to the template",
    )

    inspect = commands.add_parser(
        "inspect",
        help="what a binary, folder or zip needs: machine, C library, GLIBC version",
    )
    inspect.add_argument("path", metavar="PATH", help="a zip, a folder or a file")
    inspect.add_argument(
        "--target",
        help="provided.al2023, provided.al2 or python3.X: exit 1 if anything "
        "cannot run there",
    )
    inspect.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        help="the target's machine (default x86_64, as Lambda's; without --target, "
        "arm64 when every binary is aarch64)",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")

    deploy = commands.add_parser(
        "deploy", help="create or update the functions on AWS Lambda"
    )
    deploy.add_argument("function", metavar="FUNCTION", nargs="?", help="one function")
    _add_template(deploy)
    deploy.add_argument(
        "--dry-run", action="store_true", help="say what would change, change nothing"
    )
    deploy.add_argument(
        "--endpoint-url", help="another Lambda endpoint (a test server)"
    )
    deploy.add_argument("--region", help="default: the AWS configuration's")
    deploy.add_argument(
        "--role", help="execution role ARN for new functions without a Role property"
    )
    deploy.add_argument(
        "--alias", default="live", help="alias moved to the published version (live)"
    )


def _add_built(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--built",
        action="store_true",
        help="run the packages lamina build made (.lamina/build), as they ship",
    )


def _add_sandbox(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--sandbox",
        choices=("auto", "namespaces", "cgroups", "fallback", "plain"),
        help="how execution environments are isolated and limited (default auto: "
        "the best this machine has; lamina doctor tells which)",
    )


def _add_log_file(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--log-file",
        metavar="PATH",
        help="also append every log record to PATH, one JSON line each "
        '({"function", "record", "requestId"}), as CloudWatch keeps log events',
    )


def _log_sink(shown: LogSink, log_file: str | None) -> LogSink:
    """The sink for the function logs: ``shown`` and, when asked, a JSON lines file."""
    if not log_file:
        return shown
    from lamina.emulator.logs import JsonLinesSink, TeeSink

    try:
        return TeeSink(shown, JsonLinesSink(Path(log_file)))
    except OSError as exc:
        raise SystemExit(
            f"lamina: cannot open log file {log_file}: {exc.strerror}"
        ) from exc


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="lamina: %(message)s",
        stream=sys.stderr,
    )
    from lamina.emulator.errors import LaminaError

    try:
        code = _dispatch(args)
    except LaminaError as exc:
        print(f"lamina: {_describe(exc)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


def _describe(exc: Exception) -> str:
    from lamina.emulator.errors import ListenError, ServiceError

    if isinstance(exc, ServiceError):
        return f"{exc.error_type} ({exc.status}): {exc.message}"
    if isinstance(exc, ListenError) and exc.setting:
        return f"{exc}; pick another --{exc.setting}"
    return str(exc)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "events":
        return _events(args)
    if args.command == "invoke":
        return _invoke(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "doctor":
        from lamina.doctor import run_doctor

        return run_doctor(args.sandbox)
    if args.command in ("new", "build", "inspect", "deploy"):
        import importlib

        module = importlib.import_module(f"lamina.toolchain.{args.command}")
        return int(module.run(args))
    if args.command == "demo":
        from lamina.demo import run_demo

        return run_demo(args.template)
    raise AssertionError(args.command)


def _events(args: argparse.Namespace) -> int:
    from lamina import events

    if args.events_command == "list":
        names = events.names()
        width = max(len(name) for name in names)
        for name in names:
            print(f"{name:<{width}}  {events.describe(name)}")
        return 0
    try:
        print(json.dumps(events.load(args.event), indent=2))
    except events.UnknownEventError as exc:
        print(f"lamina: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def _read_event(args: argparse.Namespace) -> bytes:
    from lamina import events

    if args.sample:
        try:
            return json.dumps(events.load(args.sample)).encode()
        except events.UnknownEventError as exc:
            raise SystemExit(f"lamina: {exc.args[0]}") from exc
    if args.event == "-":
        return sys.stdin.buffer.read()
    if args.event:
        try:
            return Path(args.event).read_bytes()
        except OSError as exc:
            raise SystemExit(
                f"lamina: cannot read event file {args.event}: {exc.strerror}"
            ) from exc
    return b"{}"


def load_service(template: str | None, built: bool = False, **options: Any) -> Any:
    from lamina.emulator.sandbox import SandboxUnavailable
    from lamina.emulator.service import LambdaService
    from lamina.emulator.template import find_template, load_template

    path = find_template(template)
    loaded = load_template(path)
    functions = loaded.functions
    if built:
        from lamina.toolchain.build import BuildError, as_built

        try:
            functions = {
                name: as_built(config, path.parent)
                for name, config in functions.items()
            }
        except BuildError as exc:
            raise SystemExit(f"lamina: {exc}") from exc
        options["install_dependencies"] = False
    try:
        service = LambdaService(functions, **options)
    except SandboxUnavailable as exc:
        raise SystemExit(f"lamina: {exc}") from exc
    service.prepare()
    return service


def _invoke(args: argparse.Namespace) -> int:
    from lamina.emulator import aio
    from lamina.emulator.invoke_request import InvokeRequest
    from lamina.emulator.logs import StreamSink

    payload = _read_event(args)
    service = load_service(
        args.template,
        args.built,
        sink=_log_sink(StreamSink(), args.log_file),
        sandbox=args.sandbox,
    )

    async def once() -> Any:
        service.adopt_orphans()
        try:
            return await service.invoke(
                InvokeRequest(_function_ref(service, args.name), payload)
            )
        finally:
            await service.close()

    outcome = aio.run(once())
    sys.stdout.buffer.write(outcome.payload + b"\n")
    sys.stdout.flush()
    return 1 if outcome.is_error else 0


def _function_ref(service: Any, raw: str) -> Any:
    """What ``lamina invoke`` names: a function name, or the resource's logical id."""
    from lamina.emulator.function import (
        FunctionRef,
        function_named,
        parse_function_name,
    )

    ref = parse_function_name(raw)
    config = function_named(service.functions, ref.name)
    return ref if config is None else FunctionRef(config.name, ref.qualifier)


def _serve(args: argparse.Namespace) -> int:
    from lamina.emulator import aio, server
    from lamina.emulator.logs import StreamSink
    from lamina.emulator.template import find_template

    state_dir = args.state_dir or find_template(args.template).parent / ".lamina"
    service = load_service(
        args.template,
        args.built,
        sink=_log_sink(StreamSink(sys.stderr, prefix=True), args.log_file),
        concurrency_limit=args.max_concurrency,
        state_dir=Path(state_dir),
        async_retry_delay=args.async_retry_delay,
        idle_timeout=args.idle_timeout,
        sandbox=args.sandbox,
    )

    def ready(host: str, port: int) -> None:
        print(f"lamina: Invoke API at http://{host}:{port}", file=sys.stderr)
        for name, config in service.functions.items():
            print(
                f"  {name:<24} {config.runtime:<16} {config.code_dir}", file=sys.stderr
            )
        print(
            "  try: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION="
            f"us-east-1 aws lambda invoke --endpoint-url http://{host}:{port} "
            f"--function-name {next(iter(service.functions))} out.json\n"
            f"  sandbox: {service.backend.name}\n"
            "  Ctrl-C stops the service and every execution environment.",
            file=sys.stderr,
        )

    aio.run(server.serve(service, args.host, args.port, on_ready=ready))
    print("lamina: stopped", file=sys.stderr)
    return 0
