"""The Lambda handlers on the stack of template.yaml in moto: each function's own
environment (as CloudFormation configured it) leads to the stack's bucket and table."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from api_events import api_event
from aws_requests import RequestLog
from sqs_events import sqs_event

from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws.discovery import stack_outputs
from pik.lambdas import api, queue
from pik.lambdas.store import store_from_env

MakeEvent = Callable[..., bytes]


@dataclass
class Context:
    function_name: str
    aws_request_id: str = "req-1"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:pik"


def as_function(monkeypatch: pytest.MonkeyPatch, output: str) -> Context:
    """Take on the environment CloudFormation gave one of the stack's functions."""
    name = stack_outputs("pik-contract")[output]
    configuration = boto3.client("lambda").get_function_configuration(FunctionName=name)
    for key, value in configuration["Environment"]["Variables"].items():
        monkeypatch.setenv(key, value)
    return Context(name)


def proxy(method: str, path: str, body: str | None = None) -> dict[str, Any]:
    return api_event(method, path, body, user_arn="arn:aws:iam::123456789012:user/producer")


def test_the_api_functions_ingest_and_answer_on_the_stack(
    aws_engine: AwsEngine, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_context = as_function(monkeypatch, "IngestFunctionName")
    ingest = api.make_handler(store_from_env)
    body = (
        "["
        + ",".join(
            [
                make_event(entity_id="lambda-1").decode(),
                '{"nope": 1}',
                make_event(entity_id="lambda-2").decode(),
            ]
        )
        + "]"
    )
    answer = ingest(proxy("POST", "/events", body), ingest_context)
    document = json.loads(answer["body"])
    assert answer["statusCode"] == 200, document
    assert [r["status"] for r in document["results"]] == ["accepted", "rejected", "accepted"]

    query_context = as_function(monkeypatch, "QueryFunctionName")
    query = api.make_handler(store_from_env)
    answer = query(proxy("GET", "/entities/lambda-1/timeline"), query_context)
    events = json.loads(answer["body"])["events"]
    assert answer["statusCode"] == 200 and len(events) == 1
    event = json.loads(
        query(proxy("GET", f"/events/{events[0]['event_id']}"), query_context)["body"]
    )
    assert event["verified"] is True
    assert event["origin"] == "api:arn:aws:iam::123456789012:user/producer"


def test_the_queue_function_retries_what_aws_refused_and_stores_it_once(
    aws_engine: AwsEngine, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = as_function(monkeypatch, "QueueIngestFunctionName")
    url = stack_outputs("pik-contract")["IngestQueueUrl"]
    sqs = boto3.client("sqs")
    bodies = [make_event(entity_id=f"queued-{i}").decode() for i in range(3)] + ["not json"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    event = sqs_event(messages, "ingest")
    log = RequestLog()
    log.fail = lambda _n, service, operation: "SlowDown" if operation == "PutObject" else None
    handler = queue.make_handler(lambda: AwsEngine(AwsConfig.from_env(), session=log.session()))
    failed = handler(event, context)["batchItemFailures"]
    # Every record is retried: none of its events was acknowledged (the bad one's rejection
    # is counted once the store takes the batch).
    assert len(failed) == len(messages)
    log.fail = None
    assert handler(event, context)["batchItemFailures"] == []
    assert handler(event, context)["batchItemFailures"] == []  # redelivered: duplicates
    counts = aws_engine.counts()
    assert (counts["events"], counts["duplicate"]) == (3, 3)
    assert aws_engine.verify().ok
