"""Ingest on the real local engine: outcomes, idempotency, conflicts, group commit."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from pik.domain.outcome import Status
from pik.engines.local import LocalEngine
from pik.engines.local.engine import SegmentPolicy
from pik.services.ingest import ingest_batch
from pik.services.query import event_detail

MakeEvent = Callable[..., bytes]


def test_first_arrival_is_accepted_later_ones_are_duplicates(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    raw = make_event()
    first = ingest_batch(engine, [raw], "feed-a")
    again = ingest_batch(engine, [raw, raw], "feed-b")
    assert [o.status for o in first] == [Status.ACCEPTED]
    assert [o.status for o in again] == [Status.DUPLICATE, Status.DUPLICATE]
    assert {o.event_id for o in first + again} == {first[0].event_id}
    detail = event_detail(engine, first[0].event_id)
    assert detail is not None and detail.verified
    assert detail.record.duplicate_count == 2
    assert detail.record.origin == "feed-a"
    assert [(a.kind, a.origin, a.count) for a in detail.attempts] == [("duplicate", "feed-b", 2)]
    assert detail.record.last_seen_us >= detail.record.ingest_time_us
    assert engine.counts() == {
        "events": 1,
        "entities": 1,
        "accepted": 1,
        "duplicate": 2,
        "rejected": 0,
        "late": 1,
    }


def test_duplicate_bytes_are_not_stored_again(engine: LocalEngine, make_event: MakeEvent) -> None:
    raw = make_event(payload={"blob": "x" * 10_000})
    ingest_batch(engine, [raw], "a")
    size_after_first = sum(p.stat().st_size for p in engine.layout.segments.iterdir())
    ingest_batch(engine, [raw] * 20, "a")
    grown = sum(p.stat().st_size for p in engine.layout.segments.iterdir()) - size_after_first
    assert grown < 20 * 200, "duplicates are recorded as small frames, not stored again"


def test_a_reencoded_event_is_a_duplicate(engine: LocalEngine, make_event: MakeEvent) -> None:
    raw = make_event(event_time="2026-11-01T10:00:00Z")
    document = json.loads(raw)
    document["event_time"] = "2026-11-01T12:00:00+02:00"
    reencoded = json.dumps(dict(reversed(list(document.items())))).encode()
    outcomes = ingest_batch(engine, [raw, reencoded], "a")
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.DUPLICATE]


def test_valid_events_are_taken_beside_invalid_ones(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    outcomes = ingest_batch(
        engine, [make_event(entity_id="a"), b"{nope", make_event(entity_id="b")], "a"
    )
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
    assert outcomes[1].rejection is not None and outcomes[1].rejection.code == "invalid_json"
    assert engine.counts()["events"] == 2


def test_same_idempotency_key_with_other_payload_is_a_visible_conflict(
    engine: LocalEngine, make_event
) -> None:
    original = make_event(idempotency_key="order-42", payload={"amount": 42})
    other = make_event(idempotency_key="order-42", payload={"amount": 99})
    first = ingest_batch(engine, [original], "a")
    outcomes = ingest_batch(engine, [other, original], "b")
    assert first[0].status is Status.ACCEPTED
    assert outcomes[0].status is Status.REJECTED
    assert outcomes[0].rejection is not None
    assert outcomes[0].rejection.code == "idempotency_conflict"
    assert outcomes[0].event_id == first[0].event_id
    assert outcomes[1].status is Status.DUPLICATE
    detail = event_detail(engine, first[0].event_id)
    assert detail is not None and detail.raw == original, "the original is untouched"
    assert detail.record.conflict_count == 1
    assert ("conflict", "b", 1) in [(a.kind, a.origin, a.count) for a in detail.attempts]
    reasons = engine.rejection_reasons(0, 2**62, None)
    assert reasons == [("checkout", "idempotency_conflict", 1)]


def test_same_key_same_content_is_a_plain_duplicate(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    raw = make_event(idempotency_key="k", payload={"a": 1})
    spaced = raw.replace(b'":', b'": ')
    outcomes = ingest_batch(engine, [raw, spaced], "a")
    assert [o.status for o in outcomes] == [Status.ACCEPTED, Status.DUPLICATE]


def test_ingest_time_is_the_engine_clock_and_lag_is_measured(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    outcome = ingest_batch(engine, [make_event(event_time="2026-01-01T00:00:00Z")], "a")[0]
    record = engine.event(outcome.event_id)
    assert record is not None
    assert outcome.lag_ms == record.lag_ms > 0
    assert record.ingest_time_us - record.event_time_us == record.lag_ms * 1000 + (
        (record.ingest_time_us - record.event_time_us) % 1000
    )


def test_sixteen_threads_one_event_store_it_once(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    raw = make_event(entity_id="race")
    barrier = threading.Barrier(16)
    results: list[Status] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        outcome = ingest_batch(engine, [raw], "thread")[0]
        with lock:
            results.append(outcome.status)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Status.ACCEPTED] + [Status.DUPLICATE] * 15)
    assert engine.counts()["events"] == 1
    assert engine.verify().ok


def test_single_event_requests_share_segments_and_fsyncs(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    def send(worker: int) -> None:
        for n in range(50):
            ingest_batch(engine, [make_event(entity_id=f"w{worker}", payload={"n": n})], "t")

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.counts()["events"] == 400
    assert len(list(engine.layout.segments.iterdir())) == 1


def test_segments_are_sealed_read_only_at_the_size_limit(
    store_path: Path, make_event: MakeEvent
) -> None:
    engine = LocalEngine(store_path, policy=SegmentPolicy(max_bytes=4096))
    try:
        for n in range(40):
            ingest_batch(engine, [make_event(payload={"n": n, "pad": "p" * 300})], "a")
        files = sorted(engine.layout.segments.iterdir())
        assert len(files) > 3
        sealed = [f for f in files[:-1]]
        assert all(not f.stat().st_mode & 0o222 for f in sealed)
        report = engine.verify()
        assert report.ok and report.events == 40, report.problems
    finally:
        engine.close()


def test_segment_names_never_come_from_input(engine: LocalEngine, make_event: MakeEvent) -> None:
    ingest_batch(engine, [make_event(entity_id="a/b/c", source="x/y")], "../../etc")
    names = [p.name for p in engine.layout.root.rglob("*")]
    assert all(".." not in n and "etc" not in n for n in names)
    assert {p.name for p in engine.layout.segments.iterdir()} == {"00000001.seg"}
