"""What the store answers with: engine-neutral records shared by every engine and service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event as the index knows it (without its bytes)."""

    event_id: bytes
    content_hash: bytes
    entity_id: str
    source: str
    event_type: str
    event_time_us: int
    ingest_time_us: int
    idempotency_key: str | None
    origin: str
    segment: str
    """Engine-specific name of the segment holding the raw bytes."""
    offset: int
    length: int
    sha256: bytes
    duplicate_count: int
    conflict_count: int
    last_seen_us: int

    @property
    def lag_ms(self) -> int:
        return (self.ingest_time_us - self.event_time_us) // 1000


@dataclass(frozen=True, slots=True)
class AttemptSummary:
    """Later arrivals of a stored event through one origin: duplicates or conflicts."""

    kind: str
    origin: str
    count: int
    first_seen_us: int
    last_seen_us: int


@dataclass(frozen=True, slots=True)
class RateRecord:
    minute_us: int
    source: str
    accepted: int
    duplicate: int
    rejected: int
    late: int
    conflict: int
    lag: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EntityRecord:
    entity_id: str
    sources: tuple[str, ...]
    first_event_us: int
    last_event_us: int
    count: int


class WindowCount(NamedTuple):
    """Events of one entity in one window (a tuple: coverage returns many of these)."""

    entity_id: str
    window_start_us: int
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, by design


@dataclass(frozen=True, slots=True)
class Problem:
    """Something `verify` found wrong (or, with ``severity`` warning, worth knowing)."""

    kind: str
    message: str
    segment: str | None = None
    offset: int | None = None
    event_id: bytes | None = None
    severity: str = "error"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    segments: int
    events: int
    bytes_checked: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)
