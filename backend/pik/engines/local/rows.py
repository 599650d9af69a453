"""Row shapes of the local index, shared by the write path, recovery and verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pik.domain.records import EventRecord

EVENT_COLUMNS = (
    "event_id, content_hash, entity_id, source, event_type, event_time_us, ingest_time_us, "
    "idempotency_key, origin, segment_id, offset, length, sha256, duplicate_count, "
    "conflict_count, last_seen_us"
)
ROW_COLUMNS = (
    "event_id, content_hash, entity_id, source, event_type, event_time_us, ingest_time_us, "
    "idempotency_key, origin, length, sha256, duplicate_count, conflict_count, last_seen_us, "
    "day, segment_id, offset"
)
EventValues = tuple[
    bytes, bytes, str, str, str, int, int, str | None, str, int, bytes, int, int, int, int, int, int
]
"""A new event's row of ``events``, in :data:`ROW_COLUMNS` order: a plain tuple, built once
per event on the hot path and bound as it is. ``segment_id`` and ``offset`` come last, so
the write path can place a batch prepared before it knew where it would be written."""


def placed(row: EventValues, segment_id: int, shift: int) -> EventValues:
    """The row moved into ``segment_id``, its offset shifted by ``shift`` bytes."""
    return (*row[:15], segment_id, row[16] + shift)


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
