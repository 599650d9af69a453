"""Queries an investigator asks: one event, an entity's timeline, coverage, rates, entities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pik.domain.cursor import Cursor
from pik.domain.records import (
    AttemptSummary,
    EntityRecord,
    EventRecord,
    RateRecord,
    WindowCount,
)
from pik.domain.tally import GRANULARITIES
from pik.domain.windows import Gap, find_gaps
from pik.ports import EventStore
from pik.services.raw import verified

MAX_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class EventDetail:
    record: EventRecord
    raw: bytes | None
    """The stored bytes (``None`` when they could not be read; see ``read_error``)."""
    verified: bool
    """The bytes re-hashed just now match the sha256 recorded at ingest."""
    attempts: list[AttemptSummary]
    read_error: str | None = None


def event_detail(store: EventStore, event_id: bytes) -> EventDetail | None:
    record = store.event(event_id)
    if record is None:
        return None
    try:
        raw = store.read_raw(record)
    except OSError as exc:
        return EventDetail(record, None, False, store.attempts(event_id), str(exc))
    short = None
    if len(raw) < record.length:  # the file ends before the event does: cut, not altered
        short = f"only {len(raw)} of its {record.length} bytes are stored (the file was cut short)"
    return EventDetail(record, raw, verified(record, raw), store.attempts(event_id), short)


@dataclass(frozen=True, slots=True)
class TimelinePage:
    events: list[EventRecord]
    next: str | None
    prev: str | None


def timeline_page(
    store: EventStore,
    entity_id: str,
    start_us: int,
    end_us: int,
    limit: int = 100,
    cursor: str | None = None,
    latest: bool = False,
) -> TimelinePage:
    """One page of an entity's events in ``[start, end)``, with cursors both ways.

    Without a cursor the first page is the earliest events, or with ``latest`` the most
    recent ones (the page ending at ``end``).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    position = Cursor.decode(cursor, entity_id) if cursor else None
    if position is not None and position.forward and position.event_time_us >= end_us:
        # Its page would be empty, which reads as "no more events": a cursor pasted into
        # another range says so instead. (Not a `prev` before the start: a relative --from
        # moves on between pages, and then there is rightly nothing older in the range.)
        raise ValueError(
            "this cursor continues past the end of the range given (--from/--to); page with "
            "the range it came from"
        )
    if position is None and latest:
        # Every stored position sorts before (end, b""): the page that ends at `end`.
        position = Cursor(False, end_us, b"")
    if position is not None and not position.forward:
        key = (position.event_time_us, position.event_id)
        rows = store.timeline(entity_id, start_us, end_us, limit + 1, before=key)
        more_before = len(rows) > limit
        rows = rows[1:] if more_before else rows
        if not rows:
            return TimelinePage([], None, None)
        newer = bool(position.event_id)  # a real cursor's own event lies after this page
        return TimelinePage(
            rows,
            Cursor(True, rows[-1].event_time_us, rows[-1].event_id).encode(entity_id)
            if newer
            else None,
            Cursor(False, rows[0].event_time_us, rows[0].event_id).encode(entity_id)
            if more_before
            else None,
        )
    after = (position.event_time_us, position.event_id) if position else None
    rows = store.timeline(entity_id, start_us, end_us, limit + 1, after=after)
    more_after = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return TimelinePage([], None, None)
    first = rows[0]
    earlier = position is not None and bool(
        store.timeline(entity_id, start_us, end_us, 1, before=(first.event_time_us, first.event_id))
    )
    return TimelinePage(
        rows,
        Cursor(True, rows[-1].event_time_us, rows[-1].event_id).encode(entity_id)
        if more_after
        else None,
        Cursor(False, first.event_time_us, first.event_id).encode(entity_id) if earlier else None,
    )


@dataclass(frozen=True, slots=True)
class CoverageReport:
    granularity: str
    windows: list[WindowCount]
    gaps: list[Gap]


def coverage_report(
    store: EventStore,
    start_us: int,
    end_us: int,
    granularity: str,
    entity_ids: Sequence[str] | None = None,
    source: str | None = None,
) -> CoverageReport:
    """Event counts per entity per window, and the gaps between an entity's windows."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity is one of {', '.join(GRANULARITIES)}")
    step = GRANULARITIES[granularity]
    # Windows are [start, end): the one holding `start` counts when it overlaps the range.
    first_window = start_us - start_us % step
    windows = store.coverage(granularity, first_window, end_us, entity_ids or None, source)
    return CoverageReport(granularity, windows, find_gaps(windows, step))


@dataclass(frozen=True, slots=True)
class RatesReport:
    rows: list[RateRecord]
    reasons: list[tuple[str, str, int]]
    """(source, code, count) of rejections over the same minutes."""


def rates_report(
    store: EventStore, start_us: int, end_us: int, source: str | None = None
) -> RatesReport:
    return RatesReport(
        store.rates(start_us, end_us, source), store.rejection_reasons(start_us, end_us, source)
    )


def list_entities(
    store: EventStore,
    prefix: str = "",
    source: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[EntityRecord]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    return store.entities(prefix, source, limit, after)


@dataclass(frozen=True, slots=True)
class EntityPage:
    entities: list[EntityRecord]
    next: str | None
    """The ``after`` of the next page, only when there is one."""


def entity_page(
    store: EventStore,
    prefix: str = "",
    source: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> EntityPage:
    """A page of entities; asks for one more, so a page that ends the list says so."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    rows = store.entities(prefix, source, limit + 1, after)
    more = len(rows) > limit
    return EntityPage(rows[:limit], rows[limit - 1].entity_id if more else None)
