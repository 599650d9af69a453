"""Raw bytes that are gone read the same on both engines: the lookup says so, never raises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

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
