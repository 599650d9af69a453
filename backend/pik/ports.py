"""The storage port every engine implements and every service uses.

A service never knows which engine it runs on; the contract tests run each engine
against this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pik.domain.arrivals import Arrival
from pik.domain.limits import Limits
from pik.domain.outcome import Outcome
from pik.domain.records import (
    AttemptSummary,
    EntityRecord,
    EventRecord,
    RateRecord,
    VerifyReport,
    WindowCount,
)

Progress = Callable[[int, int], None]
"""Called with (done, total) as long work advances."""


class EventStore(Protocol):
    limits: Limits

    def commit(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        """Store a batch durably and index it; one outcome per arrival, in order."""
        ...

    def event(self, event_id: bytes) -> EventRecord | None: ...

    def attempts(self, event_id: bytes) -> list[AttemptSummary]: ...

    def read_raw(self, record: EventRecord) -> bytes:
        """The raw bytes the record points at, exactly as stored (not yet verified)."""
        ...

    def timeline(
        self,
        entity_id: str,
        start_us: int,
        end_us: int,
        limit: int,
        after: tuple[int, bytes] | None = None,
        before: tuple[int, bytes] | None = None,
    ) -> list[EventRecord]: ...

    def coverage(
        self,
        granularity: str,
        start_us: int,
        end_us: int,
        entity_ids: Sequence[str] | None,
        source: str | None,
    ) -> list[WindowCount]:
        """Non-empty windows in ``[start, end)``, ordered by window, then entity."""
        ...

    def rates(self, start_us: int, end_us: int, source: str | None) -> list[RateRecord]: ...

    def rejection_reasons(
        self, start_us: int, end_us: int, source: str | None
    ) -> list[tuple[str, str, int]]: ...

    def entities(
        self, prefix: str, source: str | None, limit: int, after: str | None
    ) -> list[EntityRecord]: ...

    def counts(self) -> dict[str, int]:
        """Totals: events, entities, accepted, duplicate, rejected, late."""
        ...

    def verify(self, progress: Progress | None = None) -> VerifyReport: ...

    def close(self) -> None: ...
