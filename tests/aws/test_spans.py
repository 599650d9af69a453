"""Which GETs read a set of events' bytes: neighbours together, far ones and other objects apart."""

from __future__ import annotations

from pik.domain.records import EventRecord
from pik.engines.aws.spans import (
    MAX_GAP_BYTES,
    MAX_SPAN_BYTES,
    MAX_STEP_BYTES,
    Span,
    spans_of,
    steps_of,
)


def record(key: str, offset: int, length: int) -> EventRecord:
    return EventRecord(
        event_id=offset.to_bytes(16, "big"),
        content_hash=b"\0" * 32,
        entity_id="e",
        source="s",
        event_type="t",
        event_time_us=0,
        ingest_time_us=0,
        idempotency_key=None,
        origin="test",
        segment=key,
        offset=offset,
        length=length,
        sha256=b"\0" * 32,
        duplicate_count=0,
        conflict_count=0,
        last_seen_us=0,
    )


def test_neighbours_share_a_get_and_far_ones_or_other_objects_do_not() -> None:
    records = [
        record("b", 0, 10),
        record("a", 500, 100),
        record("a", 0, 100),
        record("a", 100 + MAX_GAP_BYTES, 50),  # a gap read through
        record("a", 200 + 2 * MAX_GAP_BYTES + 1, 5),  # too far: its own GET
    ]
    spans = spans_of(records)
    assert [(s.key, s.start, s.end, s.members) for s in spans] == [
        ("a", 0, 150 + MAX_GAP_BYTES, [2, 1, 3]),
        ("a", 200 + 2 * MAX_GAP_BYTES + 1, 206 + 2 * MAX_GAP_BYTES, [4]),
        ("b", 0, 10, [0]),
    ]


def test_a_get_stays_within_its_cap_unless_one_event_is_larger() -> None:
    step = 1024 * 1024
    records = [record("a", i * step, step) for i in range(20)]
    records.append(record("a", 40 * step, MAX_SPAN_BYTES + 1))
    spans = spans_of(records)
    assert all(s.end - s.start <= MAX_SPAN_BYTES for s in spans[:-1])
    assert spans[-1].end - spans[-1].start == MAX_SPAN_BYTES + 1
    assert sorted(i for s in spans for i in s.members) == list(range(21))


def test_the_gets_sent_at_once_ask_for_a_bounded_number_of_bytes() -> None:
    spans = [Span(f"k{i}", 0, MAX_SPAN_BYTES, [i]) for i in range(20)]
    spans.append(Span("huge", 0, MAX_STEP_BYTES + 1, [20]))
    steps = steps_of(spans)
    assert [len(step) for step in steps] == [8, 8, 4, 1]
    assert all(sum(s.end - s.start for s in step) <= MAX_STEP_BYTES for step in steps[:-1])
    assert [s for step in steps for s in step] == spans
