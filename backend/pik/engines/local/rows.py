"""Row shapes of the local index, shared by the write path, recovery and verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pik.domain.records import EventRecord


@dataclass(slots=True)  # not frozen: built once per event on the hot path
class EventRow:
    event_id: bytes
    content_hash: bytes
    entity_id: str
    source: str
    event_type: str
    event_time_us: int
    ingest_time_us: int
    idempotency_key: str | None
    origin: str
    segment_id: int
    offset: int
    length: int
    sha256: bytes
    duplicate_count: int = 0
    conflict_count: int = 0
    last_seen_us: int = 0


EVENT_COLUMNS = (
    "event_id, content_hash, entity_id, source, event_type, event_time_us, ingest_time_us, "
    "idempotency_key, origin, segment_id, offset, length, sha256, duplicate_count, "
    "conflict_count, last_seen_us"
)
INSERT_COLUMNS = EVENT_COLUMNS + ", day"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A later arrival of a stored event: a duplicate, or a conflicting idempotency key."""

    event_id: bytes
    kind: str
    origin: str
    ingest_time_us: int


@dataclass(frozen=True, slots=True)
class SegmentRow:
    segment_id: int
    created_us: int
    committed_end: int
    sealed_us: int | None
    sha256: str | None
    torn_bytes: int


def segment_name(segment_id: int) -> str:
    return f"{segment_id:08d}"


def event_record(row: tuple[Any, ...]) -> EventRecord:
    values = list(row)
    values[9] = segment_name(values[9])
    return EventRecord(*values)
