"""The contract suite: every test here runs against each engine behind the storage port.

``local`` is the embedded engine on a temporary directory. ``aws`` is the AWS engine on
S3 and DynamoDB as moto emulates them. A test that passes on one engine only means the
engines have drifted.

Where the engines may differ by design, the test says so: the AWS engine's timelines and
entity directory come from global secondary indexes, which DynamoDB keeps eventually
consistent. moto applies them at once, so the contract tests read them straight after a
write; against real AWS a reader may see an acknowledged event a moment later.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pik.engines.local import LocalEngine
from pik.ports import EventStore

ENGINES = ["local", "aws"]


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "local":
        engine = LocalEngine(tmp_path / "store")
        yield engine
        engine.close()
        return
    if request.param == "aws":
        yield request.getfixturevalue("aws_engine")
        return
    raise AssertionError(f"no fixture for engine {request.param}")


@pytest.fixture
def aws_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventStore]:
    from moto import mock_aws

    from pik.engines.aws import AwsConfig, AwsEngine

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        table, bucket = _provision()
        engine = AwsEngine(AwsConfig(table, bucket, region="us-east-1"))
        yield engine
        engine.close()


def _provision() -> tuple[str, str]:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="pik-raw")
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    attributes = ["pk", "sk", "tl_pk", "tl_sk", "dir_pk", "dir_sk"]

    def index(name: str, hash_key: str, range_key: str) -> dict[str, object]:
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }

    dynamodb.create_table(
        TableName="pik-index",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            index("timeline", "tl_pk", "tl_sk"),
            index("directory", "dir_pk", "dir_sk"),
        ],
    )
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    return "pik-index", "pik-raw"
