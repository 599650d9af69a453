"""Aggregate versions, pure: specs, JSON pointers, aggregates, version numbering, diffs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pik.domain.records import EventRecord
from pik.domain.replay import set_digest
from pik.domain.versions import (
    Aggregate,
    AggregateSpec,
    SpecError,
    Version,
    compute,
    diff,
    next_version,
    pointer_value,
)

MINUTE = 60_000_000


def record(
    n: int, *, lag_us: int = 0, event_type: str = "order", source: str = "shop"
) -> EventRecord:
    time_us = 1_800_000_000_000_000 + n * MINUTE
    return EventRecord(
        event_id=bytes([n]) * 16,
        content_hash=b"c" * 32,
        entity_id="customer-1",
        source=source,
        event_type=event_type,
        event_time_us=time_us,
        ingest_time_us=time_us + lag_us,
        idempotency_key=None,
        origin="test",
        segment="1",
        offset=0,
        length=10,
        sha256=bytes([n]) * 32,
        duplicate_count=0,
        conflict_count=0,
        last_seen_us=time_us + lag_us,
    )


@pytest.mark.parametrize(
    ("granularity", "pointer", "field"),
    [("week", None, "granularity"), ("day", "amount", "sum"), ("hour", "/" + "a" * 300, "sum")],
)
def test_a_bad_spec_names_its_field(granularity: str, pointer: str | None, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        AggregateSpec(granularity, pointer)
    assert caught.value.field == field


def test_each_spec_numbers_its_own_versions() -> None:
    ids = {
        AggregateSpec().spec_id,
        AggregateSpec("hour").spec_id,
        AggregateSpec("day", "/a").spec_id,
    }
    assert len(ids) == 3
    assert AggregateSpec("day", "/a").spec_id == AggregateSpec("day", "/a").spec_id


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/amount", 5),
        ("/nested/value", 7),
        ("/list/1", 20),
        ("/list/01", None),
        ("/list/\u0661", None),
        ("/list/\u00b2", None),
        ("/list/9", None),
        ("/a~1b", 3),
        ("/m~0n", 4),
        ("/missing", None),
        ("/amount/deeper", None),
        ("/", None),
    ],
)
def test_json_pointers_follow_rfc_6901(pointer: str, expected: object) -> None:
    payload = {"amount": 5, "nested": {"value": 7}, "list": [10, 20], "a/b": 3, "m~n": 4}
    assert pointer_value(payload, pointer) == expected


def test_an_aggregate_counts_types_sources_lateness_and_sums_exactly() -> None:
    spec = AggregateSpec("day", "/amount")
    records = [
        record(1),
        record(2, lag_us=10 * MINUTE, event_type="refund"),
        record(3, source="app"),
        record(4),
        record(5),
    ]
    payloads = [{"amount": 0.1}, {"amount": 0.2}, {"amount": True}, {"amount": "7"}, {}]
    aggregate = compute(spec, records, payloads, late_after_us=5 * MINUTE)
    assert aggregate.count == 5 and aggregate.late == 1
    assert dict(aggregate.by_event_type) == {"order": 4, "refund": 1}
    assert dict(aggregate.by_source) == {"app": 1, "shop": 4}
    assert aggregate.total == Decimal("0.3")  # decimal, not 0.30000000000000004
    assert aggregate.unsummed == 3  # a bool, a string and a missing field are not numbers
    assert aggregate.first_event_us == records[0].event_time_us
    assert compute(AggregateSpec(), records, [], 5 * MINUTE).total is None


def test_sums_keep_every_digit_and_leave_out_what_cannot_be_summed_exactly() -> None:
    spec = AggregateSpec("day", "/amount")
    records = [record(n) for n in range(1, 6)]
    payloads = [
        {"amount": Decimal("1e40")},
        {"amount": Decimal("1e-40")},
        {"amount": 10**50},
        {"amount": Decimal("1e1000")},  # beyond SUM_DIGITS: an exact sum would be unbounded
        {"amount": Decimal("NaN")},
    ]
    aggregate = compute(spec, records, payloads, MINUTE)
    exact = f"1{'0' * 9}1{'0' * 40}.{'0' * 39}1"  # 92 digits; a default context keeps 28
    assert aggregate.total == Decimal(exact) and aggregate.to_document()["total"] == exact
    assert aggregate.unsummed == 2
    assert Aggregate.from_document(aggregate.to_document()) == aggregate


def test_a_diff_states_the_change_of_the_total_in_full() -> None:
    spec = AggregateSpec("day", "/amount")
    first, second = [record(1)], [record(1), record(2)]
    big = Decimal("123456789012345678901234567890")
    v1 = next_version(
        spec, "c", 0, None, first, compute(spec, first, [{"amount": 1}], MINUTE), None, 1
    )
    aggregate = compute(spec, second, [{"amount": 1}, {"amount": big}], MINUTE)
    v2 = next_version(spec, "c", 0, v1, second, aggregate, None, 2)
    assert v1 is not None and v2 is not None
    assert diff(v1, v2, {}).to_document()["total_change"] == "123456789012345678901234567890"


def test_same_inputs_make_no_new_version_and_new_inputs_the_next_number() -> None:
    spec = AggregateSpec()
    first = [record(1), record(2)]
    aggregate = compute(spec, first, [], MINUTE)
    v1 = next_version(spec, "customer-1", 0, None, first, aggregate, "r1", 10)
    assert v1 is not None and v1.version == 1 and v1.inputs_digest == set_digest(first)
    assert next_version(spec, "customer-1", 0, v1, first, aggregate, "r2", 20) is None
    second = [*first, record(3)]
    v2 = next_version(
        spec, "customer-1", 0, v1, second, compute(spec, second, [], MINUTE), "r2", 20
    )
    assert v2 is not None and v2.version == 2 and v2.replay_id == "r2"
    assert Version.from_document(v2.to_document()) == v2


def test_a_diff_lists_events_that_came_and_went_with_their_lateness() -> None:
    spec = AggregateSpec()
    old_inputs = [record(1), record(2)]
    late = record(3, lag_us=90 * MINUTE)
    new_inputs = [record(1), late]
    v1 = next_version(
        spec, "c", 0, None, old_inputs, compute(spec, old_inputs, [], MINUTE), None, 1
    )
    v2 = next_version(spec, "c", 0, v1, new_inputs, compute(spec, new_inputs, [], MINUTE), "r", 2)
    assert v1 is not None and v2 is not None
    known = {r.event_id: r for r in [*old_inputs, late]}
    change = diff(v1, v2, known)
    assert [c.event_id for c in change.added] == [late.event_id]
    assert change.added[0].lag_ms == 90 * 60_000
    assert [c.event_id for c in change.removed] == [record(2).event_id]
    document = change.to_document()
    assert document["count_change"] == 0 and document["from_version"] == 1
    assert diff(v1, v2, {}).added[0].lag_ms is None  # an event no longer known still shows


def test_a_processor_target_names_its_spec() -> None:
    from pik.domain.versions import processor_target

    assert processor_target("file:/tmp/x") is None
    assert processor_target("processor:day") == AggregateSpec("day")
    assert processor_target("processor:hour:/a:b") == AggregateSpec("hour", "/a:b")
    for bad in ("processor:", "processor:week", "processor:day:amount"):
        with pytest.raises(SpecError) as caught:
            processor_target(bad)
        assert caught.value.field == "target"
