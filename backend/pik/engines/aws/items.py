"""DynamoDB items of the AWS engine and the engine-neutral records they become."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pik.domain.envelope import Event
from pik.domain.records import AttemptSummary, EventRecord
from pik.engines.aws.shapes import Item, b, event_key, n, s, timeline_sort_key


@dataclass(frozen=True, slots=True)
class Location:
    """Where an event's raw bytes are: an S3 object and a byte range in it."""

    key: str
    offset: int
    length: int
    sha256: bytes


def event_item(
    event: Event,
    origin: str,
    ingest_us: int,
    where: Location,
    group: int,
    committed_with: str | None = None,
) -> Item:
    """The event's item, which is also its claim: stored once ``B#<seg>#<grp>`` commits.

    ``committed_with``: the object of the request committing it, when its bytes are in an
    earlier request's object (``where``) that was written but never committed.
    """
    item: Item = {
        **event_key(event.event_id),
        "ch": b(event.content_hash),
        "ent": s(event.entity_id),
        "src": s(event.source),
        "typ": s(event.event_type),
        "et": n(event.event_time_us),
        "it": n(ingest_us),
        "org": s(origin),
        "seg": s(where.key),
        "off": n(where.offset),
        "len": n(where.length),
        "sha": b(where.sha256),
        "grp": n(group),
        "dup": n(0),
        "cnf": n(0),
        "ls": n(ingest_us),
        "tl_pk": s(event.entity_id),
        "tl_sk": s(timeline_sort_key(event.event_time_us, event.event_id)),
    }
    if event.idempotency_key is not None:
        item["ik"] = s(event.idempotency_key)
    if committed_with is not None and committed_with != where.key:
        item["cg"] = s(committed_with)
    return item


def location_of(item: Mapping[str, Any]) -> Location:
    return Location(
        item["seg"]["S"], int(item["off"]["N"]), int(item["len"]["N"]), _bytes(item["sha"])
    )


def _bytes(value: Mapping[str, Any]) -> bytes:
    raw = value["B"]
    return bytes(raw)


def event_id_of(item: Mapping[str, Any]) -> bytes:
    return bytes.fromhex(item["pk"]["S"][2:])


def content_hash_of(item: Mapping[str, Any]) -> bytes:
    return _bytes(item["ch"])


def event_record(item: Mapping[str, Any]) -> EventRecord:
    key = item.get("ik")
    return EventRecord(
        event_id=event_id_of(item),
        content_hash=_bytes(item["ch"]),
        entity_id=item["ent"]["S"],
        source=item["src"]["S"],
        event_type=item["typ"]["S"],
        event_time_us=int(item["et"]["N"]),
        ingest_time_us=int(item["it"]["N"]),
        idempotency_key=None if key is None else key["S"],
        origin=item["org"]["S"],
        segment=item["seg"]["S"],
        offset=int(item["off"]["N"]),
        length=int(item["len"]["N"]),
        sha256=_bytes(item["sha"]),
        duplicate_count=int(item["dup"]["N"]),
        conflict_count=int(item["cnf"]["N"]),
        last_seen_us=int(item["ls"]["N"]),
    )


def attempt_summary(item: Mapping[str, Any]) -> AttemptSummary:
    _, kind, origin = item["sk"]["S"].split("#", 2)
    return AttemptSummary(
        kind=kind,
        origin=origin,
        count=int(item["n"]["N"]),
        first_seen_us=int(item["fs"]["N"]),
        last_seen_us=int(item["ls"]["N"]),
    )


def number(item: Mapping[str, Any], name: str) -> int:
    value = item.get(name)
    return 0 if value is None else int(value["N"])
