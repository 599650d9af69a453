"""Counters maintained at ingest time, aggregated per batch (never one write per event).

The same tally feeds both engines: per-minute rates per source, a lag histogram, rejection
reasons, coverage per entity per hour and per day, and the entity directory.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field

from pik.domain.instants import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, floor_to
from pik.domain.lag import LAG_BOUNDS_MS, LAG_LABELS

GRANULARITIES = {"hour": US_PER_HOUR, "day": US_PER_DAY}


@dataclass(slots=True)
class RateRow:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    late: int = 0
    conflict: int = 0
    lag: list[int] = field(default_factory=lambda: [0] * len(LAG_LABELS))


@dataclass(slots=True)
class EntityRow:
    first_event_us: int
    last_event_us: int
    count: int = 0


@dataclass(slots=True)
class Tally:
    late_after_us: int
    rates: dict[tuple[int, str], RateRow] = field(default_factory=dict)
    rejections: defaultdict[tuple[int, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    coverage: defaultdict[tuple[str, str, str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """(entity_id, source, granularity, window_start_us) -> events."""
    entities: dict[tuple[str, str], EntityRow] = field(default_factory=dict)

    def _rate(self, ingest_us: int, source: str) -> RateRow:
        key = (floor_to(ingest_us, US_PER_MINUTE), source)
        row = self.rates.get(key)
        if row is None:
            row = self.rates[key] = RateRow()
        return row

    def accepted(self, source: str, entity_id: str, event_time_us: int, ingest_us: int) -> int:
        """Count an accepted event; returns its lag in milliseconds."""
        lag_us = ingest_us - event_time_us
        lag_ms = lag_us // 1000
        key = (ingest_us - ingest_us % US_PER_MINUTE, source)
        row = self.rates.get(key)
        if row is None:
            row = self.rates[key] = RateRow()
        row.accepted += 1
        row.lag[bisect_right(LAG_BOUNDS_MS, lag_ms)] += 1  # lag_bucket, inlined
        if lag_us > self.late_after_us:  # is_late, inlined
            row.late += 1
        coverage = self.coverage
        coverage[(entity_id, source, "hour", event_time_us - event_time_us % US_PER_HOUR)] += 1
        coverage[(entity_id, source, "day", event_time_us - event_time_us % US_PER_DAY)] += 1
        pair = (entity_id, source)
        entity = self.entities.get(pair)
        if entity is None:
            self.entities[pair] = EntityRow(event_time_us, event_time_us, 1)
        else:
            if event_time_us < entity.first_event_us:
                entity.first_event_us = event_time_us
            elif event_time_us > entity.last_event_us:
                entity.last_event_us = event_time_us
            entity.count += 1
        return lag_ms

    def duplicate(self, source: str, ingest_us: int) -> None:
        self._rate(ingest_us, source).duplicate += 1

    def conflict(self, source: str, ingest_us: int) -> None:
        row = self._rate(ingest_us, source)
        row.conflict += 1
        row.rejected += 1
        self.rejections[(floor_to(ingest_us, US_PER_MINUTE), source, "idempotency_conflict")] += 1

    def rejected(self, source: str, code: str, ingest_us: int) -> None:
        self._rate(ingest_us, source).rejected += 1
        self.rejections[(floor_to(ingest_us, US_PER_MINUTE), source, code)] += 1

    def merge(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        for minute, theirs in other.rates.items():
            mine = self.rates.get(minute)
            if mine is None:
                self.rates[minute] = theirs
                continue
            mine.accepted += theirs.accepted
            mine.duplicate += theirs.duplicate
            mine.rejected += theirs.rejected
            mine.late += theirs.late
            mine.conflict += theirs.conflict
            mine.lag = [a + b for a, b in zip(mine.lag, theirs.lag, strict=True)]
        for reason, count in other.rejections.items():
            self.rejections[reason] += count
        for window, count in other.coverage.items():
            self.coverage[window] += count
        for pair, entity in other.entities.items():
            known = self.entities.get(pair)
            if known is None:
                self.entities[pair] = entity
                continue
            known.first_event_us = min(known.first_event_us, entity.first_event_us)
            known.last_event_us = max(known.last_event_us, entity.last_event_us)
            known.count += entity.count
