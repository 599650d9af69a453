"""Classify a batch of arrivals against what the store already holds.

Pure: the engine supplies the content hashes it already knows for the batch's ids (read
under its write lock), and gets back what to store and what to count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pik.domain.envelope import Event
from pik.domain.rejection import Rejection

CONFLICT = Rejection(
    "idempotency_conflict",
    "idempotency_key",
    "this idempotency key was already used for an event with other content; the original is "
    "kept and this attempt is recorded as a conflict (see `pik event`)",
)


@dataclass(slots=True)
class Arrival:
    """One item of a request as the engine sees it."""

    origin: str
    """Which request channel it came through (cli, http, a label given by the producer)."""
    event: Event | None = None
    rejection: Rejection | None = None
    source: str = "(unknown)"
    """The source to count a rejection under (best effort: the envelope may be unreadable)."""


@dataclass(slots=True)
class Classified:
    new: list[int] = field(default_factory=list)
    """Positions of events stored for the first time."""
    duplicates: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)


def classify(arrivals: Sequence[Arrival], known: Mapping[bytes, bytes]) -> Classified:
    """Split arrivals into new events, duplicates, idempotency conflicts and rejections.

    ``known`` maps event id to content hash for ids already stored. Within the batch the
    first arrival of an id wins, exactly as if the arrivals had come one by one.
    """
    result = Classified()
    seen: dict[bytes, bytes] = dict(known)
    for position, arrival in enumerate(arrivals):
        event = arrival.event
        if event is None:
            result.rejected.append(position)
            continue
        stored = seen.get(event.event_id)
        if stored is None:
            seen[event.event_id] = event.content_hash
            result.new.append(position)
        elif stored == event.content_hash:
            result.duplicates.append(position)
        else:
            result.conflicts.append(position)
    return result
