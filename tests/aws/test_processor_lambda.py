"""The processor function's handler on the template's stack in moto: replay messages in,
versions out; records whose window cannot be computed go back to the queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import boto3
import orjson
import pytest
from lambda_context import FakeContext as Context
from sqs_events import bodies_event

from pik.domain.instants import parse_instant
from pik.domain.records import EventRecord
from pik.domain.versions import AggregateSpec, Version, compute, next_version
from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws.clients import Clients
from pik.engines.aws.versions import AwsVersionStore, WindowTooLargeError
from pik.lambdas import processor
from pik.services.ingest import ingest_batch
from pik.services.processor import window_events

MakeEvent = Callable[..., bytes]
CONTEXT = Context(function_name="pik-processor")
SPEC = AggregateSpec("day", "/amount")
DAY = parse_instant("2026-11-01T00:00:00Z")


def touch(entity_id: str, time: str) -> bytes:
    return orjson.dumps({"entity_id": entity_id, "event_time": time, "replay_id": "1" * 32})


def test_windows_are_computed_and_unreadable_ones_retried(
    aws_engine: AwsEngine, aws_config: AwsConfig, make_event: MakeEvent
) -> None:
    events = [
        make_event(entity_id=e, event_time="2026-11-01T10:00:00Z", payload={"amount": a})
        for e, a in (("good", 5), ("lost", 7))
    ]
    for event in events:  # one raw object each
        ingest_batch(aws_engine, [event], "test")
    [lost] = window_events(aws_engine, "lost", DAY, DAY + SPEC.step_us)
    # Only a test can do this: the bucket policy denies deletes (moto's stack runs without it).
    boto3.client("s3").delete_object(Bucket=aws_config.bucket, Key=lost.segment)

    versions = AwsVersionStore(Clients(aws_config.region), aws_config.table)
    handler = processor.make_handler(lambda: (aws_engine, versions), lambda: SPEC)
    event = bodies_event(
        touch("good", "2026-11-01T10:00:00Z"),
        touch("good", "2026-11-01T11:00:00Z"),  # same window: computed once
        touch("lost", "2026-11-01T10:00:00Z"),
        b"not a replay message",
        touch("a" * 3000, "2026-11-01T10:00:00Z"),  # no stored id is so long: never a key
    )
    answer = handler(event, CONTEXT)
    failed = sorted(f["itemIdentifier"] for f in answer["batchItemFailures"])
    assert failed == ["msg-2", "msg-3", "msg-4"]
    [v1] = versions.history(SPEC.spec_id, "good", DAY)
    assert v1.aggregate.total == Decimal(5) and v1.replay_id == "1" * 32
    assert versions.history(SPEC.spec_id, "lost", DAY) == []
    # Delivered again: nothing changes for the window already computed.
    again = handler(bodies_event(touch("good", "2026-11-01T10:00:00Z")), CONTEXT)  # type: ignore[arg-type]
    assert again["batchItemFailures"] == []
    assert versions.history(SPEC.spec_id, "good", DAY) == [v1]


def test_the_spec_comes_from_the_function_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("PIK_PROCESSOR_WINDOW", "hour")
    monkeypatch.setenv("PIK_PROCESSOR_SUM", "/amount")
    assert processor.spec_from_env() == AggregateSpec("hour", "/amount")
    monkeypatch.setenv("PIK_PROCESSOR_SUM", "")
    monkeypatch.delenv("PIK_PROCESSOR_WINDOW")
    assert processor.spec_from_env() == AggregateSpec("day", None)


def test_pik_versions_reads_a_stacks_versions(
    aws_engine: AwsEngine, aws_config: AwsConfig, make_event: MakeEvent
) -> None:
    from click.testing import CliRunner

    from pik.cli.main import cli

    event = make_event(entity_id="c1", event_time="2026-11-01T10:00:00Z", payload={"amount": 3})
    ingest_batch(aws_engine, [event], "test")
    versions = AwsVersionStore(Clients(aws_config.region), aws_config.table)
    handler = processor.make_handler(lambda: (aws_engine, versions), lambda: SPEC)
    handler(bodies_event(touch("c1", "2026-11-01T10:00:00Z")), CONTEXT)
    result = CliRunner().invoke(
        cli, ["--stack", "pik-contract", "--json", "versions", "list", "c1", "--sum", "/amount"]
    )
    assert result.exit_code == 0, result.output
    [only] = orjson.loads(result.stdout)["versions"]
    assert only["version"] == 1 and only["aggregate"]["total"] == "3"


def test_a_stack_deployed_with_the_processor_runs_it_with_its_own_environment(
    moto_aws: None, make_event: MakeEvent, monkeypatch: Any
) -> None:
    from moto_stack import create_stack

    outputs = create_stack(
        "pik-processing",
        "us-east-1",
        {"EnableProcessor": "true", "ProcessorWindow": "hour", "ProcessorSum": "/amount"},
    )
    configuration = boto3.client("lambda").get_function_configuration(
        FunctionName=outputs["ProcessorFunctionName"]
    )
    for key, value in configuration["Environment"]["Variables"].items():
        monkeypatch.setenv(key, value)
    engine, versions = processor.parts_from_env()
    event = make_event(entity_id="c9", event_time="2026-11-01T10:20:00Z", payload={"amount": 4})
    ingest_batch(engine, [event], "test")
    handler = processor.make_handler(lambda: (engine, versions))  # the spec from the environment
    answer = handler(bodies_event(touch("c9", "2026-11-01T10:20:00Z")), CONTEXT)
    assert answer["batchItemFailures"] == []
    hourly = AggregateSpec("hour", "/amount")
    [v1] = versions.history(hourly.spec_id, "c9", parse_instant("2026-11-01T10:00:00Z"))
    assert v1.aggregate.total == Decimal(4)
    # `pik versions` finds them with no --by or --sum: the stack says what its processor sums.
    from click.testing import CliRunner

    from pik.cli.main import cli

    result = CliRunner().invoke(
        cli, ["--stack", "pik-processing", "--json", "versions", "list", "c9"]
    )
    assert result.exit_code == 0, result.output
    [only] = orjson.loads(result.stdout)["versions"]
    assert only["aggregate"]["total"] == "4"
    daily = CliRunner().invoke(
        cli, ["--stack", "pik-processing", "versions", "list", "c9", "--by", "day"]
    )
    assert "no versions by day" in daily.output


def test_a_stack_without_the_processor_has_no_processor_function(aws_config: AwsConfig) -> None:
    from pik.engines.aws.discovery import stack_outputs

    assert "ProcessorFunctionName" not in stack_outputs("pik-contract")


def _version_with_types(types: int) -> Version:
    base = EventRecord(
        event_id=b"\0" * 16,
        content_hash=b"c" * 32,
        entity_id="c1",
        source="shop",
        event_type="t",
        event_time_us=DAY,
        ingest_time_us=DAY,
        idempotency_key=None,
        origin="test",
        segment="raw/x",
        offset=0,
        length=10,
        sha256=b"s" * 32,
        duplicate_count=0,
        conflict_count=0,
        last_seen_us=DAY,
    )
    records = [
        replace(
            base, event_id=n.to_bytes(16, "big"), event_type=f"{n:0128d}", event_time_us=DAY + n
        )
        for n in range(types)
    ]
    aggregate = compute(SPEC, records, [{"amount": 1}] * types, 0)
    version = next_version(SPEC, "c1", DAY, None, records, aggregate, None, DAY)
    assert version is not None
    return version


def test_a_version_too_large_for_one_item_is_refused_by_its_measured_size(
    aws_config: AwsConfig,
) -> None:
    versions = AwsVersionStore(Clients(aws_config.region), aws_config.table)
    # 2,800 event types of 128 characters: far fewer ids than an item can hold, but the
    # type counts alone pass 400 KB.
    with pytest.raises(
        WindowTooLargeError, match=r"2,800 events .* \([\d,]+ bytes\); compute hourly"
    ):
        versions.add(_version_with_types(2_800))
    assert versions.history(SPEC.spec_id, "c1", DAY) == []
    assert versions.add(_version_with_types(2_000))  # about 290 KB: written
    [written] = versions.history(SPEC.spec_id, "c1", DAY)
    assert len(written.aggregate.by_event_type) == 2_000
