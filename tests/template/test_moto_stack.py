"""template.yaml created in moto's CloudFormation: the resources the engine and CLI find.

moto ignores versioning, the public access block, PITR and bucket policies when it creates
a stack, so those are asserted statically (test_security.py), not here.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

OUTPUTS = {
    "ApiUrl",
    "ApiId",
    "RawBucketName",
    "IndexTableName",
    "ReplayQueueUrl",
    "ReplayQueueArn",
    "ReplayDeadLetterQueueUrl",
    "ReplayWorkQueueUrl",
    "ReplayWorkDeadLetterQueueUrl",
    "IngestQueueUrl",
    "IngestQueueArn",
    "IngestDeadLetterQueueUrl",
    "IngestFunctionName",
    "QueryFunctionName",
    "QueueIngestFunctionName",
    "ReplayFunctionName",
    "ReplayControlFunctionName",
    "OperatorReadOnlyPolicyArn",
    "ReplayOperatorPolicyArn",
    "ProducerPolicyArn",
    "ReplayConsumerPolicyArn",
    "ReplayRoleArn",
}


def _client(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(service, region_name=stack["region"])


def test_every_output_is_there(template_stack: dict[str, Any]) -> None:
    outputs = template_stack["outputs"]
    assert set(outputs) == OUTPUTS
    api = _client(template_stack, "apigateway").get_rest_api(restApiId=outputs["ApiId"])
    assert api["name"] == f"{template_stack['name']}-api"
    region = template_stack["region"]
    assert outputs["ApiUrl"] == f"https://{outputs['ApiId']}.execute-api.{region}.amazonaws.com/v1"


def test_the_raw_bucket_takes_each_key_once(template_stack: dict[str, Any]) -> None:
    s3 = _client(template_stack, "s3")
    bucket = template_stack["outputs"]["RawBucketName"]
    s3.head_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="raw/one", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="raw/one", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="raw/one")["Body"].read() == b"first"


def test_the_table_has_the_key_schema_and_both_indexes(template_stack: dict[str, Any]) -> None:
    table = _client(template_stack, "dynamodb").describe_table(
        TableName=template_stack["outputs"]["IndexTableName"]
    )["Table"]

    def keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(k["AttributeName"], k["KeyType"]) for k in schema]

    assert keys(table["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert attributes == dict.fromkeys(["pk", "sk", "tl_pk", "tl_sk", "dir_pk", "dir_sk"], "S")
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert keys(indexes["timeline"]["KeySchema"]) == [("tl_pk", "HASH"), ("tl_sk", "RANGE")]
    assert keys(indexes["directory"]["KeySchema"]) == [("dir_pk", "HASH"), ("dir_sk", "RANGE")]
    assert set(indexes) == {"timeline", "directory"}
    assert all(i["Projection"]["ProjectionType"] == "ALL" for i in indexes.values())
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize("queue", ["Ingest", "Replay", "ReplayWork"])
def test_each_queue_hands_failures_to_its_dead_letter_queue(
    template_stack: dict[str, Any], queue: str
) -> None:
    sqs = _client(template_stack, "sqs")
    outputs = template_stack["outputs"]

    def attributes(url: str) -> dict[str, str]:
        answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return dict(answer["Attributes"])

    main = attributes(outputs[f"{queue}QueueUrl"])
    dead = attributes(outputs[f"{queue}DeadLetterQueueUrl"])
    redrive = json.loads(main["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5
    if queue == "Replay":  # a message quoting a 256 KiB event fits
        assert main["MaximumMessageSize"] == "1048576"
    assert dead["MessageRetentionPeriod"] == "1209600"
    if queue in ("Ingest", "Replay"):  # events wait for a consumer that may be down or absent
        assert main["MessageRetentionPeriod"] == "1209600"
    assert "RedrivePolicy" not in dead


@pytest.mark.parametrize(
    ("output", "handler"),
    [
        ("IngestFunctionName", "pik.lambdas.api.handler"),
        ("QueryFunctionName", "pik.lambdas.api.handler"),
        ("QueueIngestFunctionName", "pik.lambdas.queue.handler"),
        ("ReplayFunctionName", "pik.lambdas.replay.handler"),
        ("ReplayControlFunctionName", "pik.lambdas.api.replay_handler"),
    ],
)
def test_functions_point_at_the_created_resources(
    template_stack: dict[str, Any], output: str, handler: str
) -> None:
    outputs = template_stack["outputs"]
    config = _client(template_stack, "lambda").get_function_configuration(
        FunctionName=outputs[output]
    )
    assert config["Handler"] == handler
    assert config["Runtime"].startswith("python3.")
    variables = config["Environment"]["Variables"]
    assert variables["PIK_TABLE"] == outputs["IndexTableName"]
    assert variables["PIK_BUCKET"] == outputs["RawBucketName"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "pik"


def test_the_managed_policies_exist(template_stack: dict[str, Any]) -> None:
    iam = _client(template_stack, "iam")
    for name in (
        "OperatorReadOnlyPolicyArn",
        "ReplayOperatorPolicyArn",
        "ProducerPolicyArn",
        "ReplayConsumerPolicyArn",
    ):
        arn = template_stack["outputs"][name]
        assert iam.get_policy(PolicyArn=arn)["Policy"]["Arn"] == arn


def test_create_stack_in_us_east_1_with_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """us-east-1 takes no bucket location; parameters reach the stack (moto does not apply
    lifecycle rules, so their effect is checked statically)."""
    from moto import mock_aws
    from moto_stack import create_stack

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        outputs = create_stack("Pik-East", "us-east-1", {"RetentionDays": "400"})
        assert set(outputs) == OUTPUTS
        stack = boto3.client("cloudformation", region_name="us-east-1").describe_stacks(
            StackName="Pik-East"
        )["Stacks"][0]
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        assert parameters["RetentionDays"] == "400"
        assert parameters["EnableObjectLock"] == "false"


def test_listed_replay_targets_reach_the_function_and_the_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queues the deployer lists are published (clients check targets against them) and
    given to the replay function; with none listed there is no output at all."""
    from moto import mock_aws
    from moto_stack import create_stack

    from pik.engines.aws.discovery import discover

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    targets = "arn:aws:sqs:us-east-1:123456789012:billing,arn:aws:sqs:eu-west-1:123456789012:audit"
    with mock_aws():
        outputs = create_stack("Pik-Targets", "us-east-1", {"ReplayTargetQueueArns": targets})
        assert set(outputs) == OUTPUTS | {"ReplayTargetQueueArns"}
        assert outputs["ReplayTargetQueueArns"] == targets
        config = boto3.client("lambda", region_name="us-east-1").get_function_configuration(
            FunctionName=outputs["ReplayFunctionName"]
        )
        assert config["Environment"]["Variables"]["PIK_REPLAY_TARGETS"] == targets
        assert config["Timeout"] == 300
        found = discover("Pik-Targets", region="us-east-1")
        assert found.replay_targets == tuple(targets.split(","))
        assert found.replay_work_queue_url == outputs["ReplayWorkQueueUrl"]
        assert found.replay_queue_arn == outputs["ReplayQueueArn"]


def test_a_provisioned_index_is_created_and_used_by_name() -> None:
    """With IndexCapacity=provisioned the table and both indexes have capacity (the auto
    scaling that lifts it to the minimum is checked statically; moto cannot create it), and
    the engine found by the stack's name stores and reads events as on demand."""
    from replay_stack import REGION, stack_in_moto

    from pik.domain.outcome import Status
    from pik.engines.aws import AwsEngine
    from pik.services.ingest import ingest_batch

    with stack_in_moto("Pik-Provisioned", {"IndexCapacity": "provisioned"}) as config:
        table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=config.table)[
            "Table"
        ]
        assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        wanted = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}  # the seed; scaling lifts it
        for described in [table, *table["GlobalSecondaryIndexes"]]:
            throughput = described["ProvisionedThroughput"]
            assert {k: throughput[k] for k in wanted} == wanted
        store = AwsEngine(config)
        event = json.dumps(
            {
                "source": "s",
                "event_type": "t",
                "entity_id": "e-1",
                "event_time": "2026-11-01T00:00:00Z",
                "payload": {},
            }
        ).encode()
        (outcome,) = ingest_batch(store, [event], "test")
        assert outcome.status == Status.ACCEPTED
        assert [e.event_id for e in store.timeline("e-1", 0, 2**62, 10)] == [outcome.event_id]
