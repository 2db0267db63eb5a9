import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.emulator.errors import InvalidParameterValue, ResourceNotFound
from lamina.emulator.function import (
    ACCOUNT_ID,
    LATEST,
    FunctionConfig,
    FunctionRef,
    not_found,
    parse_function_name,
    region,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function"


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


# -- parse_function_name -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name", "qualifier"),
    [
        pytest.param("my-function", "my-function", LATEST, id="name"),
        pytest.param("Fn_2", "Fn_2", LATEST, id="name-underscore-digit"),
        pytest.param("my-function:prod", "my-function", "prod", id="name-alias"),
        pytest.param("my-function:7", "my-function", "7", id="name-version"),
        pytest.param("my-function:$LATEST", "my-function", LATEST, id="name-latest"),
        pytest.param(
            "123456789012:function:my-function", "my-function", LATEST, id="partial"
        ),
        pytest.param(
            "123456789012:function:my-function:prod",
            "my-function",
            "prod",
            id="partial-qualified",
        ),
        pytest.param(f"{ARN}:my-function", "my-function", LATEST, id="arn"),
        pytest.param(f"{ARN}:my-function:prod", "my-function", "prod", id="arn-alias"),
        pytest.param(f"{ARN}:my-function:$LATEST", "my-function", LATEST, id="arn-l"),
        pytest.param(
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f",
            "f",
            LATEST,
            id="gov-arn",
        ),
        pytest.param(
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:f:1",
            "f",
            "1",
            id="china-arn",
        ),
    ],
)
def test_parse_function_name_forms(raw: str, name: str, qualifier: str) -> None:
    assert parse_function_name(raw) == FunctionRef(name, qualifier)


@pytest.mark.parametrize(
    ("raw", "qualifier", "expected"),
    [
        pytest.param("f", "prod", "prod", id="name"),
        pytest.param("f", "", LATEST, id="empty-means-latest"),
        pytest.param("f", None, LATEST, id="none-means-latest"),
        pytest.param("f:prod", "prod", "prod", id="both-agree"),
        pytest.param("f:prod", None, "prod", id="only-in-name"),
        pytest.param(f"{ARN}:f", "3", "3", id="arn"),
        pytest.param(f"{ARN}:f:3", "3", "3", id="arn-both-agree"),
        pytest.param("123456789012:function:f", "live", "live", id="partial"),
    ],
)
def test_a_qualifier_given_separately(
    raw: str, qualifier: str | None, expected: str
) -> None:
    assert parse_function_name(raw, qualifier) == FunctionRef("f", expected)


@pytest.mark.parametrize(
    ("raw", "qualifier"),
    [
        pytest.param("f:prod", "dev", id="name"),
        pytest.param(f"{ARN}:f:1", "2", id="arn"),
        pytest.param("123456789012:function:f:$LATEST", "prod", id="partial"),
    ],
)
def test_a_qualifier_that_disagrees_with_the_name_is_refused(
    raw: str, qualifier: str
) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_function_name(raw, qualifier)

    error = caught.value
    assert error.message == (
        "The derived qualifier from the function name does not match the "
        "specified qualifier."
    )
    assert error.status == 400
    assert error.error_type == "InvalidParameterValueException"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("has space", id="space"),
        pytest.param("f:", id="empty-qualifier"),
        pytest.param("f:a/b", id="slash-in-qualifier"),
        pytest.param("f:prod:extra", id="two-qualifiers"),
        pytest.param("a" * 141, id="too-long"),
        pytest.param("fn!", id="punctuation"),
        pytest.param("fünf", id="non-ascii"),
        pytest.param(f"{ARN}:", id="arn-without-name"),
        pytest.param("arn:aws:s3:::bucket", id="other-service"),
        pytest.param("arn:aws:lambda:nowhere:123456789012:function:f", id="region"),
        pytest.param("12345678901:function:f", id="short-account"),
    ],
)
def test_invalid_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_function_name(raw)

    error = caught.value
    assert error.message.startswith(
        f"1 validation error detected: Value '{raw}' at 'functionName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
    )
    assert error.status == 400
    assert json.loads(error.body())["Type"] == "User"


def test_the_longest_name_is_accepted() -> None:
    assert parse_function_name("a" * 140).name == "a" * 140


# Names that are also an account id or the word "function" make the short forms
# ambiguous (as they are for Lambda itself), so they are left out here.
_NAMES = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True).filter(
    lambda name: name != "function" and not (len(name) == 12 and name.isdigit())
)
_QUALIFIERS = st.one_of(
    st.just(LATEST), st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True)
)


@given(name=_NAMES, qualifier=_QUALIFIERS)
def test_every_form_names_the_same_function(name: str, qualifier: str) -> None:
    forms = [
        f"{name}:{qualifier}",
        f"{ACCOUNT_ID}:function:{name}:{qualifier}",
        f"{ARN}:{name}:{qualifier}",
    ]

    refs = {parse_function_name(form) for form in forms}
    refs.add(parse_function_name(name, qualifier))
    refs.add(parse_function_name(f"{ARN}:{name}", qualifier))

    assert refs == {FunctionRef(name, qualifier)}


# -- not_found and the region --------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        pytest.param(
            FunctionRef("f", LATEST),
            "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:f",
            id="latest",
        ),
        pytest.param(
            FunctionRef("f", "prod"),
            "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:f:prod",
            id="alias",
        ),
        pytest.param(
            FunctionRef("f", "3"),
            "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:f:3",
            id="version",
        ),
    ],
)
def test_not_found_names_the_arn(ref: FunctionRef, message: str) -> None:
    error = not_found(ref)

    assert isinstance(error, ResourceNotFound)
    assert error.message == message
    assert error.status == 404
    assert error.error_type == "ResourceNotFoundException"
    assert json.loads(error.body()) == {"Type": "User", "message": message}


def test_region_prefers_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")

    assert region() == "eu-west-1"


def test_region_falls_back_to_the_default_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")

    assert region() == "ap-south-1"


def test_region_is_us_east_1_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")

    assert region() == "us-east-1"


# -- FunctionConfig ------------------------------------------------------------------


def test_function_config_arn_and_python_version() -> None:
    config = FunctionConfig("f", "python3.12", Path("/code"))

    assert config.arn == "arn:aws:lambda:eu-west-1:123456789012:function:f"
    assert config.is_python
    assert config.python_version == "3.12"


def test_a_custom_runtime_is_not_python() -> None:
    assert not FunctionConfig("f", "provided.al2023", Path("/code")).is_python
