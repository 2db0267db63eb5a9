import base64
import hashlib
import json
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import pytest

from lamina import events

EXPECTED_NAMES = [
    "apigateway-http",
    "apigateway-rest",
    "dynamodb-stream",
    "eventbridge",
    "function-url",
    "kinesis",
    "s3",
    "sns",
    "sqs",
]


def records(name: str) -> list[dict[str, Any]]:
    batch: list[dict[str, Any]] = events.load(name)["Records"]
    return batch


# -- the catalogue -----------------------------------------------------------------


def test_names_are_sorted_and_complete() -> None:
    assert events.names() == EXPECTED_NAMES


def test_every_data_file_has_a_name_and_every_name_a_file() -> None:
    data = resources.files("lamina.events") / "data"
    files = sorted(
        entry.name.removesuffix(".json")
        for entry in data.iterdir()
        if entry.name.endswith(".json")
    )
    assert files == events.names()


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_every_event_loads_as_an_object(name: str) -> None:
    event = events.load(name)

    assert isinstance(event, dict)
    assert event


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_every_event_has_a_one_line_description(name: str) -> None:
    description = events.describe(name)

    assert description.strip() == description
    assert "\n" not in description
    assert len(description) <= 88


def test_load_returns_a_fresh_copy() -> None:
    first = events.load("sqs")
    first["Records"].clear()

    assert len(records("sqs")) == 2


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(events.load, id="load"),
        pytest.param(events.describe, id="describe"),
    ],
)
def test_unknown_name_lists_the_available_ones(call: Any) -> None:
    with pytest.raises(events.UnknownEventError) as caught:
        call("sqs-fifo-batch")

    message = str(caught.value)
    assert "'sqs-fifo-batch'" in message
    assert all(name in message for name in EXPECTED_NAMES)
    assert caught.value.name == "sqs-fifo-batch"
    assert caught.value.available == EXPECTED_NAMES


def test_unknown_name_suggests_a_close_one() -> None:
    with pytest.raises(
        events.UnknownEventError, match="Did you mean 'dynamodb-stream'"
    ):
        events.load("dynamodb")


def test_unknown_event_error_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        events.load("carrier-pigeon")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../pyproject", id="parent-path"),
        pytest.param("data/sqs", id="sub-path"),
        pytest.param("SQS", id="wrong-case"),
        pytest.param("", id="empty"),
    ],
)
def test_names_are_not_paths(name: str) -> None:
    with pytest.raises(events.UnknownEventError):
        events.load(name)


# -- record batches ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source_key", "source", "count"),
    [
        pytest.param("sqs", "eventSource", "aws:sqs", 2, id="sqs"),
        pytest.param("sns", "EventSource", "aws:sns", 1, id="sns"),
        pytest.param("s3", "eventSource", "aws:s3", 1, id="s3"),
        pytest.param(
            "dynamodb-stream", "eventSource", "aws:dynamodb", 3, id="dynamodb"
        ),
        pytest.param("kinesis", "eventSource", "aws:kinesis", 2, id="kinesis"),
    ],
)
def test_record_batches_name_their_source(
    name: str, source_key: str, source: str, count: int
) -> None:
    batch = records(name)

    assert len(batch) == count
    assert {record[source_key] for record in batch} == {source}


@pytest.mark.parametrize(
    ("name", "arn_key", "service"),
    [
        pytest.param("sqs", "eventSourceARN", "sqs", id="sqs"),
        pytest.param("sns", "EventSubscriptionArn", "sns", id="sns"),
        pytest.param("dynamodb-stream", "eventSourceARN", "dynamodb", id="dynamodb"),
        pytest.param("kinesis", "eventSourceARN", "kinesis", id="kinesis"),
    ],
)
def test_source_arns_name_the_sample_account_and_region(
    name: str, arn_key: str, service: str
) -> None:
    for record in records(name):
        assert record[arn_key].startswith(f"arn:aws:{service}:us-east-1:123456789012:")


def test_sqs_messages_carry_the_md5_of_their_body() -> None:
    for record in records("sqs"):
        digest = hashlib.md5(record["body"].encode()).hexdigest()
        assert record["md5OfBody"] == digest
        assert record["awsRegion"] == "us-east-1"
        assert record["attributes"]["ApproximateReceiveCount"].isdigit()


def test_sqs_message_attributes_have_the_sqs_shape() -> None:
    attributes = records("sqs")[0]["messageAttributes"]

    assert attributes
    for attribute in attributes.values():
        assert set(attribute) == {
            "stringValue",
            "stringListValues",
            "binaryListValues",
            "dataType",
        }


def test_sns_notification_has_the_sns_shape() -> None:
    (record,) = records("sns")
    message = record["Sns"]

    assert record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"].startswith(message["TopicArn"] + ":")
    assert message["Type"] == "Notification"
    assert message["SignatureVersion"] == "1"
    assert base64.b64decode(message["Signature"], validate=True)
    assert message["SigningCertUrl"].startswith("https://sns.us-east-1.amazonaws.com/")
    assert message["TopicArn"] in message["UnsubscribeUrl"]
    for attribute in message["MessageAttributes"].values():
        assert set(attribute) == {"Type", "Value"}


def test_s3_record_describes_one_put_object() -> None:
    (record,) = records("s3")
    bucket = record["s3"]["bucket"]
    obj = record["s3"]["object"]

    assert record["eventVersion"] == "2.1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["s3SchemaVersion"] == "1.0"
    assert bucket["arn"] == f"arn:aws:s3:::{bucket['name']}"
    assert isinstance(obj["size"], int)
    assert {"key", "eTag", "sequencer"} <= set(obj)


def test_dynamodb_stream_has_one_record_of_each_kind_with_matching_images() -> None:
    batch = records("dynamodb-stream")

    assert [record["eventName"] for record in batch] == ["INSERT", "MODIFY", "REMOVE"]
    images = {
        record["eventName"]: {"NewImage", "OldImage"} & set(record["dynamodb"])
        for record in batch
    }
    assert images == {
        "INSERT": {"NewImage"},
        "MODIFY": {"NewImage", "OldImage"},
        "REMOVE": {"OldImage"},
    }
    for record in batch:
        change = record["dynamodb"]
        assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert change["SequenceNumber"].isdigit()
        # Keys are the key attributes of whichever image the record carries.
        image = change.get("NewImage") or change["OldImage"]
        assert all(image[key] == value for key, value in change["Keys"].items())


def test_kinesis_data_is_base64_of_json() -> None:
    for record in records("kinesis"):
        data = record["kinesis"]["data"]

        payload = json.loads(base64.b64decode(data, validate=True))

        assert isinstance(payload, dict)
        assert record["eventName"] == "aws:kinesis:record"
        assert record["eventID"].endswith(":" + record["kinesis"]["sequenceNumber"])


def test_eventbridge_event_has_the_envelope_fields() -> None:
    event = events.load("eventbridge")

    assert event["version"] == "0"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert isinstance(event["resources"], list)
    assert isinstance(event["detail"], dict)
    assert {"id", "detail-type", "source", "time"} <= set(event)


# -- HTTP events -------------------------------------------------------------------


def test_rest_event_single_values_are_the_last_of_the_multi_values() -> None:
    event = events.load("apigateway-rest")

    for single, multi in [
        ("headers", "multiValueHeaders"),
        ("queryStringParameters", "multiValueQueryStringParameters"),
    ]:
        assert set(event[single]) == set(event[multi])
        for key, values in event[multi].items():
            assert event[single][key] == values[-1]


def test_rest_event_request_context_matches_the_request() -> None:
    event = events.load("apigateway-rest")
    context = event["requestContext"]

    assert context["httpMethod"] == event["httpMethod"]
    assert context["resourcePath"] == event["resource"]
    assert context["path"] == f"/{context['stage']}{event['path']}"
    assert context["identity"]["sourceIp"] in event["headers"]["X-Forwarded-For"]
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize("name", ["apigateway-http", "function-url"])
def test_payload_v2_events_have_the_v2_shape(name: str) -> None:
    event = events.load(name)
    context = event["requestContext"]

    assert event["version"] == "2.0"
    assert all(key == key.lower() for key in event["headers"])
    assert "cookie" not in event["headers"]
    assert context["http"]["path"] == event["rawPath"]
    assert context["routeKey"] == event["routeKey"]
    assert context["domainName"] == event["headers"]["host"]
    assert context["domainName"].startswith(context["domainPrefix"] + ".")
    assert str(context["timeEpoch"]).isdigit()
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize("name", ["apigateway-http", "function-url"])
def test_payload_v2_query_parameters_join_repeated_values_with_commas(
    name: str,
) -> None:
    event = events.load(name)
    joined: dict[str, list[str]] = {}
    for key, value in parse_qsl(event["rawQueryString"]):
        joined.setdefault(key, []).append(value)

    assert event["queryStringParameters"] == {
        key: ",".join(values) for key, values in joined.items()
    }


def test_http_api_route_key_names_the_method_and_route() -> None:
    event = events.load("apigateway-http")
    method, _, route = event["routeKey"].partition(" ")

    assert method == event["requestContext"]["http"]["method"]
    assert route.startswith("/")
    assert event["cookies"]


def test_function_url_uses_the_default_route_and_a_lambda_url_domain() -> None:
    event = events.load("function-url")
    context = event["requestContext"]

    assert event["routeKey"] == "$default"
    assert context["stage"] == "$default"
    assert context["domainName"] == (f"{context['apiId']}.lambda-url.us-east-1.on.aws")
    assert "pathParameters" not in event
    assert "stageVariables" not in event
