"""Ingest through the storage port: outcomes, idempotency, conflicts, concurrency."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from pik.domain.outcome import Status
from pik.ports import EventStore
from pik.services.ingest import ingest_batch
from pik.services.query import event_detail

MakeEvent = Callable[..., bytes]


def test_first_arrival_is_accepted_later_ones_are_duplicates(
    store: EventStore, make_event: MakeEvent
) -> None:
    raw = make_event()
    first = ingest_batch(store, [raw], "feed-a")
    again = ingest_batch(store, [raw, raw], "feed-b")
    assert [o.status for o in first] == [Status.ACCEPTED]
    assert [o.status for o in again] == [Status.DUPLICATE, Status.DUPLICATE]
    assert {o.event_id for o in first + again} == {first[0].event_id}
    detail = event_detail(store, first[0].event_id)
    assert detail is not None and detail.verified
    assert detail.record.duplicate_count == 2
    assert detail.record.origin == "feed-a"
    assert [(a.kind, a.origin, a.count) for a in detail.attempts] == [("duplicate", "feed-b", 2)]
    assert detail.record.last_seen_us >= detail.record.ingest_time_us
    assert store.counts() == {
        "events": 1,
        "entities": 1,
        "accepted": 1,
        "duplicate": 2,
        "rejected": 0,
        "late": 1,
    }


def test_a_reencoded_event_is_a_duplicate(store: EventStore, make_event: MakeEvent) -> None:
    raw = make_event(event_time="2026-11-01T10:00:00Z")
    document = json.loads(raw)
    document["event_time"] = "2026-11-01T12:00:00+02:00"
    reencoded = json.dumps(dict(reversed(list(document.items())))).encode()
    outcomes = ingest_batch(store, [raw, reencoded], "a")
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.DUPLICATE]


def test_valid_events_are_taken_beside_invalid_ones(
    store: EventStore, make_event: MakeEvent
) -> None:
    outcomes = ingest_batch(
        store, [make_event(entity_id="a"), b"{nope", make_event(entity_id="b")], "a"
    )
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
    assert outcomes[1].rejection is not None and outcomes[1].rejection.code == "invalid_json"
    assert store.counts()["events"] == 2


def test_same_idempotency_key_with_other_payload_is_a_visible_conflict(
    store: EventStore, make_event
) -> None:
    original = make_event(idempotency_key="order-42", payload={"amount": 42})
    other = make_event(idempotency_key="order-42", payload={"amount": 99})
    first = ingest_batch(store, [original], "a")
    outcomes = ingest_batch(store, [other, original], "b")
    assert first[0].status is Status.ACCEPTED
    assert outcomes[0].status is Status.REJECTED
    assert outcomes[0].rejection is not None
    assert outcomes[0].rejection.code == "idempotency_conflict"
    assert outcomes[0].event_id == first[0].event_id
    assert outcomes[1].status is Status.DUPLICATE
    detail = event_detail(store, first[0].event_id)
    assert detail is not None and detail.raw == original, "the original is untouched"
    assert detail.record.conflict_count == 1
    assert ("conflict", "b", 1) in [(a.kind, a.origin, a.count) for a in detail.attempts]
    reasons = store.rejection_reasons(0, 2**62, None)
    assert reasons == [("checkout", "idempotency_conflict", 1)]


def test_same_key_same_content_is_a_plain_duplicate(
    store: EventStore, make_event: MakeEvent
) -> None:
    raw = make_event(idempotency_key="k", payload={"a": 1})
    spaced = raw.replace(b'":', b'": ')
    outcomes = ingest_batch(store, [raw, spaced], "a")
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.DUPLICATE]


def test_ingest_time_is_the_engine_clock_and_lag_is_measured(
    store: EventStore, make_event: MakeEvent
) -> None:
    outcome = ingest_batch(store, [make_event(event_time="2026-01-01T00:00:00Z")], "a")[0]
    record = store.event(outcome.event_id)
    assert record is not None
    assert outcome.lag_ms == record.lag_ms > 0
    assert record.ingest_time_us - record.event_time_us == record.lag_ms * 1000 + (
        (record.ingest_time_us - record.event_time_us) % 1000
    )


def test_sixteen_threads_one_event_store_it_once(store: EventStore, make_event: MakeEvent) -> None:
    raw = make_event(entity_id="race")
    barrier = threading.Barrier(16)
    results: list[Status] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        outcome = ingest_batch(store, [raw], "thread")[0]
        with lock:
            results.append(outcome.status)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Status.ACCEPTED] + [Status.DUPLICATE] * 15)
    assert store.counts()["events"] == 1
    assert store.verify().ok


def test_later_arrivals_are_listed_in_the_order_they_first_came(
    store: EventStore, make_event: MakeEvent
) -> None:
    original = make_event(idempotency_key="k-1", payload={"n": 1})
    ingest_batch(store, [original], "first")
    ingest_batch(store, [original], "zeta")
    ingest_batch(store, [make_event(idempotency_key="k-1", payload={"n": 2})], "mid")
    ingest_batch(store, [original], "alpha")
    (outcome,) = ingest_batch(store, [original], "zeta")
    assert outcome.event_id is not None
    detail = event_detail(store, outcome.event_id)
    assert detail is not None
    assert [(a.kind, a.origin, a.count) for a in detail.attempts] == [
        ("duplicate", "zeta", 2),
        ("conflict", "mid", 1),
        ("duplicate", "alpha", 1),
    ]
