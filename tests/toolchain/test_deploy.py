"""``lamina deploy`` against moto's Lambda and IAM on loopback, through the real CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lamina.toolchain.deployer import (
    code_sha256,
    configuration_changes,
    describe_change,
    error_of,
)
from tests.conftest import LAMINA, free_port, lamina
from tests.toolchain.conftest import MotoServer

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def aws(server: MotoServer, service: str, **credentials: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=credentials.get("key", "testing"),
        aws_secret_access_key=credentials.get("secret", "testing"),
    )


@pytest.fixture(scope="module")
def role_arn(moto_lambda: MotoServer) -> str:
    role = aws(moto_lambda, "iam").create_role(
        RoleName="lamina-deploy-tests", AssumeRolePolicyDocument=json.dumps(TRUST)
    )
    return str(role["Role"]["Arn"])


def environment(endpoint: str, **extra: str) -> dict[str, str]:
    """This machine's environment without its AWS settings; moto's instead (an
    empty value in ``extra`` leaves that variable out).

    Every way to real AWS is closed: the endpoint is given twice (AWS_ENDPOINT_URL
    as well), no configuration file is read and the instance metadata is off.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
    )
    for name, value in extra.items():
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    return env


class Project:
    """A template with one python3.12 function, its code, and its built zip."""

    def __init__(self, root: Path, name: str, **props: Any) -> None:
        self.root = root
        self.name = name
        self.props: dict[str, Any] = {
            "Runtime": "python3.12",
            "Handler": "app.handler",
            "CodeUri": "code",
            **props,
        }
        self.code = "def handler(event, context):\n    return 'one'\n"
        self.write()

    @property
    def template(self) -> Path:
        return self.root / "template.yaml"

    @property
    def zip_path(self) -> Path:
        return self.root / ".lamina" / "build" / f"{self.name}.zip"

    def write(self) -> None:
        """Template, code, then zip, so the zip is the newest of them (as built)."""
        document = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Transform": "AWS::Serverless-2016-10-31",
            "Resources": {
                self.name: {
                    "Type": "AWS::Serverless::Function",
                    "Properties": self.props,
                }
            },
        }
        self.template.write_text(json.dumps(document, indent=2))
        (self.root / "code").mkdir(exist_ok=True)
        (self.root / "code" / "app.py").write_text(self.code)
        self.zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(self.zip_path, "w") as zipped:
            zipped.writestr(zipfile.ZipInfo("app.py", (1980, 1, 1, 0, 0, 0)), self.code)

    @property
    def sha256(self) -> str:
        return base64.b64encode(
            hashlib.sha256(self.zip_path.read_bytes()).digest()
        ).decode()


def deploy(
    project: Project, endpoint: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            LAMINA,
            "deploy",
            "-t",
            str(project.template),
            "--endpoint-url",
            endpoint,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(endpoint, **env),
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    errors = [
        line for line in result.stderr.splitlines() if line.startswith("lamina: ")
    ]
    assert errors, result.stderr
    return errors[-1]


# -- against moto -------------------------------------------------------------------


def test_first_deploy_creates_function_version_alias_and_url(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(
        tmp_path,
        "Created",
        Role=role_arn,
        Description="made by a test",
        MemorySize=256,
        ReservedConcurrentExecutions=5,
        Environment={"Variables": {"GREETING": "hello"}},
        FunctionUrlConfig={"AuthType": "NONE"},
    )

    result = deploy(project, moto_lambda.url)

    assert result.returncode == 0, result.stderr
    arn = "arn:aws:lambda:us-east-1:123456789012:function:Created"
    assert f"Created  function  {arn}\n" in result.stdout
    assert f"Created  alias     {arn}:live  (version 1)" in result.stdout
    assert "lambda-url.us-east-1.on.aws" in result.stdout
    assert "Created: created" in result.stderr
    assert "waiting for Lambda" in result.stderr

    client = aws(moto_lambda, "lambda")
    held = client.get_function(FunctionName="Created")["Configuration"]
    assert held["CodeSha256"] == project.sha256
    assert held["MemorySize"] == 256
    assert held["Description"] == "made by a test"
    assert held["Environment"]["Variables"] == {"GREETING": "hello"}
    assert held["Role"] == role_arn
    concurrency = client.get_function_concurrency(FunctionName="Created")
    assert concurrency["ReservedConcurrentExecutions"] == 5
    assert (
        client.get_alias(FunctionName="Created", Name="live")["FunctionVersion"] == "1"
    )
    url = client.get_function_url_config(FunctionName="Created", Qualifier="live")
    assert url["AuthType"] == "NONE"
    assert url["FunctionUrl"] in result.stdout
    policy = json.loads(
        client.get_policy(FunctionName="Created", Qualifier="live")["Policy"]
    )
    actions = {statement["Action"] for statement in policy["Statement"]}
    assert actions == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}


def test_changed_code_is_uploaded_and_published_as_a_new_version(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, "Recoded")
    assert deploy(project, moto_lambda.url, "--role", role_arn).returncode == 0
    first = project.sha256

    project.code = "def handler(event, context):\n    return 'two'\n"
    project.write()
    result = deploy(project, moto_lambda.url, "--alias", "prod", "--role", role_arn)

    assert result.returncode == 0, result.stderr
    assert "Recoded: code updated" in result.stderr
    assert "configuration unchanged" in result.stderr
    assert "alias prod created" in result.stderr
    assert "function:Recoded:prod  (version 2)" in result.stdout
    client = aws(moto_lambda, "lambda")
    held = client.get_function(FunctionName="Recoded")["Configuration"]
    assert held["CodeSha256"] == project.sha256 != first
    assert (
        client.get_alias(FunctionName="Recoded", Name="prod")["FunctionVersion"] == "2"
    )

    # The live alias of the first deploy moves when it is named again.
    result = deploy(project, moto_lambda.url)
    assert "alias live moved from version 1" in result.stderr
    assert (
        client.get_alias(FunctionName="Recoded", Name="live")["FunctionVersion"] == "2"
    )


def test_changed_memory_updates_the_configuration_only(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, "Resized", Role=role_arn)
    assert deploy(project, moto_lambda.url).returncode == 0
    client = aws(moto_lambda, "lambda")
    modified = client.get_function(FunctionName="Resized")["Configuration"][
        "CodeSha256"
    ]

    project.props["MemorySize"] = 512
    project.write()
    result = deploy(project, moto_lambda.url)

    assert result.returncode == 0, result.stderr
    assert "Resized: code unchanged" in result.stderr
    assert "code updated" not in result.stderr
    assert "configuration updated: MemorySize 128 → 512" in result.stderr
    assert "function:Resized:live  (version 2)" in result.stdout
    held = client.get_function(FunctionName="Resized")["Configuration"]
    assert held["MemorySize"] == 512
    assert held["CodeSha256"] == modified
    assert (
        client.get_alias(FunctionName="Resized", Name="live")["FunctionVersion"] == "2"
    )


def test_unchanged_function_uploads_nothing(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, "Steady", Role=role_arn)
    assert deploy(project, moto_lambda.url).returncode == 0

    result = deploy(project, moto_lambda.url)

    assert result.returncode == 0, result.stderr
    assert "Steady: code unchanged" in result.stderr
    assert "configuration unchanged" in result.stderr
    assert "nothing new to publish" in result.stderr
    assert "function:Steady:live  (version 1)" in result.stdout
    versions = aws(moto_lambda, "lambda").list_versions_by_function(
        FunctionName="Steady"
    )
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]


def test_dry_run_reports_differences_and_changes_nothing(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, "Previewed", Role=role_arn)
    result = deploy(project, moto_lambda.url, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (
        "Previewed: would be created: python3.12, 128 MB, 3 s, x86_64" in result.stdout
    )
    client = aws(moto_lambda, "lambda")
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.get_function(FunctionName="Previewed")

    assert deploy(project, moto_lambda.url).returncode == 0
    before = client.get_function(FunctionName="Previewed")["Configuration"]
    project.code = "def handler(event, context):\n    return 'changed'\n"
    project.props.update(Timeout=30, Environment={"Variables": {"MODE": "x"}})
    project.write()
    result = deploy(project, moto_lambda.url, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "Previewed: would be updated: code (CodeSha256" in result.stdout
    assert "Timeout 3 → 30" in result.stdout
    assert "Environment +MODE" in result.stdout
    assert "alias live would move from version 1 to a new version" in result.stdout
    assert "nothing was changed" in result.stderr
    after = client.get_function(FunctionName="Previewed")["Configuration"]
    assert after == before
    versions = client.list_versions_by_function(FunctionName="Previewed")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]


def test_a_new_function_without_a_role_is_refused(
    moto_lambda: MotoServer, tmp_path: Path
) -> None:
    project = Project(tmp_path, "Roleless")

    line = assert_one_line_error(deploy(project, moto_lambda.url), 2)

    assert "Roleless: no execution role" in line
    assert "pass --role" in line
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        aws(moto_lambda, "lambda").get_function(FunctionName="Roleless")


def test_an_invalid_parameter_is_shown_in_aws_words(
    moto_lambda: MotoServer, tmp_path: Path
) -> None:
    project = Project(
        tmp_path, "Misroled", Role="arn:aws:iam::123456789012:role/no-such-role"
    )

    line = assert_one_line_error(deploy(project, moto_lambda.url), 1)

    assert line == (
        "lamina: Misroled: InvalidParameterValueException on lambda:CreateFunction: "
        "The role defined for the function cannot be assumed by Lambda."
    )


def test_missing_permissions_name_the_refused_action(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    iam = aws(moto_lambda, "iam")
    iam.create_user(UserName="powerless")
    key = iam.create_access_key(UserName="powerless")["AccessKey"]
    project = Project(tmp_path, "Guarded", Role=role_arn)

    moto_lambda.enforce_iam(True)
    try:
        refused = deploy(
            project,
            moto_lambda.url,
            AWS_ACCESS_KEY_ID=key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
        )
        unknown = deploy(project, moto_lambda.url, AWS_ACCESS_KEY_ID="AKIANOBODY")
    finally:
        moto_lambda.enforce_iam(False)

    line = assert_one_line_error(refused, 1)
    assert line.startswith(
        "lamina: Guarded: AccessDenied: lambda:GetFunction was refused"
    )
    assert "user/powerless is not authorized to perform: lambda:GetFunction" in line
    line = assert_one_line_error(unknown, 1)
    assert (
        "InvalidClientTokenId: AWS refused the credentials for lambda:GetFunction"
        in line
    )


def test_unreachable_endpoint_is_named(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    project = Project(tmp_path, "Stranded", Role="arn:aws:iam::123456789012:role/any")

    line = assert_one_line_error(deploy(project, closed), 1)

    assert line == f"lamina: cannot reach the Lambda endpoint {closed} (is it running?)"


def test_missing_credentials_say_how_to_configure_them(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    project = Project(tmp_path, "Anonymous", Role="arn:aws:iam::123456789012:role/any")

    result = deploy(project, closed, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")

    line = assert_one_line_error(result, 1)
    assert "no AWS credentials" in line
    assert "AWS_PROFILE" in line
    assert "aws configure" in line


def test_a_zip_over_the_direct_upload_limit_is_refused_before_aws(
    tmp_path: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    project = Project(tmp_path, "Heavy", Role="arn:aws:iam::123456789012:role/any")
    with zipfile.ZipFile(project.zip_path, "a", zipfile.ZIP_STORED) as zipped:
        zipped.writestr("blob", os.urandom(51 * 1024 * 1024))

    line = assert_one_line_error(deploy(project, closed), 1)

    assert "Heavy: " in line
    assert "a direct upload to Lambda takes at most 50.0 MB (52428800 bytes)" in line
    assert "51.0 MB" in line


def test_a_function_with_layers_is_refused(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "deps").mkdir()
    project = Project(tmp_path, "Layered", Layers=["Deps"])
    document = json.loads(project.template.read_text())
    document["Resources"]["Deps"] = {
        "Type": "AWS::Serverless::LayerVersion",
        "Properties": {"ContentUri": "deps"},
    }
    project.template.write_text(json.dumps(document))

    line = assert_one_line_error(deploy(project, closed), 2)

    assert "layers are not deployed yet: Layered uses Deps" in line


# -- without a server ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "deployed", "changes"),
    [
        pytest.param(
            {"MemorySize": 256, "Timeout": 3},
            {"MemorySize": 128, "Timeout": 3},
            {"MemorySize": 256},
            id="one-field",
        ),
        pytest.param(
            {"Environment": {"Variables": {}}, "Description": ""},
            {},
            {},
            id="lambda-leaves-defaults-out",
        ),
        pytest.param(
            {"EphemeralStorage": {"Size": 512}},
            {"EphemeralStorage": {"Size": 512, "Other": 1}},
            {},
            id="fields-lambda-adds-are-ignored",
        ),
        pytest.param(
            {"Environment": {"Variables": {"A": "1"}}},
            {"Environment": {"Variables": {"A": "2"}}},
            {"Environment": {"Variables": {"A": "1"}}},
            id="a-variable",
        ),
    ],
)
def test_configuration_changes(
    wanted: dict[str, Any], deployed: dict[str, Any], changes: dict[str, Any]
) -> None:
    assert configuration_changes(wanted, deployed) == changes


def test_changed_variables_are_described_by_name_only() -> None:
    old = {"Variables": {"KEEP": "1", "GONE": "secret", "EDIT": "a"}}
    new = {"Variables": {"KEEP": "1", "NEW": "x", "EDIT": "b"}}

    assert describe_change("Environment", old, new) == "Environment +NEW -GONE ~EDIT"
    assert describe_change("EphemeralStorage", {"Size": 512}, {"Size": 1024}) == (
        "EphemeralStorage 512 → 1024"
    )


def test_code_sha256_is_lambdas() -> None:
    assert code_sha256(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_an_xml_error_answer_is_read() -> None:
    body = (
        '<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code>'
        "<Message>not authorized</Message></Error></Errors></ErrorResponse>"
    )
    exc = ClientError({"Error": {"Code": "403", "Message": body}}, "GetFunction")

    assert error_of(exc) == ("AccessDenied", "not authorized")


def deploy_project(
    project: Path, server: MotoServer, role: str
) -> subprocess.CompletedProcess[str]:
    """``lamina deploy`` run in a project folder, to the moto server."""
    env = environment(server.url)
    return lamina(
        "deploy", "--endpoint-url", server.url, "--role", role, cwd=project, env=env
    )


def test_a_new_project_builds_inspects_runs_from_its_zip_and_deploys(
    tmp_path: Path, moto_lambda: MotoServer, role_arn: str
) -> None:
    env = environment(moto_lambda.url)
    made = lamina("new", "greeter", "--arch", "arm64", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "greeter"
    package = project / ".lamina" / "build" / "greeter.zip"

    built = lamina("build", cwd=project, env=env, timeout=300)
    inspected = lamina(
        "inspect",
        str(package),
        "--target",
        "python3.12",
        "--arch",
        "arm64",
        cwd=project,
    )
    ran = lamina("invoke", "greeter", "--built", "-e", "events/event.json", cwd=project)
    deployed = deploy_project(project, moto_lambda, role_arn)

    assert built.returncode == 0, built.stderr
    assert inspected.returncode == 0, inspected.stdout
    assert ran.returncode == 0, ran.stderr
    assert json.loads(json.loads(ran.stdout)["body"])["message"] == "hello, lamina"
    assert deployed.returncode == 0, deployed.stderr
    held = aws(moto_lambda, "lambda").get_function(FunctionName="greeter")
    configuration = held["Configuration"]
    assert configuration["Architectures"] == ["arm64"]
    assert configuration["Runtime"] == "python3.12"
    # What was deployed is the zip that ran here, byte for byte.
    assert (
        configuration["CodeSha256"]
        == base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    )
    assert configuration["FunctionArn"] in deployed.stdout


def test_a_zip_built_for_another_architecture_is_refused_before_aws(
    tmp_path: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    project = Project(
        tmp_path,
        "Mismatched",
        Role="arn:aws:iam::123456789012:role/any",
        Architectures=["arm64"],
    )
    # What lamina build --arch x86_64 leaves: an x86_64 library in an arm64 function.
    with zipfile.ZipFile(project.zip_path, "a") as zipped:
        zipped.write("/bin/true", "lib/x.so")

    line = assert_one_line_error(deploy(project, closed), 2)

    assert "Mismatched: " in line
    assert "cannot run on python3.12 arm64" in line
    assert "lib/x.so: x86_64 binary" in line
    assert "run lamina build again (without --arch)" in line


def test_a_python_bootstrap_on_provided_warns_that_it_needs_a_layer(
    tmp_path: Path, moto_lambda: MotoServer, role_arn: str
) -> None:
    env = environment(moto_lambda.url)
    made = lamina("new", "prov", "--runtime", "provided.al2023", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "prov"

    deployed = deploy_project(project, moto_lambda, role_arn)

    assert deployed.returncode == 0, deployed.stderr
    assert (
        "prov: its bootstrap runs Python, which provided.al2023 lacks: it will fail "
        "to start on Lambda until a layer brings /opt/python/bin/python3 (lamina "
        "deploy does not publish layers yet)"
    ) in deployed.stderr
    held = aws(moto_lambda, "lambda").get_function(FunctionName="prov")
    assert held["Configuration"]["Runtime"] == "provided.al2023"


def public_statement_ids(client: Any, name: str) -> set[str]:
    try:
        answer = client.get_policy(FunctionName=name, Qualifier="live")
    except ClientError as exc:
        assert error_of(exc)[0] == "ResourceNotFoundException"
        return set()
    statements = json.loads(answer["Policy"])["Statement"]
    return {s["Sid"] for s in statements} & {
        "FunctionURLAllowPublicAccess",
        "FunctionURLAllowInvokeAction",
    }


def test_a_removed_function_url_is_deleted_with_its_public_statements(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(
        tmp_path, "Unlisted", Role=role_arn, FunctionUrlConfig={"AuthType": "NONE"}
    )
    assert deploy(project, moto_lambda.url).returncode == 0
    client = aws(moto_lambda, "lambda")
    assert len(public_statement_ids(client, "Unlisted")) == 2

    del project.props["FunctionUrlConfig"]
    project.write()
    previewed = deploy(project, moto_lambda.url, "--dry-run")
    result = deploy(project, moto_lambda.url)

    assert previewed.returncode == 0, previewed.stderr
    assert "Unlisted: function URL would be deleted" in previewed.stdout
    assert "Unlisted: up to date" not in previewed.stdout
    assert result.returncode == 0, result.stderr
    assert "Unlisted: function URL" in result.stderr
    assert "deleted" in result.stderr
    assert "FunctionURLAllowPublicAccess removed" in result.stderr
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.get_function_url_config(FunctionName="Unlisted", Qualifier="live")
    assert public_statement_ids(client, "Unlisted") == set()


def test_a_function_url_made_private_loses_its_public_statements(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(
        tmp_path, "Privatised", Role=role_arn, FunctionUrlConfig={"AuthType": "NONE"}
    )
    assert deploy(project, moto_lambda.url).returncode == 0
    client = aws(moto_lambda, "lambda")

    project.props["FunctionUrlConfig"] = {"AuthType": "AWS_IAM"}
    project.write()
    previewed = deploy(project, moto_lambda.url, "--dry-run")
    result = deploy(project, moto_lambda.url)

    assert "function URL would change: AuthType NONE → AWS_IAM" in previewed.stdout
    assert "FunctionURLAllowInvokeAction would be removed" in previewed.stdout
    assert result.returncode == 0, result.stderr
    url = client.get_function_url_config(FunctionName="Privatised", Qualifier="live")
    assert url["AuthType"] == "AWS_IAM"
    assert public_statement_ids(client, "Privatised") == set()


def test_an_endpoint_that_is_not_a_url_is_named(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    project = Project(tmp_path, "Misdirected")

    result = deploy(
        project, "notaurl", "--role", "arn:aws:iam::1:role/R", AWS_ENDPOINT_URL=closed
    )

    line = assert_one_line_error(result, 2)
    assert line == (
        "lamina: --endpoint-url notaurl is not a URL: give http(s)://host:port"
    )


def test_dry_run_with_a_stale_zip_writes_nothing_locally(
    moto_lambda: MotoServer, role_arn: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, "Untouched", Role=role_arn)
    built = project.zip_path.stat()
    # A template-only change makes the zip stale.
    later = built.st_mtime + 10
    os.utime(project.template, (later, later))
    data = project.zip_path.read_bytes()
    before = sorted(p.name for p in (tmp_path / ".lamina").rglob("*"))

    result = deploy(project, moto_lambda.url, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert (
        "Untouched: would build the zip first: it is older than its code or template"
        in result.stderr
    )
    assert "Untouched: would be created" in result.stdout
    assert project.zip_path.read_bytes() == data
    assert project.zip_path.stat().st_mtime_ns == built.st_mtime_ns
    assert sorted(p.name for p in (tmp_path / ".lamina").rglob("*")) == before
