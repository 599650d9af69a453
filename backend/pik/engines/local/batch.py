"""Turns one committed run of frames into index rows, attempts and counters.

Used by the write path and by recovery alike, so an index rebuilt from raw is the index
the write path would have produced.
"""

from __future__ import annotations

import hashlib

from pik.domain.envelope import Event
from pik.domain.instants import US_PER_DAY
from pik.domain.tally import Tally
from pik.engines.local.rows import Attempt, EventValues


class IndexBatch:
    def __init__(self, segment_id: int, late_after_us: int) -> None:
        self.segment_id = segment_id
        self.rows: list[EventValues] = []
        self.attempts: list[Attempt] = []
        self.tally = Tally(late_after_us)

    def event(self, event: Event, origin: str, ingest_us: int, raw_offset: int) -> int:
        """Index a newly stored event; returns its lag in milliseconds."""
        time_us = event.event_time_us
        self.rows.append(
            (
                event.event_id,
                event.content_hash,
                event.entity_id,
                event.source,
                event.event_type,
                time_us,
                ingest_us,
                event.idempotency_key,
                origin,
                len(event.raw),
                hashlib.sha256(event.raw).digest(),
                0,
                0,
                ingest_us,
                time_us // US_PER_DAY,
                self.segment_id,
                raw_offset,
            )
        )
        return self.tally.accepted(event.source, event.entity_id, event.event_time_us, ingest_us)

    def duplicate(self, event_id: bytes, source: str, origin: str, ingest_us: int) -> None:
        self.attempts.append(Attempt(event_id, "duplicate", origin, ingest_us))
        self.tally.duplicate(source, ingest_us)

    def conflict(self, event_id: bytes, source: str, origin: str, ingest_us: int) -> None:
        self.attempts.append(Attempt(event_id, "conflict", origin, ingest_us))
        self.tally.conflict(source, ingest_us)

    def rejection(self, source: str, code: str, ingest_us: int) -> None:
        self.tally.rejected(source, code, ingest_us)
