"""Build a batch's frames, index rows and counters before taking the write lock.

Most batches hold only new events. Everything about them but their place in the segment
and the check against the index can be built while another batch holds the lock, so two
producers overlap. The lock holder then only looks the ids up, and — when none is stored
yet — shifts the prepared offsets to the segment's end and writes. A batch with a
duplicate or a conflict takes the full path under the lock instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pik import frames
from pik.domain.arrivals import Arrival
from pik.domain.envelope import Event
from pik.domain.outcome import Outcome, Status
from pik.engines.local.batch import IndexBatch
from pik.engines.local.rows import placed


@dataclass(slots=True)
class PreparedBatch:
    arrivals: Sequence[Arrival]
    buffer: bytearray
    """Frames of every arrival, in order, without the batch-end frame."""
    index: IndexBatch
    """Rows with offsets relative to the buffer; counters as if every event were new."""
    outcomes: list[Outcome]
    """Outcomes as if every event were new."""
    ingest_us: int


def prepare(arrivals: Sequence[Arrival], ingest_us: int, late_after_us: int) -> PreparedBatch:
    index = IndexBatch(0, late_after_us)
    buffer = bytearray()
    outcomes: list[Outcome] = []
    prefixes: dict[str, bytes] = {}
    for arrival in arrivals:
        event = arrival.event
        if event is None:
            assert arrival.rejection is not None
            buffer += rejection_frame(arrival, ingest_us)
            index.rejection(arrival.source, arrival.rejection.code, ingest_us)
            outcomes.append(Outcome(Status.REJECTED, rejection=arrival.rejection))
            continue
        origin = arrival.origin
        prefix = prefixes.get(origin)
        if prefix is None:
            prefix = prefixes[origin] = frames.origin_prefix(origin)
        raw_at = frames.append_event_frame(buffer, ingest_us, prefix, event.raw)
        lag_ms = index.event(event, origin, ingest_us, raw_at)
        outcomes.append(Outcome(Status.ACCEPTED, event.event_id, lag_ms))
    return PreparedBatch(arrivals, buffer, index, outcomes, ingest_us)


def rejection_frame(arrival: Arrival, ingest_us: int) -> bytes:
    assert arrival.rejection is not None
    return frames.record_frame(
        frames.REJECTION,
        ingest_us,
        {
            "code": arrival.rejection.code,
            "field": arrival.rejection.field,
            "source": arrival.source,
            "origin": arrival.origin,
        },
    )


def combine(batches: Sequence[PreparedBatch]) -> PreparedBatch:
    """One batch of several prepared ones, in order (group commit)."""
    first = batches[0]
    if len(batches) == 1:
        return first
    for later in batches[1:]:
        shift = len(first.buffer)
        first.buffer += later.buffer
        first.index.rows.extend(placed(row, 0, shift) for row in later.index.rows)
        first.index.tally.merge(later.index.tally)
        first.outcomes.extend(later.outcomes)
    first.arrivals = [a for b in batches for a in b.arrivals]
    first.ingest_us = max(b.ingest_us for b in batches)
    return first


def new_events_only(events: Sequence[Event], stored: dict[bytes, bytes]) -> bool:
    """True when no event is stored yet and none repeats within the batch."""
    if stored:
        return False
    return len({e.event_id for e in events}) == len(events)
