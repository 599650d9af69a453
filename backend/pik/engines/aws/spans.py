"""Which byte ranges of which S3 objects to GET for a set of events' raw bytes.

Events read together (a replay's batch, a window the processor recomputes) usually sit
close together in few objects, since they were ingested together: one ranged GET per run
of nearby events, not one per event. A gap is read through when it is small (cheaper than
another request); a range is capped so that a Lambda's memory holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pik.domain.records import EventRecord

MAX_GAP_BYTES = 256 * 1024
"""Bytes between two events that are read through rather than split into two GETs: a GET
is a round trip of tens of milliseconds, in which S3 sends a few hundred KB more."""
MAX_SPAN_BYTES = 8 * 1024 * 1024
"""The most one GET asks for (unless one event alone is larger)."""
MAX_STEP_BYTES = 64 * 1024 * 1024
"""The most the GETs sent at once ask for: what a read holds in memory beside the bytes it
keeps (a thousand events read through their gaps could otherwise ask for a gigabyte)."""


@dataclass(slots=True)
class Span:
    """One ranged GET: ``[start, end)`` of the object ``key``, holding ``members`` (indexes
    into the records asked for)."""

    key: str
    start: int
    end: int
    members: list[int] = field(default_factory=list)


def spans_of(records: Sequence[EventRecord]) -> list[Span]:
    """The GETs that read every record's bytes, in a stable order."""
    order = sorted(range(len(records)), key=lambda i: (records[i].segment, records[i].offset))
    spans: list[Span] = []
    for i in order:
        record = records[i]
        end = record.offset + record.length
        last = spans[-1] if spans else None
        if (
            last is not None
            and last.key == record.segment
            and record.offset - last.end <= MAX_GAP_BYTES
            and max(end, last.end) - last.start <= MAX_SPAN_BYTES
        ):
            last.end = max(last.end, end)
        else:
            last = Span(record.segment, record.offset, end)
            spans.append(last)
        last.members.append(i)
    return spans


def steps_of(spans: Sequence[Span]) -> list[list[Span]]:
    """The spans in groups sent at once, each asking for at most ``MAX_STEP_BYTES`` (or
    one span, if larger)."""
    steps: list[list[Span]] = []
    size = 0
    for span in spans:
        if steps and size + span.end - span.start <= MAX_STEP_BYTES:
            steps[-1].append(span)
            size += span.end - span.start
        else:
            steps.append([span])
            size = span.end - span.start
    return steps
