"""Replay plans on paper: selections and their faults, digests, plan ids, summaries, documents
and messages. Pure: no store, no clock."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from pik.domain import replay
from pik.domain.instants import parse_instant
from pik.domain.records import EventRecord
from pik.domain.replay import (
    AuditRecord,
    Plan,
    ReplayError,
    ReplayRun,
    Selection,
    check_rate,
    make_plan,
    plan_id_for,
    replay_message,
    replay_order,
    set_digest,
)

T0 = parse_instant("2026-11-01T00:00:00Z")
T1 = parse_instant("2026-11-02T00:00:00Z")
SECOND = 1_000_000


def record(
    n: int,
    entity_id: str = "c1",
    source: str = "checkout",
    event_type: str = "order.created",
    at: int | None = None,
    raw: bytes | None = None,
) -> EventRecord:
    body = raw if raw is not None else json.dumps({"n": n}).encode()
    return EventRecord(
        event_id=hashlib.sha256(f"event-{n}".encode()).digest()[:16],
        content_hash=b"\0" * 16,
        entity_id=entity_id,
        source=source,
        event_type=event_type,
        event_time_us=T0 + n * SECOND if at is None else at,
        ingest_time_us=T1 + n,
        idempotency_key=None,
        origin="test",
        segment="00000001",
        offset=100 * n,
        length=len(body),
        sha256=hashlib.sha256(body).digest(),
        duplicate_count=0,
        conflict_count=0,
        last_seen_us=T1 + n,
    )


def build(**changes: Any) -> Selection:
    fields: dict[str, Any] = {
        "entity_ids": ["c1"],
        "start_us": T0,
        "end_us": T1,
        "target": "file:/tmp/out.ndjson",
    }
    fields.update(changes)
    return Selection.build(**fields)


BAD_SELECTIONS = [
    ({"entity_ids": []}, "entity_ids"),
    ({"entity_ids": "c1"}, "entity_ids"),  # a lone string is not a list of one
    ({"entity_ids": 7}, "entity_ids"),
    ({"entity_ids": [""]}, "entity_ids"),
    ({"entity_ids": [7]}, "entity_ids"),
    ({"entity_ids": [["c1"]]}, "entity_ids"),
    ({"entity_ids": ["x" * 257]}, "entity_ids"),
    ({"entity_ids": ["c\x1b[31m"]}, "entity_ids"),
    ({"entity_ids": ["c\u202e1"]}, "entity_ids"),
    ({"entity_ids": [f"c{n}" for n in range(replay.MAX_ENTITIES + 1)]}, "entity_ids"),
    ({"start_us": "2026-11-01"}, "start"),
    ({"end_us": None}, "start"),
    ({"end_us": T0}, "end"),
    ({"start_us": T1 + 1}, "end"),
    ({"sources": [""]}, "sources"),
    ({"sources": "checkout"}, "sources"),
    ({"sources": ["s" * 129]}, "sources"),
    ({"sources": [f"s{n}" for n in range(replay.MAX_FILTER_VALUES + 1)]}, "sources"),
    ({"event_types": ["\x00"]}, "event_types"),
    ({"event_types": ["t" * 129]}, "event_types"),
    ({"target": ""}, "target"),
    ({"target": "file:/" + "x" * replay.MAX_TARGET_CHARS}, "target"),
    ({"target": "file:/tmp/a\nb"}, "target"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_SELECTIONS)
def test_each_bad_selection_names_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ReplayError) as caught:
        build(**changes)
    assert (caught.value.code, caught.value.status, caught.value.field) == (
        "invalid_selection",
        422,
        field,
    )


def test_a_selection_at_its_limits_is_accepted() -> None:
    selection = build(
        entity_ids=[f"c{n}" for n in range(replay.MAX_ENTITIES)],
        sources=["s" * 128],
        event_types=["t" * 128],
        target="file:/" + "x" * (replay.MAX_TARGET_CHARS - 6),
        end_us=T0 + 1,
    )
    assert len(selection.entity_ids) == replay.MAX_ENTITIES


def test_selection_canonical_form_sorts_and_drops_repeats() -> None:
    one = build(entity_ids=["c2", "c1", "c2"], sources=["b", "a"], event_types=["y", "x", "y"])
    other = build(entity_ids=("c1", "c2"), sources=("a", "b", "a"), event_types=["x", "y"])
    assert one == other
    assert one.entity_ids == ("c1", "c2")
    assert (one.sources, one.event_types) == (("a", "b"), ("x", "y"))
    assert plan_id_for(one, "d", 5) == plan_id_for(other, "d", 5)


def test_admits_honours_the_window_and_the_filters() -> None:
    selection = build(start_us=T0, end_us=T0 + 10 * SECOND, sources=["pay"], event_types=["x"])
    assert selection.admits(record(0, source="pay", event_type="x"))  # at start: in
    assert selection.admits(record(9, source="pay", event_type="x"))
    assert not selection.admits(record(10, source="pay", event_type="x"))  # at end: out
    assert not selection.admits(record(1, source="checkout", event_type="x"))
    assert not selection.admits(record(1, source="pay", event_type="y"))
    assert build().admits(record(3))  # no filters: every source and type


def test_digest_is_equal_exactly_for_the_same_ordered_set() -> None:
    records = [record(n) for n in range(5)]
    assert set_digest(records) == set_digest([record(n) for n in range(5)])
    assert set_digest(records) != set_digest(records[::-1])
    assert set_digest(records) != set_digest(records[:4])
    assert set_digest(records) != set_digest([*records, record(5)])
    changed = [*records[:4], record(4, raw=b'{"n": 4, "edited": true}')]
    assert set_digest(records) != set_digest(changed)
    assert set_digest([]) == set_digest([])
    assert set_digest([]) != set_digest(records[:1])


def test_plan_id_changes_with_selection_set_and_time() -> None:
    selection = build()
    digest = set_digest([record(1)])
    base = plan_id_for(selection, digest, 100)
    assert len(base) == 32 and int(base, 16) >= 0
    assert plan_id_for(selection, digest, 100) == base
    assert plan_id_for(build(target="file:/tmp/other"), digest, 100) != base
    assert plan_id_for(build(sources=["x"]), digest, 100) != base
    assert plan_id_for(build(end_us=T1 - 1), digest, 100) != base
    assert plan_id_for(selection, set_digest([record(2)]), 100) != base
    assert plan_id_for(selection, digest, 101) != base


def test_replay_order_is_event_time_then_event_id() -> None:
    same_time = [record(n, at=T0) for n in range(6)]
    shuffled = [same_time[i] for i in (3, 0, 5, 1, 4, 2)] + [record(9, at=T0 - 1)]
    ordered = replay_order(shuffled)
    assert ordered[0].event_time_us == T0 - 1
    assert [r.event_id for r in ordered[1:]] == sorted(r.event_id for r in same_time)


def test_make_plan_sums_up_the_set() -> None:
    records = replay_order(
        [
            record(0, entity_id="c1", source="pay", event_type="x"),
            record(1, entity_id="c2", source="pay", event_type="y"),
            record(2, entity_id="c1", source="shop", event_type="x"),
        ]
    )
    plan = make_plan(build(entity_ids=["c1", "c2"]), records, created_us=T1, created_by="ana")
    assert (plan.events, plan.bytes) == (3, sum(r.length for r in records))
    assert (plan.first_event_us, plan.last_event_us) == (T0, T0 + 2 * SECOND)
    assert plan.as_of_us == max(r.ingest_time_us for r in records)
    assert plan.by_entity == (("c1", 2), ("c2", 1))
    assert plan.by_source == (("pay", 2), ("shop", 1))
    assert plan.by_event_type == (("x", 2), ("y", 1))
    assert plan.digest == set_digest(records)
    assert plan.plan_id == plan_id_for(plan.selection, plan.digest, T1)
    assert (plan.created_us, plan.expires_us) == (T1, T1 + replay.PLAN_TTL_US)
    assert plan.created_by == "ana"
    assert not plan.expired(T1 + replay.PLAN_TTL_US - 1)
    assert plan.expired(T1 + replay.PLAN_TTL_US)


@pytest.mark.parametrize("count", [1, 2, 4, 5, 6, 7, 100, 2_500])
def test_the_sample_is_spread_and_holds_the_first_and_the_last(count: int) -> None:
    records = [record(n) for n in range(count)]
    plan = make_plan(build(), records, T1, "ana")
    ids = [r.event_id.hex() for r in records]
    assert plan.sample[0] == ids[0] and plan.sample[-1] == ids[-1]
    assert len(plan.sample) == min(count, replay.SAMPLE_SIZE)
    assert len(set(plan.sample)) == len(plan.sample)
    positions = [ids.index(s) for s in plan.sample]
    assert positions == sorted(positions)


def test_an_empty_plan() -> None:
    plan = make_plan(build(), [], T1, "ana")
    assert (plan.events, plan.bytes, plan.sample) == (0, 0, ())
    assert (plan.first_event_us, plan.last_event_us, plan.as_of_us) == (None, None, 0)
    assert Plan.from_document(plan.to_document()) == plan


def test_documents_round_trip() -> None:
    selection = build(entity_ids=["c2", "c1"], sources=["pay"], event_types=["x", "y"])
    assert Selection.from_document(selection.to_document()) == selection
    plan = make_plan(selection, [record(n, entity_id="c1") for n in range(7)], T1, "ana")
    document = json.loads(json.dumps(plan.to_document()))
    assert Plan.from_document(document) == plan
    assert document["first_event_time"] == "2026-11-01T00:00:00.000000Z"
    run = ReplayRun("r" * 32, plan.plan_id, "file:/x", replay.RUNNING, 7, 3, 50, "ana", T1, T1 + 1)
    assert ReplayRun.from_document(json.loads(json.dumps(run.to_document()))) == run
    audit = AuditRecord(T1, "ana", replay.REFUSED, plan.plan_id, None, "plan_expired", {"a": 1})
    assert AuditRecord.from_document(json.loads(json.dumps(audit.to_document()))) == audit


def test_a_message_carries_the_stored_bytes_exactly() -> None:
    raw = '{"entity_id": "c1", "payload": {"note": "caf\u00e9 \\u0000 \\"q\\" \u2028"}}'.encode()
    stored = record(4, raw=raw)
    run = ReplayRun("a" * 32, "p" * 32, "file:/x", replay.RUNNING, 9, 0, 10, "ana", T1, T1)
    message = replay_message(run, 3, stored, raw)
    assert b"\n" not in message
    document = json.loads(message)
    assert document == {
        "replay_id": "a" * 32,
        "plan_id": "p" * 32,
        "seq": 3,
        "total": 9,
        "event_id": stored.event_id.hex(),
        "entity_id": "c1",
        "source": "checkout",
        "event_type": "order.created",
        "event_time": "2026-11-01T00:00:04.000000Z",
        "ingest_time": "2026-11-02T00:00:00.000004Z",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "raw": raw.decode(),
    }
    assert document["raw"].encode() == raw
    assert hashlib.sha256(document["raw"].encode()).hexdigest() == document["sha256"]


@pytest.mark.parametrize("rate", [0, -1, replay.MAX_RATE + 1, True, False, "5", 5.0, None])
def test_a_bad_rate_is_refused(rate: object) -> None:
    with pytest.raises(ReplayError) as caught:
        check_rate(rate)
    assert (caught.value.code, caught.value.status, caught.value.field) == (
        "invalid_limit",
        422,
        "rate",
    )


@pytest.mark.parametrize("rate", [replay.MIN_RATE, replay.DEFAULT_RATE, replay.MAX_RATE])
def test_rates_in_bounds_are_accepted(rate: int) -> None:
    assert check_rate(rate) == rate
