import textwrap
from pathlib import Path

import pytest

from lamina import events
from lamina.emulator import template as template_module
from lamina.emulator.constraints import RESERVED_VARIABLES
from lamina.emulator.errors import TemplateError
from lamina.emulator.function import Destination, FunctionConfig, Layer, LogSettings
from lamina.emulator.template import Template, find_template, load_template

HEADER = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
"""


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")


def write(folder: Path, text: str, *dirs: str, name: str = "template.yaml") -> Path:
    """Write a template (and the code folders it names) into ``folder``."""
    for sub in dirs:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str, *dirs: str) -> Template:
    return load_template(write(folder, text, *dirs))


def only(template: Template) -> FunctionConfig:
    (config,) = template.functions.values()
    return config


def one_function(props: str = "", resource: str = "", name: str = "Fn") -> str:
    """A template with one python function; ``props`` go under Properties."""
    body = textwrap.indent(textwrap.dedent(props), " " * 6)
    extra = textwrap.indent(textwrap.dedent(resource), " " * 4)
    return (
        HEADER
        + "Resources:\n"
        + f"  {name}:\n"
        + "    Type: AWS::Serverless::Function\n"
        + extra
        + "    Properties:\n"
        + "      Runtime: python3.12\n"
        + "      Handler: app.handler\n"
        + "      CodeUri: src/\n"
        + body
    )


def refused(folder: Path, text: str, *dirs: str) -> TemplateError:
    path = write(folder, text, "src", *dirs)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    return caught.value


# -- find_template -------------------------------------------------------------------


def test_find_template_takes_an_explicit_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x: 1\n", name="other.yaml")

    assert find_template(str(path)) == path


def test_find_template_refuses_a_missing_explicit_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(TemplateError) as caught:
        find_template(str(missing))

    assert str(caught.value) == f"{missing}: no such template file"
    assert caught.value.path == str(missing)


@pytest.mark.parametrize(
    ("present", "found"),
    [
        pytest.param(["template.yaml"], "template.yaml", id="yaml"),
        pytest.param(["template.yml"], "template.yml", id="yml"),
        pytest.param(["template.yml", "template.yaml"], "template.yaml", id="both"),
    ],
)
def test_find_template_looks_in_the_folder(
    tmp_path: Path, present: list[str], found: str
) -> None:
    for name in present:
        write(tmp_path, "x: 1\n", name=name)

    assert find_template(None, tmp_path) == tmp_path / found


def test_find_template_says_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").mkdir()

    with pytest.raises(TemplateError) as caught:
        find_template(None, tmp_path)

    message = str(caught.value)
    assert message.startswith(f"{tmp_path}: ")
    assert "template.yaml" in message
    assert "--template" in message


# -- a function and its defaults -------------------------------------------------------


def test_a_minimal_function_gets_lambda_defaults(tmp_path: Path) -> None:
    template = load(tmp_path, one_function(), "src")

    assert template.path == tmp_path / "template.yaml"
    assert template.warnings == []
    assert template.functions == {
        "Fn": FunctionConfig(
            name="Fn",
            runtime="python3.12",
            code_dir=(tmp_path / "src").resolve(),
            handler="app.handler",
            memory_mb=128,
            timeout_s=3.0,
            environment={},
            architecture="x86_64",
            layers=(),
            reserved_concurrency=None,
            ephemeral_storage_mb=512,
            sample_events=(),
            logical_id="Fn",
        )
    }


def test_function_name_property_names_the_function(tmp_path: Path) -> None:
    template = load(tmp_path, one_function("FunctionName: orders-api\n"), "src")

    assert list(template.functions) == ["orders-api"]
    assert template.functions["orders-api"].name == "orders-api"
    assert template.functions["orders-api"].logical_id == "Fn"


def test_every_setting_is_read(tmp_path: Path) -> None:
    config = only(
        load(
            tmp_path,
            one_function(
                """\
                MemorySize: 1024
                Timeout: 30
                Architectures: [arm64]
                ReservedConcurrentExecutions: 5
                EphemeralStorage:
                  Size: 2048
                Environment:
                  Variables:
                    STAGE: dev
                    RETRIES: 3
                    VERBOSE: true
                    QUIET: false
                """,
                resource="""\
                Metadata:
                  Lamina:
                    SampleEvents: [s3, sqs]
                """,
            ),
            "src",
        )
    )

    assert config.memory_mb == 1024
    assert config.timeout_s == 30.0
    assert config.architecture == "arm64"
    assert config.reserved_concurrency == 5
    assert config.ephemeral_storage_mb == 2048
    assert config.environment == {
        "STAGE": "dev",
        "RETRIES": "3",
        "VERBOSE": "true",
        "QUIET": "false",
    }
    assert config.sample_events == ("s3", "sqs")


def test_a_function_without_code_uri_runs_from_the_template_folder(
    tmp_path: Path,
) -> None:
    text = one_function().replace("      CodeUri: src/\n", "")

    assert only(load(tmp_path, text)).code_dir == tmp_path


def test_numbers_written_as_strings_are_read(tmp_path: Path) -> None:
    config = only(
        load(tmp_path, one_function("MemorySize: '256'\nTimeout: '9'\n"), "src")
    )

    assert (config.memory_mb, config.timeout_s) == (256, 9.0)


@pytest.mark.parametrize(
    ("props", "mode"),
    [
        pytest.param("", None, id="no-url"),
        pytest.param("FunctionUrlConfig: {AuthType: NONE}\n", "BUFFERED", id="default"),
        pytest.param(
            "FunctionUrlConfig: {AuthType: NONE, InvokeMode: RESPONSE_STREAM}\n",
            "RESPONSE_STREAM",
            id="streaming",
        ),
    ],
)
def test_a_function_url_and_its_invoke_mode(
    tmp_path: Path, props: str, mode: str | None
) -> None:
    template = load(tmp_path, one_function(props), "src")

    assert only(template).url_invoke_mode == mode
    assert template.warnings == []


# -- Globals ---------------------------------------------------------------------------


GLOBALS = """\
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    MemorySize: 256
    Handler: app.handler
    Environment:
      Variables:
        STAGE: global
        TABLE: global-table
"""


def test_globals_fill_in_and_environment_variables_merge(tmp_path: Path) -> None:
    text = (
        HEADER
        + GLOBALS
        + """\
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Timeout: 20
      Environment:
        Variables:
          TABLE: own-table
          EXTRA: "1"
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
"""
    )

    template = load(tmp_path, text, "src")

    fn, plain = template.functions["Fn"], template.functions["Plain"]
    assert (fn.runtime, fn.handler, fn.memory_mb) == ("python3.11", "app.handler", 256)
    assert fn.timeout_s == 20.0
    assert fn.environment == {"STAGE": "global", "TABLE": "own-table", "EXTRA": "1"}
    assert plain.timeout_s == 10.0
    assert plain.environment == {"STAGE": "global", "TABLE": "global-table"}


def test_globals_do_not_apply_to_a_lambda_function(tmp_path: Path) -> None:
    text = (
        HEADER
        + GLOBALS
        + """\
Resources:
  Raw:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      Code: ./src
"""
    )

    config = only(load(tmp_path, text, "src"))

    assert config.runtime == "python3.12"
    assert (config.memory_mb, config.timeout_s) == (128, 3.0)
    assert config.environment == {}


def test_a_lambda_function_reads_code_as_a_folder(tmp_path: Path) -> None:
    text = (
        HEADER
        + """\
Resources:
  Raw:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      Code: ./build/raw
      MemorySize: 512
"""
    )

    config = only(load(tmp_path, text, "build/raw"))

    assert config.code_dir == (tmp_path / "build" / "raw").resolve()
    assert config.runtime == "provided.al2023"
    assert config.memory_mb == 512
    assert not config.is_python


def test_global_layers_are_prepended_to_the_functions_own(tmp_path: Path) -> None:
    text = (
        HEADER
        + """\
Globals:
  Function:
    Layers:
      - !Ref Shared
Resources:
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: shared/
  Own:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: own/
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
      Layers:
        - !Ref Own
"""
    )

    config = only(load(tmp_path, text, "src", "shared", "own"))

    assert [layer.name for layer in config.layers] == ["Shared", "Own"]


# -- intrinsic functions -------------------------------------------------------------


PARAMETERS = """\
Parameters:
  Stage:
    Type: String
    Default: beta
  Memory:
    Type: Number
    Default: 512
  NoDefault:
    Type: String
"""


def with_parameters(props: str) -> str:
    return one_function(props).replace(HEADER, HEADER + PARAMETERS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("!Ref Stage", "beta", id="ref-parameter"),
        pytest.param("!Ref AWS::Region", "eu-west-1", id="ref-region"),
        pytest.param("!Ref AWS::AccountId", "123456789012", id="ref-account"),
        pytest.param("!Ref AWS::Partition", "aws", id="ref-partition"),
        pytest.param("!Ref Fn", "Fn", id="ref-resource"),
        pytest.param("{Ref: Stage}", "beta", id="ref-long-form"),
        pytest.param('!Sub "${Stage}-${AWS::Region}"', "beta-eu-west-1", id="sub"),
        pytest.param(
            '!Sub ["${Stage}/${Item}", {Item: !Ref AWS::AccountId}]',
            "beta/123456789012",
            id="sub-with-map",
        ),
        pytest.param("{'Fn::Sub': 'api-${Stage}'}", "api-beta", id="sub-long-form"),
        pytest.param("!Sub plain", "plain", id="sub-without-variables"),
        pytest.param("!Sub ${Memory}MB", "512MB", id="sub-number"),
    ],
)
def test_intrinsics_resolve_locally(tmp_path: Path, value: str, expected: str) -> None:
    text = with_parameters(f"Environment:\n  Variables:\n    VALUE: {value}\n")

    template = load(tmp_path, text, "src")

    assert only(template).environment == {"VALUE": expected}
    assert template.warnings == []


def test_a_ref_to_a_number_parameter_sets_memory(tmp_path: Path) -> None:
    config = only(load(tmp_path, with_parameters("MemorySize: !Ref Memory\n"), "src"))

    assert config.memory_mb == 512


@pytest.mark.parametrize(
    ("value", "warning"),
    [
        pytest.param(
            "!GetAtt Table.Arn",
            "Fn: Fn::GetAtt is not evaluated locally; left empty",
            id="getatt",
        ),
        pytest.param(
            "!ImportValue shared-table",
            "Fn: Fn::ImportValue is not evaluated locally; left empty",
            id="import-value",
        ),
        pytest.param(
            "!Ref NoDefault",
            "Fn: !Ref NoDefault has no value locally; left empty",
            id="ref-without-default",
        ),
        pytest.param(
            "!Ref Nowhere",
            "Fn: !Ref Nowhere has no value locally; left empty",
            id="ref-unknown",
        ),
        pytest.param(
            "!Sub x-${Nowhere}",
            "Fn: !Ref Nowhere has no value locally; left empty",
            id="sub-unknown",
        ),
    ],
)
def test_what_cannot_be_resolved_is_left_empty_with_a_warning(
    tmp_path: Path, value: str, warning: str
) -> None:
    text = with_parameters(f"Environment:\n  Variables:\n    VALUE: {value}\n")

    template = load(tmp_path, text, "src")

    assert only(template).environment["VALUE"] in ("", "x-")
    assert template.warnings == [warning]


def test_sub_writes_an_escaped_variable_literally(tmp_path: Path) -> None:
    text = with_parameters(
        'Environment:\n  Variables:\n    VALUE: !Sub "${!Stage}=${Stage}"\n'
    )

    assert only(load(tmp_path, text, "src")).environment == {"VALUE": "${Stage}=beta"}


# -- warnings --------------------------------------------------------------------------


def test_an_unsupported_property_is_named_in_a_warning(tmp_path: Path) -> None:
    template = load(
        tmp_path,
        one_function(
            """\
            VpcConfig:
              SubnetIds: [subnet-1]
            Events:
              Api:
                Type: Api
            """
        ),
        "src",
    )

    assert template.warnings == [
        "property Events is not supported locally; ignored (Fn)",
        "property VpcConfig is not supported locally; ignored (Fn)",
    ]
    assert "Fn" in template.functions


def test_properties_without_local_effect_pass_quietly(tmp_path: Path) -> None:
    template = load(
        tmp_path,
        one_function(
            """\
            Description: does things
            Role: arn:aws:iam::123456789012:role/r
            Policies: [AWSLambdaBasicExecutionRole]
            Tracing: Active
            Tags: {team: core}
            AutoPublishAlias: live
            """
        ),
        "src",
    )

    assert template.warnings == []


def test_each_warning_is_given_once(tmp_path: Path) -> None:
    text = (
        HEADER
        + """\
Globals:
  Function:
    VpcConfig:
      SubnetIds: [subnet-1]
Resources:
  One:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
      Environment:
        Variables:
          TABLE_ARN: !GetAtt Table.Arn
          STREAM_ARN: !GetAtt Table.StreamArn
  Two:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
"""
    )

    template = load(tmp_path, text, "src")

    assert template.warnings == [
        "One: Fn::GetAtt is not evaluated locally; left empty",
        "property VpcConfig is not supported locally; ignored (One, Two)",
    ]


@pytest.mark.parametrize(
    ("runtime", "shown"),
    [
        pytest.param("nodejs20.x", "nodejs20.x", id="nodejs"),
        pytest.param("python2.7", "python2.7", id="python2"),
        pytest.param("python3", "python3", id="python3-unversioned"),
        pytest.param("java21", "java21", id="java"),
        pytest.param("''", "(none)", id="empty"),
    ],
)
def test_an_unsupported_runtime_is_skipped_with_a_warning(
    tmp_path: Path, runtime: str, shown: str
) -> None:
    text = (
        one_function()
        + f"""\
  Other:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: {runtime}
      Handler: index.handler
      CodeUri: src/
"""
    )

    template = load(tmp_path, text, "src")

    assert list(template.functions) == ["Fn"]
    assert template.warnings == [
        f"Other: runtime {shown} is not supported (python3.x and provided.* are); "
        "skipped"
    ]


def test_an_image_function_is_skipped_with_a_warning(tmp_path: Path) -> None:
    text = (
        one_function()
        + """\
  Image:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageUri: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:latest
"""
    )

    template = load(tmp_path, text, "src")

    assert list(template.functions) == ["Fn"]
    assert (
        "Image: container image functions are not supported; skipped"
        in template.warnings
    )


@pytest.mark.parametrize(
    "runtime",
    [
        "python3.8",
        "python3.9",
        "python3.13",
        "python3.14",
        "provided",
        "provided.al2",
        "provided.al2023",
    ],
)
def test_supported_runtimes(tmp_path: Path, runtime: str) -> None:
    text = one_function().replace("python3.12", runtime)

    assert only(load(tmp_path, text, "src")).runtime == runtime


@pytest.mark.parametrize("runtime", ["python3.99", "python3.15", "python3.7"])
def test_a_python_version_lambda_does_not_have_is_refused(
    tmp_path: Path, runtime: str
) -> None:
    error = refused(tmp_path, one_function().replace("python3.12", runtime))

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: Fn.Runtime: {runtime} is not a Lambda "
        "runtime; the Python ones are python3.8 to python3.14"
    )


def test_only_unsupported_functions_is_an_error(tmp_path: Path) -> None:
    error = refused(tmp_path, one_function().replace("python3.12", "nodejs20.x"))

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: no function lamina can run: Fn uses "
        "nodejs20.x; lamina runs python3.x and provided.* functions from local folders"
    )


def test_only_skipped_functions_are_each_named_with_the_reason(
    tmp_path: Path,
) -> None:
    text = (
        one_function().replace("python3.12", "java21")
        + """\
  Image:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageUri: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:latest
  Bare:
    Type: AWS::Lambda::Function
    Properties:
      Handler: index.handler
"""
    )

    error = refused(tmp_path, text)

    assert str(error).startswith(
        f"{tmp_path / 'template.yaml'}: no function lamina can run: Fn uses java21, "
        "Image is a container image, Bare uses no runtime; "
    )


def test_two_functions_with_one_name_are_refused(tmp_path: Path) -> None:
    second = one_function("FunctionName: api\n", name="Two")
    text = (
        one_function("FunctionName: api\n", name="One")
        + second.split("Resources:\n")[1]
    )

    error = refused(tmp_path, text)

    assert (error.resource, error.field) == ("Two", "FunctionName")


# -- limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "field", "message"),
    [
        pytest.param(
            "MemorySize: 64",
            "MemorySize",
            "64 is outside Lambda's range of 128–10240 MB",
            id="memory-low",
        ),
        pytest.param(
            "MemorySize: 20000",
            "MemorySize",
            "20000 is outside Lambda's range of 128–10240 MB",
            id="memory-high",
        ),
        pytest.param(
            "Timeout: 0",
            "Timeout",
            "0 is outside Lambda's range of 1–900 seconds",
            id="timeout-zero",
        ),
        pytest.param(
            "Timeout: 901",
            "Timeout",
            "901 is outside Lambda's range of 1–900 seconds",
            id="timeout-high",
        ),
        pytest.param(
            "Timeout: 2.5", "Timeout", "2.5 is not a whole number", id="timeout-float"
        ),
        pytest.param(
            "MemorySize: lots",
            "MemorySize",
            "'lots' is not a whole number",
            id="memory-word",
        ),
        pytest.param(
            "MemorySize: true",
            "MemorySize",
            "True is not a whole number",
            id="memory-bool",
        ),
        pytest.param(
            "EphemeralStorage: {Size: 511}",
            "EphemeralStorage.Size",
            "511 is outside Lambda's range of 512–10240 MB",
            id="storage-low",
        ),
        pytest.param(
            "ReservedConcurrentExecutions: -1",
            "ReservedConcurrentExecutions",
            "-1 is not a whole number of 0 or more",
            id="reserved-negative",
        ),
        pytest.param(
            "ReservedConcurrentExecutions: many",
            "ReservedConcurrentExecutions",
            "'many' is not a whole number of 0 or more",
            id="reserved-word",
        ),
        pytest.param(
            "Architectures: [x86_64, arm64]",
            "Architectures",
            "expected one of [x86_64], [arm64]",
            id="two-architectures",
        ),
        pytest.param(
            "Architectures: arm64",
            "Architectures",
            "expected one of [x86_64], [arm64]",
            id="architecture-not-a-list",
        ),
        pytest.param(
            "Architectures: [mips]",
            "Architectures",
            "'mips' is not x86_64 or arm64",
            id="unknown-architecture",
        ),
        pytest.param(
            "Environment: {Variables: [A, B]}",
            "Environment.Variables",
            "expected a mapping",
            id="variables-not-a-mapping",
        ),
        pytest.param(
            "Environment: oops",
            "Environment",
            "expected a mapping with Variables",
            id="environment-not-a-mapping",
        ),
        pytest.param(
            "Environment: {Variables: {1ST: x}}",
            "Environment.Variables",
            "'1ST' is not a valid variable name: a letter, then at least one more "
            "letter, digit or underscore",
            id="variable-name-starts-with-a-digit",
        ),
        pytest.param(
            "Environment: {Variables: {HAS-DASH: x}}",
            "Environment.Variables",
            "'HAS-DASH' is not a valid variable name: a letter, then at least one "
            "more letter, digit or underscore",
            id="variable-name-with-a-dash",
        ),
        pytest.param(
            "Environment: {Variables: {A: x}}",
            "Environment.Variables",
            "'A' is not a valid variable name: a letter, then at least one more "
            "letter, digit or underscore",
            id="variable-name-of-one-letter",
        ),
        pytest.param(
            "Environment: {Variables: {CONFIG: {debug: true}}}",
            "Environment.Variables.CONFIG",
            "expected a string, number or boolean, not a mapping",
            id="variable-value-a-mapping",
        ),
        pytest.param(
            "Environment: {Variables: {HOSTS: [a, b]}}",
            "Environment.Variables.HOSTS",
            "expected a string, number or boolean, not a list",
            id="variable-value-a-list",
        ),
        pytest.param(
            "Environment: {Variables: {EMPTY: null}}",
            "Environment.Variables.EMPTY",
            "has no value; write '' for an empty one",
            id="variable-value-null",
        ),
        pytest.param(
            "FunctionName: 'has space/slash'",
            "FunctionName",
            "'has space/slash' is not a valid function name: 1 to 64 letters, "
            "digits, hyphens (-) or underscores (_)",
            id="function-name-characters",
        ),
        pytest.param(
            "FunctionName: " + "f" * 65,
            "FunctionName",
            f"'{'f' * 65}' is not a valid function name: 1 to 64 letters, digits, "
            "hyphens (-) or underscores (_)",
            id="function-name-too-long",
        ),
        pytest.param(
            "Layers: MyLayer",
            "Layers",
            "expected a list of layers",
            id="layers-a-string",
        ),
        pytest.param(
            "EphemeralStorage: big",
            "EphemeralStorage",
            "expected a mapping with Size, such as {Size: 1024}",
            id="storage-a-string",
        ),
        pytest.param(
            "EphemeralStorage: {}",
            "EphemeralStorage",
            "expected a mapping with Size, such as {Size: 1024}",
            id="storage-without-size",
        ),
        pytest.param(
            "EphemeralStorage: {Size: lots}",
            "EphemeralStorage.Size",
            "'lots' is not a whole number",
            id="storage-size-a-word",
        ),
        pytest.param(
            "FunctionUrlConfig: {InvokeMode: STREAMING}",
            "FunctionUrlConfig.InvokeMode",
            "'STREAMING' is not BUFFERED or RESPONSE_STREAM",
            id="url-unknown-mode",
        ),
        pytest.param(
            "FunctionUrlConfig: yes-please",
            "FunctionUrlConfig",
            "expected a mapping",
            id="url-not-a-mapping",
        ),
    ],
)
def test_values_lambda_would_refuse_name_the_file_resource_and_field(
    tmp_path: Path, props: str, field: str, message: str
) -> None:
    error = refused(tmp_path, one_function(props + "\n"))

    path = tmp_path / "template.yaml"
    assert str(error) == f"{path}: Fn.{field}: {message}"
    assert (error.path, error.resource, error.field) == (str(path), "Fn", field)


def test_reserved_concurrency_true_is_not_a_number(tmp_path: Path) -> None:
    error = refused(tmp_path, one_function("ReservedConcurrentExecutions: true\n"))

    assert error.field == "ReservedConcurrentExecutions"


@pytest.mark.parametrize("name", sorted(RESERVED_VARIABLES))
def test_a_variable_lambda_sets_itself_is_refused(tmp_path: Path, name: str) -> None:
    error = refused(
        tmp_path, one_function(f"Environment: {{Variables: {{{name}: x}}}}")
    )

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: Fn.Environment.Variables: {name} is "
        "reserved: Lambda sets it itself"
    )


def test_variables_lambda_lets_a_function_set_are_accepted(tmp_path: Path) -> None:
    variables = {
        "TZ": "Europe/Paris",
        "LANG": "C.UTF-8",
        "PATH": "/opt/bin:/usr/bin",
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper",
        "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
        "x1": "lower case",
    }
    lines = "".join(f"    {name}: {value}\n" for name, value in variables.items())

    config = only(
        load(tmp_path, one_function(f"Environment:\n  Variables:\n{lines}"), "src")
    )

    assert config.environment == variables


def _sized_variables(total: int) -> str:
    """Two variables whose names and values come to ``total`` bytes."""
    first = total // 2 - len("FIRST")
    second = total - total // 2 - len("SECOND")
    # Two bytes per "é": the limit counts bytes, not characters.
    value = "é" * (second // 2) + "b" * (second % 2)
    return (
        f"Environment:\n  Variables:\n    FIRST: {'a' * first}\n    SECOND: {value}\n"
    )


def test_environment_variables_up_to_4_kb_are_accepted(tmp_path: Path) -> None:
    config = only(load(tmp_path, one_function(_sized_variables(4096)), "src"))

    size = sum(len(k.encode()) + len(v.encode()) for k, v in config.environment.items())
    assert size == 4096


def test_environment_variables_over_4_kb_are_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, one_function(_sized_variables(4097)))

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: Fn.Environment.Variables: 4097 bytes of "
        "names and values is over Lambda's limit of 4 KB (4096 bytes)"
    )


@pytest.mark.parametrize(
    ("props", "attribute", "value"),
    [
        pytest.param("MemorySize: 128", "memory_mb", 128, id="memory-low"),
        pytest.param("MemorySize: 10240", "memory_mb", 10240, id="memory-high"),
        pytest.param("Timeout: 1", "timeout_s", 1.0, id="timeout-low"),
        pytest.param("Timeout: 900", "timeout_s", 900.0, id="timeout-high"),
        pytest.param(
            "EphemeralStorage: {Size: 10240}",
            "ephemeral_storage_mb",
            10240,
            id="storage-high",
        ),
        pytest.param(
            "ReservedConcurrentExecutions: 0",
            "reserved_concurrency",
            0,
            id="reserved-zero",
        ),
        pytest.param("Architectures: [x86_64]", "architecture", "x86_64", id="x86"),
        pytest.param("Architectures: []", "architecture", "x86_64", id="empty-arch"),
    ],
)
def test_values_at_the_limits_are_accepted(
    tmp_path: Path, props: str, attribute: str, value: object
) -> None:
    config = only(load(tmp_path, one_function(props + "\n"), "src"))

    assert getattr(config, attribute) == value


# -- code folders ----------------------------------------------------------------------


def test_a_missing_code_folder_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, one_function().replace("src/", "missing/"))

    with pytest.raises(TemplateError) as caught:
        load_template(path)

    assert str(caught.value) == (
        f"{path}: Fn.CodeUri: folder {(tmp_path / 'missing').resolve()} does not exist"
    )


def test_a_code_uri_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "app.zip").write_bytes(b"PK")

    error = refused(tmp_path, one_function().replace("src/", "app.zip"))

    assert error.field == "CodeUri"
    assert "does not exist" in str(error)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        pytest.param(
            "s3://bucket/key.zip",
            "s3://bucket/key.zip is in S3; give a local folder",
            id="s3-uri",
        ),
        pytest.param(
            "{Bucket: b, Key: k}",
            "only a local folder is supported (an S3 location or inline code is not)",
            id="s3-mapping",
        ),
    ],
)
def test_remote_code_is_refused(tmp_path: Path, code: str, message: str) -> None:
    error = refused(tmp_path, one_function().replace("src/", code))

    assert str(error) == f"{tmp_path / 'template.yaml'}: Fn.CodeUri: {message}"


def test_inline_code_of_a_lambda_function_is_refused(tmp_path: Path) -> None:
    text = (
        HEADER
        + """\
Resources:
  Raw:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Code:
        ZipFile: "def handler(e, c): return 1"
"""
    )

    error = refused(tmp_path, text)

    assert (error.resource, error.field) == ("Raw", "Code")


# -- the document itself ---------------------------------------------------------------


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: [unclosed
        """,
    )

    with pytest.raises(TemplateError) as caught:
        load_template(path)

    assert str(caught.value).startswith(f"{path}: not valid YAML (line 5): ")


def test_a_tab_indent_is_reported_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "Resources:\n  Fn:\n\tType: x\n")

    with pytest.raises(TemplateError) as caught:
        load_template(path)

    assert str(caught.value).startswith(f"{path}: not valid YAML (line 3): ")


def test_an_unreadable_template_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        load_template(tmp_path)

    assert str(caught.value).startswith(f"{tmp_path}: cannot read: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "- a\n- b\n", "not a template: expected a mapping at the top", id="list"
        ),
        pytest.param("", "not a template: expected a mapping at the top", id="empty"),
        pytest.param(
            "Resources:\n  Fn: just a string\n",
            "Fn: expected a mapping",
            id="resource-not-a-mapping",
        ),
        pytest.param(
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n",
            "no AWS::Serverless::Function or AWS::Lambda::Function resource",
            id="no-functions",
        ),
    ],
)
def test_documents_that_are_not_templates(
    tmp_path: Path, text: str, message: str
) -> None:
    error = refused(tmp_path, text)

    assert str(error) == f"{tmp_path / 'template.yaml'}: {message}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Description: x\n", id="no-resources"),
        pytest.param("Resources: {}\n", id="empty-resources"),
        pytest.param("Resources: [a]\n", id="resources-not-a-mapping"),
        pytest.param("Resources:\n", id="resources-null"),
    ],
)
def test_a_template_without_resources(tmp_path: Path, text: str) -> None:
    error = refused(tmp_path, text)

    assert str(error).startswith(str(tmp_path / "template.yaml"))
    assert str(error).endswith(": no Resources")
    assert (error.resource, error.field) == ("", "Resources")


def test_a_field_without_a_resource_is_set_apart_from_the_path(
    tmp_path: Path,
) -> None:
    error = refused(tmp_path, "Resources: {}\n")

    assert str(error) == f"{tmp_path / 'template.yaml'}: Resources: no Resources"


FUNCTION = """\
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
"""
BARE = "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param(
            BARE + "    Properties: hello\n",
            "Fn.Properties",
            "expected a mapping",
            id="properties-a-string",
        ),
        pytest.param(
            BARE + "    Properties: [1, 2]\n",
            "Fn.Properties",
            "expected a mapping",
            id="properties-a-list",
        ),
        pytest.param(
            "Globals: {Function: [1]}\n" + FUNCTION,
            "Globals.Function",
            "expected a mapping",
            id="globals-function-a-list",
        ),
        pytest.param(
            "Globals: [1]\n" + FUNCTION, "Globals", "expected a mapping", id="globals"
        ),
        pytest.param(
            "Globals: {Function: {Environment: {Variables: {STAGE: dev}}}}\n"
            + FUNCTION
            + "      Environment: oops\n",
            "Fn.Environment",
            "expected a mapping with Variables",
            id="environment-a-string-under-globals",
        ),
        pytest.param(
            "Globals: {Function: {Environment: oops}}\n"
            + FUNCTION
            + "      Environment: {Variables: {STAGE: dev}}\n",
            "Globals.Function.Environment",
            "expected a mapping with Variables",
            id="global-environment-a-string",
        ),
        pytest.param(
            "Globals: {Function: {Environment: {Variables: [A]}}}\n" + FUNCTION,
            "Globals.Function.Environment.Variables",
            "expected a mapping",
            id="global-variables-a-list",
        ),
        pytest.param(
            "Parameters: [1]\n" + FUNCTION,
            "Parameters",
            "expected a mapping",
            id="parameters-a-list",
        ),
        pytest.param(
            FUNCTION + "      Environment: {Variables: {STAGE: !Sub [1]}}\n",
            "Fn.Environment",
            "Fn::Sub takes a string, or a list of a string and a mapping of variables",
            id="sub-a-list-of-one",
        ),
        pytest.param(
            FUNCTION + "      Description: !Sub {Text: x}\n",
            "Fn.Description",
            "Fn::Sub takes a string, or a list of a string and a mapping of variables",
            id="sub-a-mapping",
        ),
        pytest.param(
            FUNCTION + "      Tags: &loop [*loop]\n",
            "Fn.Tags",
            "contains itself (a YAML alias inside its own anchor)",
            id="list-anchor-inside-itself",
        ),
        pytest.param(
            FUNCTION + "      Tags: &loop {self: *loop}\n",
            "Fn.Tags",
            "contains itself (a YAML alias inside its own anchor)",
            id="mapping-anchor-inside-itself",
        ),
    ],
)
def test_shapes_that_cannot_be_read_name_the_place(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    error = refused(tmp_path, text)

    assert str(error) == f"{tmp_path / 'template.yaml'}: {where}: {message}"


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    error = refused(tmp_path, one_function("Handler: other.handler\n"))

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: not valid YAML (line 10): duplicate key "
        "'Handler'"
    )


def test_equal_keys_in_different_mappings_are_fine(tmp_path: Path) -> None:
    text = one_function("Environment: {Variables: {Handler: x, Runtime: y}}\n")

    assert only(load(tmp_path, text, "src")).environment == {
        "Handler": "x",
        "Runtime": "y",
    }


def test_a_yaml_error_is_one_line(tmp_path: Path) -> None:
    error = refused(tmp_path, "Resources:\n  Fn: [unclosed\n")

    assert "\n" not in str(error)
    assert str(error).startswith(f"{tmp_path / 'template.yaml'}: not valid YAML (line")


def test_a_template_that_is_not_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_bytes(one_function("Description: caf\xe9\n").encode("latin-1"))
    (tmp_path / "src").mkdir()

    with pytest.raises(TemplateError) as caught:
        load_template(path)

    assert str(caught.value) == (
        f"{path}: not UTF-8 text (line 10): save the template as UTF-8"
    )


def test_an_unforeseen_failure_still_names_the_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> str:
        raise KeyError("surprise")

    monkeypatch.setattr(template_module._Reader, "_architecture", broken)

    error = refused(tmp_path, one_function())

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: Fn: cannot read this resource "
        "(KeyError: 'surprise')"
    )
    assert error.resource == "Fn"


# -- sample events ---------------------------------------------------------------------


def test_an_unknown_sample_event_is_refused_with_those_there_are(
    tmp_path: Path,
) -> None:
    error = refused(
        tmp_path,
        one_function(resource="Metadata: {Lamina: {SampleEvents: [sqs, nosuch]}}\n"),
    )

    assert (error.resource, error.field) == ("Fn", "Metadata.Lamina.SampleEvents")
    assert str(error).endswith(
        f"no sample event named 'nosuch'. Available: {', '.join(events.names())}"
    )


def test_sample_events_must_be_a_list(tmp_path: Path) -> None:
    error = refused(
        tmp_path, one_function(resource="Metadata: {Lamina: {SampleEvents: sqs}}\n")
    )

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: Fn.Metadata.Lamina.SampleEvents: expected a "
        "list of sample event names"
    )


# -- layers ----------------------------------------------------------------------------


LAYERS = """\
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/shared/
  Raw:
    Type: AWS::Lambda::LayerVersion
    Properties:
      Content: layers/raw
"""


def test_layers_in_the_same_template_become_folders(tmp_path: Path) -> None:
    text = one_function("Layers:\n  - !Ref Shared\n  - Raw\n") + LAYERS

    config = only(load(tmp_path, text, "src", "layers/shared", "layers/raw"))

    assert config.layers == (
        Layer("Shared", (tmp_path / "layers" / "shared").resolve()),
        Layer("Raw", (tmp_path / "layers" / "raw").resolve()),
    )


def test_a_layer_from_elsewhere_is_ignored_with_a_warning(tmp_path: Path) -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:layer:tools:3"
    text = one_function(f"Layers:\n  - {arn}\n  - !Ref Fn\n")

    template = load(tmp_path, text, "src")

    assert only(template).layers == ()
    assert template.warnings == [
        f"Fn: layer {arn} is not in this template; ignored",
        "Fn: layer Fn is not in this template; ignored",
    ]


def test_a_layer_without_its_folder_is_an_error(tmp_path: Path) -> None:
    text = one_function("Layers: [!Ref Shared]\n") + LAYERS

    error = refused(tmp_path, text)

    assert str(error) == (
        f"{tmp_path / 'template.yaml'}: Shared.ContentUri: expected a local folder"
    )


# -- LoggingConfig -----------------------------------------------------------------------


def test_logging_config_sets_format_and_levels(tmp_path: Path) -> None:
    template = load(
        tmp_path,
        one_function(
            """\
            LoggingConfig:
              LogFormat: JSON
              ApplicationLogLevel: WARN
              SystemLogLevel: DEBUG
              LogGroup: /custom/group
            """
        ),
        "src",
    )

    settings = only(template).log_settings
    assert template.warnings == []
    assert settings == LogSettings("JSON", "WARN", "DEBUG", "/custom/group")
    assert settings.environment() == {
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "WARN",
    }


def test_the_json_format_filters_at_info_by_default(tmp_path: Path) -> None:
    template = load(tmp_path, one_function("LoggingConfig: {LogFormat: JSON}"), "src")

    assert only(template).log_settings.environment() == {
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
    }


def test_without_logging_config_the_format_is_text(tmp_path: Path) -> None:
    settings = only(load(tmp_path, one_function(), "src")).log_settings

    assert settings == LogSettings()
    assert not settings.is_json
    assert settings.environment() == {}


def test_log_levels_with_the_text_format_are_ignored_with_a_warning(
    tmp_path: Path,
) -> None:
    template = load(
        tmp_path,
        one_function("LoggingConfig: {LogFormat: Text, ApplicationLogLevel: DEBUG}"),
        "src",
    )

    assert only(template).log_settings == LogSettings("Text")
    assert template.warnings == [
        "Fn: LoggingConfig log levels apply only with LogFormat: JSON; ignored"
    ]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        pytest.param("{LogFormat: XML}", "LoggingConfig.LogFormat", id="format"),
        pytest.param("{LogFormat: json}", "LoggingConfig.LogFormat", id="case"),
        pytest.param(
            "{LogFormat: JSON, ApplicationLogLevel: VERBOSE}",
            "LoggingConfig.ApplicationLogLevel",
            id="application-level",
        ),
        pytest.param(
            "{LogFormat: JSON, SystemLogLevel: ERROR}",
            "LoggingConfig.SystemLogLevel",
            id="system-level",
        ),
        pytest.param("JSON", "LoggingConfig", id="not-a-mapping"),
    ],
)
def test_logging_config_values_lambda_would_refuse(
    tmp_path: Path, config: str, field: str
) -> None:
    error = refused(tmp_path, one_function(f"LoggingConfig: {config}"))

    assert error.field == field


# -- EventInvokeConfig -----------------------------------------------------------------


def test_event_invoke_config_and_its_destinations(tmp_path: Path) -> None:
    text = one_function(
        """\
        EventInvokeConfig:
          MaximumRetryAttempts: 1
          MaximumEventAgeInSeconds: 120
          DestinationConfig:
            OnSuccess: {Type: Lambda, Destination: !GetAtt Sink.Arn}
            OnFailure: {Type: SQS, Destination: out/failures.jsonl}
        DeadLetterQueue: {Type: SQS, TargetArn: "file:///tmp/dead.jsonl"}
        """
    ) + (
        "  Sink:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      FunctionName: sink\n      Runtime: python3.12\n"
        "      Handler: app.handler\n      CodeUri: src/\n"
    )

    settings = load(tmp_path, text, "src").functions["Fn"].event_invoke

    assert settings.max_retry_attempts == 1
    assert settings.max_event_age_s == 120
    assert settings.on_success == Destination("function", "sink")
    assert settings.on_failure == Destination(
        "file", str((tmp_path / "out" / "failures.jsonl").resolve())
    )
    assert settings.dead_letter == Destination("file", "/tmp/dead.jsonl")


@pytest.mark.parametrize(
    ("props", "field"),
    [
        pytest.param(
            "EventInvokeConfig: {MaximumRetryAttempts: 3}\n",
            "Fn.EventInvokeConfig.MaximumRetryAttempts: 3 is outside",
            id="retries",
        ),
        pytest.param(
            "EventInvokeConfig: {MaximumEventAgeInSeconds: 59}\n",
            "Fn.EventInvokeConfig.MaximumEventAgeInSeconds: 59 is outside",
            id="event-age",
        ),
        pytest.param(
            "EventInvokeConfig:\n"
            "  DestinationConfig: {OnFailure: {Type: Lambda, Destination: Nowhere}}\n",
            "Fn.EventInvokeConfig.DestinationConfig.OnFailure: function 'Nowhere'",
            id="unknown-function",
        ),
    ],
)
def test_event_invoke_config_lambda_would_refuse(
    tmp_path: Path, props: str, field: str
) -> None:
    assert field in str(refused(tmp_path, one_function(props)))
