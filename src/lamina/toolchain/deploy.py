"""``lamina deploy``: create or update a template's functions on AWS Lambda.

For each function: upload its built zip (create the function, or update its code
when Lambda's ``CodeSha256`` differs), bring its configuration in line with the
template, wait for Lambda to finish each update, publish a version, point the alias
at it and give the alias the template's function URL. ``--dry-run`` makes read-only
calls and says what would change.

Credentials, region, retries and endpoint come from the standard AWS
configuration (``--region`` and ``--endpoint-url`` override it); the calls are
``lamina.toolchain.deployer``'s.

"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lamina.emulator.function import EventInvokeConfig, FunctionConfig
from lamina.emulator.intrinsics import SERVERLESS_FUNCTION
from lamina.toolchain.build import BuildError, build_function, built_dir, package_files
from lamina.toolchain.deployer import (
    DIRECT_UPLOAD_LIMIT,
    Code,
    Deployer,
    DeployError,
    Say,
    Wanted,
    _client,
    lambda_terms,
    wanted_configuration,
)


def _mb(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


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


def _package(config: FunctionConfig, template: Path, say: Say) -> Path:
    """The function's zip from ``lamina build``, built again when its code is newer."""
    out_dir = built_dir(template.parent)
    path = out_dir / f"{config.name}.zip"
    changed = [p.stat().st_mtime for _, p in package_files(config.code_dir)]
    newest = max([template.stat().st_mtime, *changed])
    if path.is_file() and path.stat().st_mtime >= newest:
        return path

    why = "is older than its code" if path.is_file() else "is not built yet"
    say(f"  {config.name}: the zip {why}; building it")
    try:
        return build_function(config, out_dir, say=say).path
    except BuildError as exc:
        raise DeployError(f"{exc}; fix it, then lamina build", status=2) from exc


def wanted(
    config: FunctionConfig, document: Any, template: Path, role: str | None, say: Say
) -> Wanted:
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

    props = _properties(document, config)
    path = _package(config, template, say)
    size = path.stat().st_size
    if size > DIRECT_UPLOAD_LIMIT:
        raise DeployError(
            f"{name}: {path} is {_mb(size)} ({size} bytes): a direct upload to Lambda "
            f"takes at most {_mb(DIRECT_UPLOAD_LIMIT)} ({DIRECT_UPLOAD_LIMIT} bytes); "
            "move dependencies into a layer"
        )
    description = props.get("Description")
    return Wanted(
        name=name,
        configuration=wanted_configuration(
            config, description if isinstance(description, str) else ""
        ),
        architectures=[config.architecture],
        code=Code(path, path.read_bytes()),
        role=_role(name, props, role),
        url=_url(name, props, config),
        reserved_concurrency=config.reserved_concurrency,
    )


def _choose(
    functions: dict[str, FunctionConfig], name: str | None, template: Path
) -> list[FunctionConfig]:
    if not name:
        return list(functions.values())
    chosen = [c for n, c in functions.items() if name in (n, c.logical_id)]
    if not chosen:
        names = ", ".join(sorted(functions))
        raise DeployError(f"no function {name!r} in {template} ({names})", status=2)
    return chosen


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

    template = find_template(args.template)
    functions = _choose(load_template(template).functions, args.function, template)
    document = read_document(template)
    wants = [wanted(c, document, template, args.role, _say) for c in functions]

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
