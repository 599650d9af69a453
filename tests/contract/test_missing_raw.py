"""Raw bytes that are gone or altered read the same on both engines: the lookup and
`verify` say so, never raise, and blame only the event that was damaged."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from tamper import AlterRaw

from pik.ports import EventStore
from pik.services.ingest import ingest_batch
from pik.services.query import event_detail


def test_an_event_whose_raw_bytes_are_gone_is_reported_unverified(
    store: EventStore, make_event: Callable[..., bytes], request: pytest.FixtureRequest
) -> None:
    [outcome] = ingest_batch(store, [make_event(entity_id="gone")], "test")
    assert outcome.event_id is not None
    record = store.event(outcome.event_id)
    assert record is not None
    if request.node.callspec.params["store"] == "local":
        segment: Path = store.layout.segment(int(record.segment))  # type: ignore[attr-defined]
        segment.unlink()
    else:
        # Only a test can: the bucket policy denies deletes (moto's stack runs without it).
        bucket = request.getfixturevalue("aws_config").bucket
        boto3.client("s3").delete_object(Bucket=bucket, Key=record.segment)
    with pytest.raises(FileNotFoundError):
        store.read_raw(record)
    detail = event_detail(store, outcome.event_id)
    assert detail is not None and detail.raw is None and not detail.verified
    assert detail.read_error


def test_verify_blames_the_altered_event_and_not_its_neighbours(
    store: EventStore, make_event: Callable[..., bytes], alter_raw: AlterRaw
) -> None:
    events = [make_event(entity_id=f"n{i}", payload={"amount": 100 + i}) for i in range(3)]
    outcomes = ingest_batch(store, events, "test")
    records = [store.event(o.event_id or b"") for o in outcomes]
    assert all(records)
    first, *rest = sorted((r for r in records if r), key=lambda r: r.offset)
    assert {r.segment for r in rest} == {first.segment}  # one batch, one segment
    alter_raw(first, b"100", b"999")
    report = store.verify()
    blamed = [(p.kind, p.event_id) for p in report.problems if p.event_id]
    assert blamed == [("event_hash_mismatch", first.event_id)]
    assert {p.kind for p in report.problems} == {"event_hash_mismatch", "frame_corrupt"}
    for record in rest:
        detail = event_detail(store, record.event_id)
        assert detail is not None and detail.verified
    detail = event_detail(store, first.event_id)
    assert detail is not None and not detail.verified


def test_many_events_read_together_come_back_in_the_order_asked(
    store: EventStore, make_event: Callable[..., bytes], request: pytest.FixtureRequest
) -> None:
    """``read_raw_many`` is ``read_raw`` for each, however the records lie (several
    batches, so several segments or objects, asked for out of order); and one missing
    makes it raise as ``read_raw`` does."""
    raws = [
        make_event(entity_id=f"many-{i % 3}", payload={"n": i, "pad": "x" * (i * 37 % 500)})
        for i in range(40)
    ]
    for start in range(0, 40, 13):
        ingest_batch(store, raws[start : start + 13], "test")
    records = [r for e in range(3) for r in store.timeline(f"many-{e}", 0, 2**62, 100)]
    random.Random(3).shuffle(records)
    assert store.read_raw_many(records) == [store.read_raw(r) for r in records]
    assert sorted(store.read_raw_many(records)) == sorted(raws)
    assert store.read_raw_many([]) == []
    if request.node.callspec.params["store"] == "local":
        store.layout.segment(int(records[0].segment)).unlink()  # type: ignore[attr-defined]
    else:
        bucket = request.getfixturevalue("aws_config").bucket
        boto3.client("s3").delete_object(Bucket=bucket, Key=records[0].segment)
    with pytest.raises(FileNotFoundError):
        store.read_raw_many(records)
