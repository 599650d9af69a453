"""The ports every engine implements and every service uses: the event store, and the
replay ledger and sinks.

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
from pik.domain.replay import AuditRecord, Plan, ReplayRun
from pik.domain.versions import Version

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

    def read_raw_many(self, records: Sequence[EventRecord]) -> list[bytes]:
        """Each record's raw bytes, in order, as ``read_raw`` (``FileNotFoundError`` when
        any is missing); one read for records stored close together where the engine can."""
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


class ReplayLedger(Protocol):
    """Where replay plans, runs and audit records are kept: never derived from raw, never
    rebuilt, so an engine keeps them apart from its index.

    Every write is durable before it returns, and raises (``StoreUnavailableError``) when
    it cannot be made: a replay fails closed on a ledger it cannot write.
    """

    def save_plan(self, plan: Plan, audit: AuditRecord) -> None:
        """Keep a plan and its audit record together (a plan id is never saved twice)."""
        ...

    def plan(self, plan_id: str) -> Plan | None: ...

    def confirm(self, plan_id: str, run: ReplayRun, audit: AuditRecord) -> None:
        """Record the plan as confirmed, start ``run`` and audit it, all at once, if the
        plan was not confirmed before; else raise ``ReplayError`` with code
        ``plan_already_confirmed`` and write nothing."""
        ...

    def run(self, replay_id: str) -> ReplayRun | None: ...

    def runs(self, limit: int) -> list[ReplayRun]:
        """The most recently started runs first."""
        ...

    def advance(self, replay_id: str, sent: int, now_us: int) -> None:
        """Record that messages up to ``sent`` went out (never moves backwards)."""
        ...

    def finish(self, replay_id: str, status: str, now_us: int, audit: AuditRecord) -> None:
        """End a running run with ``status`` and audit it, at once; a run that has ended
        already is left as it is."""
        ...

    def request_cancel(self, replay_id: str, audit: AuditRecord) -> bool:
        """Ask a running run to stop at its next message batch; False if it is not running."""
        ...

    def set_rate(self, replay_id: str, rate: int) -> bool:
        """Give a running run another rate, what it is sent at from then on (the resume
        that asked for it is audited); False, writing nothing, unless it is running."""
        ...

    def audit(self, record: AuditRecord) -> None: ...

    def audit_log(self, since_us: int, limit: int) -> list[AuditRecord]:
        """Audit records at or after ``since_us``, oldest first."""
        ...

    def close(self) -> None: ...


class ReplaySink(Protocol):
    """Where a run's messages go (a file, a queue). ``send`` returns once every message
    is delivered durably, or raises and the run stops; messages may be delivered twice
    after a crash, never lost."""

    max_batch: int
    """Messages one ``send`` takes at most."""

    def send(self, messages: Sequence[bytes]) -> None: ...

    def close(self) -> None: ...


class VersionStore(Protocol):
    """Where the processor keeps aggregate versions: written once each, never changed.
    Like the ledger, not derived from raw alone (a version records when and why it was
    computed), so an engine keeps it apart from its index."""

    def latest(self, spec_id: str, entity_id: str, window_start_us: int) -> Version | None: ...

    def add(self, version: Version) -> bool:
        """Write a new version; False, writing nothing, when its number exists already
        (another processor computed that window at the same time)."""
        ...

    def history(self, spec_id: str, entity_id: str, window_start_us: int) -> list[Version]:
        """Every version of one window, oldest first."""
        ...

    def windows(self, spec_id: str, entity_id: str, start_us: int, end_us: int) -> list[Version]:
        """The latest version of each of an entity's windows starting in ``[start, end)``,
        in window order."""
        ...

    def close(self) -> None: ...
