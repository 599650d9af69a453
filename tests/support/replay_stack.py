"""What the replay tests on the template's stack in moto share: taking on a function's
environment, and reading the replay and work queues as their consumers do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from lambda_context import FakeContext
from moto_patches import patch_moto_transactions, serialise_moto
from moto_stack import create_stack
from sqs_events import sqs_event

from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws.discovery import discover, stack_outputs
from pik.services.ingest import ingest_batch

REGION = "us-east-1"


@contextmanager
def stack_in_moto(name: str, parameters: dict[str, str] | None = None) -> Iterator[AwsConfig]:
    """The template's stack created in moto, found by its name as `pik --stack` finds it."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(key, "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        serialise_moto(patch)
        patch_moto_transactions(patch)
        with mock_aws():
            create_stack(name, REGION, parameters)
            yield discover(name, region=REGION)


def purge(config: AwsConfig) -> None:
    """Leave no message of an earlier test visible (PurgeQueue may run once a minute)."""
    for url in (config.replay_queue_url, config.replay_work_queue_url):
        assert url
        receive_all(url)


def as_function(
    monkeypatch: pytest.MonkeyPatch,
    stack: str,
    output: str = "ReplayFunctionName",
    remaining_ms: int = 900_000,
) -> FakeContext:
    """Take on the environment CloudFormation gave one of the stack's functions."""
    name = stack_outputs(stack, region=REGION)[output]
    configuration = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=name
    )
    for key, value in configuration["Environment"]["Variables"].items():
        monkeypatch.setenv(key, value)
    return FakeContext(function_name=name, remaining_ms=remaining_ms)


def ingest(store: AwsEngine, events: list[bytes]) -> None:
    for start in range(0, len(events), 1_000):
        ingest_batch(store, events[start : start + 1_000], "test")


def receive_all(url: str, delete: bool = True) -> list[dict[str, Any]]:
    """Every message waiting in a queue, received (and deleted, as a consumer does)."""
    sqs = boto3.client("sqs", region_name=REGION)
    found: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        messages = answer.get("Messages", [])
        if not messages:
            return found
        found.extend(messages)
        if delete:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def work_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Work queue messages as the event source mapping hands them to the function."""
    return sqs_event(messages, "work")


def work_items(config: AwsConfig) -> list[dict[str, Any]]:
    """The work queue's items, received as the event source mapping does (not deleted:
    the function's answer decides their fate)."""
    assert config.replay_work_queue_url
    return receive_all(config.replay_work_queue_url, delete=False)


def delivered(config: AwsConfig, replay_id: str) -> dict[int, dict[str, Any]]:
    """The replay's messages in the replay queue, by seq (a seq twice fails the test)."""
    assert config.replay_queue_url
    by_seq: dict[int, dict[str, Any]] = {}
    for message in receive_all(config.replay_queue_url):
        document = json.loads(message["Body"])
        if document["replay_id"] == replay_id:
            assert document["seq"] not in by_seq, f"seq {document['seq']} delivered twice"
            by_seq[document["seq"]] = document
    return by_seq


def check_complete(store: AwsEngine, messages: dict[int, dict[str, Any]], total: int) -> None:
    """Seq 1..total, each carrying its event's stored bytes, in event-time order."""
    assert sorted(messages) == list(range(1, total + 1))
    ordered = [messages[seq] for seq in range(1, total + 1)]
    keys = [(m["event_time"], m["event_id"]) for m in ordered]
    assert keys == sorted(keys)
    for message in ordered[:: max(1, total // 50)] + ordered[-1:]:
        record = store.event(bytes.fromhex(message["event_id"]))
        assert record is not None
        assert message["raw"].encode() == store.read_raw(record)
