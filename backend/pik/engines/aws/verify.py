"""`pik verify` for the AWS engine: re-hash every raw object, cross-check index and raw.

Run by an operator (it scans the table; no Lambda role may). Raw objects are immutable and
written whole, so there are no torn tails; what can go wrong is an object missing or
altered, an index entry pointing at the wrong bytes, an event copy nobody indexes (a request that
died between S3 and its commit), or a claim never committed. Void frames (an event another
request claimed first) hold no data and are skipped. An event counts as indexed only once
its commit group is committed.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pik import frames
from pik.domain import instants
from pik.domain.records import EventRecord, Problem, VerifyReport
from pik.engines.aws import shapes
from pik.engines.aws.clients import Clients, unavailable_on_failure
from pik.engines.aws.items import event_record
from pik.engines.aws.plans import DEFERRED_ATTEMPTS, deferred_pause_s
from pik.ports import Progress
from pik.storage_errors import StoreUnavailableError

if TYPE_CHECKING:
    from pik.engines.aws.engine import AwsConfig


def _scan_page(clients: Clients, request: dict[str, Any]) -> dict[str, Any]:
    """One page of the scan. A verify reads the whole table, which on provisioned capacity
    can run into throttling: the page is asked again after a pause, so a long verify is not
    lost to one busy moment."""
    tries = 0
    while True:
        try:
            with unavailable_on_failure("scanning the index"):
                answer: dict[str, Any] = clients.dynamodb.scan(**request)
            return answer
        except StoreUnavailableError:
            if tries == DEFERRED_ATTEMPTS:
                raise
            time.sleep(deferred_pause_s(tries + 3))
            tries += 1


def _indexed(
    clients: Clients, table: str, now_us: int
) -> tuple[dict[str, list[EventRecord]], list[Problem]]:
    """The stored events by object (their group committed), and claims never committed
    that are older than the lease (a request died between its claims and its commit)."""
    from pik.engines.aws.engine import LEASE_US

    by_object: defaultdict[str, list[EventRecord]] = defaultdict(list)
    claims: list[dict[str, Any]] = []
    committed: set[str] = set()
    request: dict[str, Any] = shapes.scan_events(table)
    while True:
        answer = _scan_page(clients, request)
        for item in answer.get("Items", []):
            if item["sk"]["S"] == "B":
                if item["st"]["S"] == shapes.COMMITTED:
                    committed.add(item["pk"]["S"])
            else:
                claims.append(item)
        last = answer.get("LastEvaluatedKey")
        if not last:
            break
        request = {**request, "ExclusiveStartKey": last}
    problems: list[Problem] = []
    for item in claims:
        record = event_record(item)
        group = shapes.group_of(item)
        if group is None or group["pk"]["S"] in committed:
            by_object[record.segment].append(record)
        elif now_us - record.ingest_time_us > LEASE_US:
            problems.append(
                Problem(
                    "stale_claim",
                    "an event claimed and never committed (the request failed before its "
                    "commit; it was never acknowledged, and its next arrival takes it over)",
                    record.segment,
                    record.offset,
                    record.event_id,
                    severity="warning",
                )
            )
    return by_object, problems


def _objects(clients: Clients, bucket: str) -> dict[str, int]:
    found: dict[str, int] = {}
    paginator = clients.s3.get_paginator("list_objects_v2")
    with unavailable_on_failure("listing raw objects"):
        for page in paginator.paginate(Bucket=bucket, Prefix=shapes.RAW_PREFIX):
            for entry in page.get("Contents", []):
                found[entry["Key"]] = int(entry["Size"])
    return found


def _read(clients: Clients, bucket: str, key: str) -> bytes | None:
    try:
        with unavailable_on_failure("reading a raw object"):
            body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"]
    except FileNotFoundError:
        return None
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data


def verify_store(
    clients: Clients, config: AwsConfig, progress: Progress | None = None, now_us: int = 0
) -> VerifyReport:
    indexed, problems = _indexed(clients, config.table, now_us or instants.now_us())
    objects = _objects(clients, config.bucket)
    total = sum(objects.values())
    done = events = 0
    for key in sorted(set(objects) | set(indexed)):
        records = indexed.get(key, [])
        events += len(records)
        data = _read(clients, config.bucket, key) if key in objects else None
        if data is None:
            for record in records:
                problems.append(
                    Problem(
                        "segment_missing",
                        "the raw object this event points at does not exist",
                        key,
                        record.offset,
                        record.event_id,
                    )
                )
            continue
        problems += _check_object(key, data, records)
        done += len(data)
        if progress:
            progress(done, total)
    return VerifyReport(len(objects), events, done, tuple(problems))


def _check_object(key: str, data: bytes, records: list[EventRecord]) -> list[Problem]:
    problems: list[Problem] = []
    if not data.startswith(frames.SEGMENT_MAGIC):
        return [Problem("segment_header", "not a raw segment (bad magic)", key)]
    starts: set[int] = set()
    ended = False
    broken_at = len(data)
    for frame in frames.scan(data, len(frames.SEGMENT_MAGIC), len(data)):
        if isinstance(frame, int):
            problems.append(
                Problem("frame_corrupt", "a frame fails its length or CRC check", key, frame)
            )
            broken_at = frame
            break
        if frame.kind == frames.EVENT:
            starts.add(frame.raw_offset)
        ended = frame.kind == frames.BATCH_END
    if not ended and not problems:
        problems.append(Problem("segment_truncated", "the object lacks its batch-end frame", key))
    for record in records:
        raw = data[record.offset : record.offset + record.length]
        # The hash decides first, as on the local engine: an altered event is a hash
        # mismatch even though its frame's CRC broke the scan, and an intact event past
        # the break is fine. Where a frame is only judged before the break.
        if len(raw) == record.length and hashlib.sha256(raw).digest() != record.sha256:
            problems.append(
                Problem(
                    "event_hash_mismatch",
                    "the raw bytes do not hash to the recorded sha256",
                    key,
                    record.offset,
                    record.event_id,
                )
            )
        elif len(raw) != record.length or (
            record.offset < broken_at and record.offset not in starts
        ):
            problems.append(
                Problem(
                    "event_location_invalid",
                    "the index points at bytes that are not an event's",
                    key,
                    record.offset,
                    record.event_id,
                )
            )
    unindexed = starts - {r.offset for r in records}
    for offset in sorted(unindexed):
        problems.append(
            Problem(
                "orphan_raw_event",
                "an event copy no index entry points at (a request that lost a race for the "
                "same event, or one that failed before indexing; it was never acknowledged)",
                key,
                offset,
                severity="warning",
            )
        )
    return problems
