"""``lamina deploy``: create or update a template's functions on AWS Lambda.

For each function: upload its built zip (create the function, or update its code
when Lambda's ``CodeSha256`` differs), bring its configuration in line with the
template, wait for Lambda to finish each update, publish a version, point the alias
at it and give the alias the template's function URL (or take down the one the
template no longer has). Before any call, each zip is checked against the function's
runtime and architecture. ``--dry-run`` makes read-only calls, writes nothing here
(a stale zip is built in a scratch folder) and says what would change.

Credentials, region, retries and endpoint come from the standard AWS
configuration (``--region`` and ``--endpoint-url`` override it); the calls are
``lamina.toolchain.deployer``'s, and botocore's exceptions become one line each here.

"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from lamina.emulator.function import EventInvokeConfig, FunctionConfig, function_named
from lamina.emulator.intrinsics import SERVERLESS_FUNCTION
from lamina.toolchain.build import (
    ZIPPED_LIMIT,
    BuildError,
    build_function,
    built_dir,
    package_files,
)
from lamina.toolchain.deployer import (
    Code,
    Deployer,
    DeployError,
    Say,
    Wanted,
    error_of,
    size_text,
    wanted_configuration,
)
from lamina.toolchain.inspect import InspectError, problems
from lamina.toolchain.targets import UnknownTarget, target

_REFUSED_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
}
_REFUSED_ACTION = {"AccessDeniedException", "AccessDenied"}
_NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE to a profile (aws configure creates one), "
    "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
_NO_REGION = "no AWS region: pass --region, set AWS_REGION, or run aws configure"


@dataclass(frozen=True)
class Source:
    """Where the functions come from: the template, as a file and as read."""

    template: Path
    document: Any
    role: str | None  # --role, for functions whose template gives none
    # Where a stale zip is built again: .lamina/build, or scratch for a dry run.
    out_dir: Path
    is_dry_run: bool


# -- the template side --------------------------------------------------------------


def _properties(document: Any, config: FunctionConfig) -> dict[str, Any]:
    """The resource's properties as written, under ``Globals.Function`` for SAM."""
    resources = document.get("Resources") or {}
    resource = resources.get(config.logical_id or config.name) or {}
    props = resource.get("Properties") or {}
    if resource.get("Type") != SERVERLESS_FUNCTION:
        return dict(props)
    shared = (document.get("Globals") or {}).get("Function") or {}
    return {**shared, **props}


def _role(name: str, props: dict[str, Any], given: str | None) -> str | None:
    role = props.get("Role")
    if role is None or isinstance(role, str):
        return role or given
    if given:
        return given
    # Lamina creates no IAM roles, so a role the stack would create has no ARN here.
    shown = " ".join(str(part) for part in role.items())
    raise DeployError(
        f"{name}: Role is {shown}, which lamina deploy cannot resolve "
        "(it creates no IAM roles): pass --role ARN",
        status=2,
    )


def _url(
    name: str, props: dict[str, Any], config: FunctionConfig
) -> dict[str, Any] | None:
    spec = props.get("FunctionUrlConfig")
    if not isinstance(spec, dict):
        return None
    auth = spec.get("AuthType")
    if auth not in ("NONE", "AWS_IAM"):
        raise DeployError(
            f"{name}: FunctionUrlConfig.AuthType is {auth!r}: Lambda needs NONE "
            "(public) or AWS_IAM",
            status=2,
        )
    url = {"AuthType": auth, "InvokeMode": config.url_invoke_mode or "BUFFERED"}
    if isinstance(spec.get("Cors"), dict):
        url["Cors"] = spec["Cors"]
    return url


def _package(config: FunctionConfig, source: Source, say: Say) -> tuple[Path, bool]:
    """The function's zip from ``lamina build``, built again when its code is newer,
    and whether it was built just now (and so already checked against its target).

    A dry run builds into ``source.out_dir`` (scratch), leaving .lamina/build as is.
    """
    path = built_dir(source.template.parent) / f"{config.name}.zip"
    changed = [p.stat().st_mtime for _, p in package_files(config.code_dir)]
    newest = max([source.template.stat().st_mtime, *changed])
    if path.is_file() and path.stat().st_mtime >= newest:
        return path, False

    why = "is older than its code or template" if path.is_file() else "is not built yet"
    if source.is_dry_run:
        say(f"  {config.name}: would build the zip first: it {why}")
    else:
        say(f"  {config.name}: the zip {why}; building it")
    try:
        return build_function(config, source.out_dir, say=say).path, True
    except BuildError as exc:
        raise DeployError(f"{exc}; fix it, then lamina build", status=2) from exc


def _check_target(config: FunctionConfig, path: Path) -> None:
    """Refuse a zip built for another runtime or machine (``lamina build --arch``)."""
    try:
        found = problems(path, target(config.runtime, config.architecture))
    except (UnknownTarget, InspectError) as exc:
        raise DeployError(f"{config.name}: {exc}", status=2) from exc
    if found:
        raise DeployError(
            f"{config.name}: {path} cannot run on {config.runtime} "
            f"{config.architecture}: {'; '.join(found)}: run lamina build again "
            "(without --arch) to build it for the template's target",
            status=2,
        )


def _warn_missing_python(config: FunctionConfig, data: bytes, say: Say) -> None:
    """A provided.* bootstrap that starts lamina's runtime client needs a Python."""
    if config.layers or not config.runtime.startswith("provided"):
        return
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        if "bootstrap" not in zipped.namelist():
            return
        text = zipped.read("bootstrap").decode(errors="replace")
    if "lamina.runtime" in text:
        say(
            f"lamina: warning: {config.name}: its bootstrap runs Python, which "
            f"{config.runtime} lacks: it will fail to start on Lambda until a layer "
            "brings /opt/python/bin/python3 (lamina deploy does not publish layers "
            "yet)"
        )


def wanted(config: FunctionConfig, source: Source, say: Say) -> Wanted:
    """What deploying ``config`` means; refuses what would not work before AWS sees it."""
    name = config.name
    if config.layers:
        # TODO: publish the template's layers (publish_layer_version) and pass their
        # version ARNs; until then a function with layers must be deployed another way.
        layers = ", ".join(layer.name for layer in config.layers)
        raise DeployError(
            f"{name}: layers are not deployed yet: {name} uses {layers}; lamina "
            "deploy would leave the function without them",
            status=2,
        )
    if config.event_invoke != EventInvokeConfig():
        # TODO: deploy EventInvokeConfig and destinations; they stay as Lambda has them.
        say(f"  {name}: EventInvokeConfig and destinations are not deployed; skipped")

    props = _properties(source.document, config)
    path, is_checked = _package(config, source, say)
    size = path.stat().st_size
    if size > ZIPPED_LIMIT:
        raise DeployError(
            f"{name}: {path} is {size_text(size)} ({size} bytes): a direct upload to "
            f"Lambda takes at most {size_text(ZIPPED_LIMIT)} "
            f"({ZIPPED_LIMIT} bytes); move dependencies into a layer"
        )
    if not is_checked:
        _check_target(config, path)
    data = path.read_bytes()
    _warn_missing_python(config, data, say)
    description = props.get("Description")
    return Wanted(
        name=name,
        configuration=wanted_configuration(
            config, description if isinstance(description, str) else ""
        ),
        architectures=[config.architecture],
        code=Code(path, data),
        role=_role(name, props, source.role),
        url=_url(name, props, config),
        reserved_concurrency=config.reserved_concurrency,
    )


def _choose(
    functions: dict[str, FunctionConfig], name: str | None, template: Path
) -> list[FunctionConfig]:
    if not name:
        return list(functions.values())
    config = function_named(functions, name)
    if config is None:
        names = ", ".join(sorted(functions))
        raise DeployError(f"no function {name!r} in {template} ({names})", status=2)
    return [config]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        return _deploy(args)
    except DeployError as exc:
        print(f"lamina: {exc}", file=sys.stderr)
        return exc.status


def _deploy(args: argparse.Namespace) -> int:
    from lamina.emulator.document import read_document
    from lamina.emulator.template import find_template, load_template

    if args.endpoint_url is not None:
        _check_endpoint(args.endpoint_url)
    template = find_template(args.template)
    functions = _choose(load_template(template).functions, args.function, template)
    with tempfile.TemporaryDirectory(prefix="lamina-deploy-") as scratch:
        source = Source(
            template,
            read_document(template),
            args.role,
            Path(scratch) if args.dry_run else built_dir(template.parent),
            args.dry_run,
        )
        # The zips are read into memory here, so scratch may go once this is done.
        wants = [wanted(c, source, _say) for c in functions]
    return _apply(args, wants)


def _apply(args: argparse.Namespace, wants: list[Wanted]) -> int:
    client = _client(args.region, args.endpoint_url)
    endpoint = str(client.meta.endpoint_url)
    is_default = "amazonaws.com" in endpoint
    deployer = Deployer(client, args.alias, _say)
    _say(
        f"lamina: {'dry run against' if args.dry_run else 'deploying to'} {endpoint} "
        f"({client.meta.region_name}): {', '.join(w.name for w in wants)}"
    )

    # Read everything before changing anything: a missing role stops the whole run.
    states = []
    for want in wants:
        with lambda_terms(want.name, endpoint, is_default):
            states.append(deployer.deployed(want.name))
    for want, have in zip(wants, states, strict=True):
        if have is None and want.role is None:
            raise DeployError(
                f"{want.name}: no execution role: the template gives it no Role; pass "
                "--role arn:aws:iam::ACCOUNT:role/NAME (lamina deploy creates no IAM "
                "roles)",
                status=2,
            )

    if args.dry_run:
        for want, have in zip(wants, states, strict=True):
            with lambda_terms(want.name, endpoint, is_default):
                for line in deployer.preview(want, have):
                    print(line)
        _say("lamina: dry run: nothing was changed")
        return 0

    for want, have in zip(wants, states, strict=True):
        with lambda_terms(want.name, endpoint, is_default):
            outcome = deployer.deploy(want, have)
        print(f"{want.name}  function  {outcome.function_arn}")
        print(
            f"{want.name}  alias     {outcome.alias_arn}  (version {outcome.version})"
        )
        if outcome.url:
            print(f"{want.name}  url       {outcome.url}")
    return 0


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DeployError(
            f"--endpoint-url {url} is not a URL: give http(s)://host:port", status=2
        )


# -- botocore, in Lambda's terms ------------------------------------------------------


def describe_client_error(exc: ClientError) -> str:
    code, message = error_of(exc)
    action = f"lambda:{exc.operation_name}"
    if code in _REFUSED_ACTION:
        return f"{code}: {action} was refused: {message}"
    if code in _REFUSED_CREDENTIALS:
        return (
            f"{code}: AWS refused the credentials for {action}: {message} "
            "(check AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    return f"{code} on {action}: {message}"


@contextmanager
def lambda_terms(name: str, endpoint: str, is_default: bool) -> Iterator[None]:
    """Turn botocore's exceptions into one ``DeployError`` line each."""
    try:
        yield
    except ClientError as exc:
        raise DeployError(f"{name}: {describe_client_error(exc)}") from exc
    except NoCredentialsError as exc:
        raise DeployError(_NO_CREDENTIALS) from exc
    except NoRegionError as exc:
        raise DeployError(_NO_REGION) from exc
    except EndpointConnectionError as exc:
        hint = "check the network and --region" if is_default else "is it running?"
        raise DeployError(
            f"cannot reach the Lambda endpoint {endpoint} ({hint})"
        ) from exc
    except BotoCoreError as exc:
        raise DeployError(f"{name}: {' '.join(str(exc).split())}") from exc


def _client(region: str | None, endpoint_url: str | None) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    try:
        session = boto3.session.Session(region_name=region)
        return session.client(
            "lambda",
            endpoint_url=endpoint_url,
            config=Config(connect_timeout=10, read_timeout=120),
        )
    except NoRegionError as exc:
        raise DeployError(_NO_REGION) from exc
    except BotoCoreError as exc:
        raise DeployError(" ".join(str(exc).split())) from exc
    except ValueError as exc:
        # botocore's answer to an endpoint it cannot parse.
        raise DeployError(f"{' '.join(str(exc).split())}", status=2) from exc
