"""Replay through the ports, on each engine: plans, the confirm-once ledger, runs that send
every planned event once in order, refusals that are audited and send nothing, pausing,
cancelling, pacing and resuming.

The sink here is a list (the consumer side, not our storage); the store and the ledger are
the engine's own.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from tamper import AlterRaw

from pik.domain import replay
from pik.domain.instants import format_instant, parse_instant
from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun, Selection
from pik.ports import EventStore, ReplayLedger
from pik.services.ingest import ingest_batch
from pik.services.replay import (
    PAGE,
    Clock,
    cancel_replay,
    collect,
    confirm_replay,
    execute_replay,
    plan_replay,
)
from pik.sinks import FileSink

MakeEvent = Callable[..., bytes]
T0 = parse_instant("2026-11-01T00:00:00Z")
T1 = parse_instant("2026-11-02T00:00:00Z")
PLANNED_AT = parse_instant("2026-11-27T08:00:00Z")
TARGET = "test:list"


class ListSink:
    """Keeps what it is sent; ``on_send`` runs after each batch (with the batch count)."""

    def __init__(self, max_batch: int = 10, on_send: Callable[[int], None] | None = None) -> None:
        self.max_batch = max_batch
        self.on_send = on_send
        self.batches: list[list[bytes]] = []
        self.closed = False

    def send(self, messages: Sequence[bytes]) -> None:
        assert 0 < len(messages) <= self.max_batch
        self.batches.append(list(messages))
        if self.on_send is not None:
            self.on_send(len(self.batches))

    def close(self) -> None:
        self.closed = True

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(m) for batch in self.batches for m in batch]


class FakeClock:
    """Wall time that ticks a microsecond per reading, and a monotonic clock that moves
    only when slept on: pacing is checked without sleeping."""

    def __init__(self, now_us: int = PLANNED_AT) -> None:
        self.now = now_us
        self.monotonic = 0.0
        self.sleeps: list[float] = []

    def now_us(self) -> int:
        self.now += 1
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.monotonic += seconds

    @property
    def clock(self) -> Clock:
        return Clock(now_us=self.now_us, monotonic=lambda: self.monotonic, sleep=self.sleep)


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


def at(second: float) -> str:
    return format_instant(T0 + round(second * 1_000_000))


def ingest(store: EventStore, make_event: MakeEvent, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 5_000):
        outcomes = ingest_batch(
            store, [make_event(**e) for e in events[start : start + 5_000]], "test"
        )
        assert {o.status.value for o in outcomes} == {"accepted"}


@pytest.fixture
def slice_store(store: EventStore, make_event: MakeEvent) -> EventStore:
    """Three entities, two sources, two types, sub-second times, ingested out of order."""
    rng = random.Random(7)
    events = [
        {
            "entity_id": f"c{n % 3}",
            "source": ("shop", "pay")[n % 2],
            "event_type": ("x", "y")[(n // 2) % 2],
            "event_time": at(n * 0.25),
            "payload": {"n": n},
        }
        for n in range(60)
    ]
    rng.shuffle(events)
    ingest(store, make_event, events)
    return store


def select(entities: Sequence[str] = ("c0", "c1"), **changes: Any) -> Selection:
    fields: dict[str, Any] = {"start_us": T0, "end_us": T1, "target": TARGET}
    fields.update(changes)
    return Selection.build(entities, **fields)


def refusals(ledger: ReplayLedger) -> list[AuditRecord]:
    return [r for r in ledger.audit_log(0, 1_000) if r.action == replay.REFUSED]


def refused(ledger: ReplayLedger, code: str, attempt: Callable[[], object]) -> ReplayError:
    """``attempt`` is refused with ``code``, and that refusal is the newest audit record."""
    before = len(refusals(ledger))
    with pytest.raises(ReplayError) as caught:
        attempt()
    assert caught.value.code == code, caught.value
    after = refusals(ledger)
    assert len(after) == before + 1
    assert after[-1].outcome == code
    assert after[-1].detail["message"] == str(caught.value)
    return caught.value


def confirmed(
    store: EventStore,
    ledger: ReplayLedger,
    fake: FakeClock,
    selection: Selection,
    rate: int = replay.MAX_RATE,
) -> tuple[Plan, ReplayRun]:
    plan = plan_replay(store, ledger, selection, "ana", fake.clock)
    return plan, confirm_replay(store, ledger, plan.plan_id, "ana", rate, fake.clock)


# --- the whole flow ----------------------------------------------------------------------------


def test_plan_confirm_execute_sends_every_event_once_in_order(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    plan = plan_replay(slice_store, ledger, select(), "ana", fake.clock)
    assert plan.events == 40 and ledger.plan(plan.plan_id) == plan
    assert plan.by_entity == (("c0", 20), ("c1", 20))
    run = confirm_replay(slice_store, ledger, plan.plan_id, "bob", 500, fake.clock)
    assert (run.status, run.sent, run.total, run.rate, run.confirmed_by) == (
        replay.RUNNING,
        0,
        40,
        500,
        "bob",
    )
    assert ledger.run(run.replay_id) == run
    sink = ListSink()
    seen: list[tuple[int, int]] = []
    done = execute_replay(
        slice_store,
        ledger,
        sink,
        run.replay_id,
        "bob",
        fake.clock,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert (done.status, done.sent, done.total) == (replay.COMPLETED, 40, 40)
    assert ledger.run(run.replay_id) == done
    expected = collect(slice_store, plan.selection)
    messages = sink.messages
    assert [m["seq"] for m in messages] == list(range(1, 41))
    assert [m["event_id"] for m in messages] == [r.event_id.hex() for r in expected]
    assert [m["event_time"] for m in messages] == sorted(m["event_time"] for m in messages)
    for message, record in zip(messages, expected, strict=True):
        assert message["replay_id"] == run.replay_id and message["plan_id"] == plan.plan_id
        assert message["total"] == 40
        assert message["raw"].encode() == slice_store.read_raw(record)
        assert message["ingest_time"] == format_instant(record.ingest_time_us)
    assert [len(b) for b in sink.batches] == [10] * 4
    assert seen[0] == (0, 40) and seen[-1] == (40, 40)


def test_altered_bytes_stop_a_run_before_them_failed_and_audited(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock, alter_raw: AlterRaw
) -> None:
    """The 25th event's stored bytes no longer match their sha256: the two batches before
    it are sent, nothing of its batch is, and the run ends failed (`raw_corrupt`) with the
    event named and the count sent recorded, in the ledger and the audit alike."""
    plan, run = confirmed(slice_store, ledger, fake, select())
    bad = collect(slice_store, plan.selection)[24]
    alter_raw(bad, b'"n":', b'"N":')
    sink = ListSink()
    with pytest.raises(ReplayError) as caught:
        execute_replay(slice_store, ledger, sink, run.replay_id, "bob", fake.clock)
    assert caught.value.code == "raw_corrupt" and bad.event_id.hex() in str(caught.value)
    assert [m["seq"] for m in sink.messages] == list(range(1, 21))
    ended = ledger.run(run.replay_id)
    assert ended is not None and (ended.status, ended.sent) == (replay.FAILED, 20)
    last = ledger.audit_log(0, 1_000)[-1]
    assert (last.action, last.outcome) == (replay.FAILED, "raw_corrupt")
    assert last.detail == {"sent": 20, "event_id": bad.event_id.hex()}


def test_a_message_the_target_refuses_ends_the_run_failed_and_audited(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    """A refusal no retry fixes (here the target refuses the second batch) ends the run
    failed with the refusal's code: it is not left running for a resume that cannot help."""

    def refuse_second(batches: int) -> None:
        if batches == 2:
            raise ReplayError("message_refused", "the queue refused a replay message", 422)

    _, run = confirmed(slice_store, ledger, fake, select())
    with pytest.raises(ReplayError, match="refused"):
        execute_replay(
            slice_store, ledger, ListSink(on_send=refuse_second), run.replay_id, "bob", fake.clock
        )
    ended = ledger.run(run.replay_id)
    assert ended is not None and (ended.status, ended.sent) == (replay.FAILED, 10)
    last = ledger.audit_log(0, 1_000)[-1]
    assert (last.action, last.outcome) == (replay.FAILED, "message_refused")
    assert last.detail == {"sent": 10, "message": "the queue refused a replay message"}


def test_an_empty_selection_plans_and_completes_with_nothing_sent(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    plan, run = confirmed(slice_store, ledger, fake, select(["nobody"]))
    assert plan.events == 0 and run.total == 0
    sink = ListSink()
    done = execute_replay(slice_store, ledger, sink, run.replay_id, "ana", fake.clock)
    assert done.status == replay.COMPLETED and sink.batches == []


# --- refusals: each audited with its code, nothing sent ---------------------------------------


def test_an_unknown_or_forged_plan_is_refused(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    plan = plan_replay(slice_store, ledger, select(), "ana", fake.clock)
    forged = replay.plan_id_for(plan.selection, "0" * 64, plan.created_us)
    for plan_id in ("no-such-plan", forged, plan.plan_id[:-1] + "0", ""):
        error = refused(
            ledger,
            "plan_not_found",
            lambda p=plan_id: confirm_replay(slice_store, ledger, p, "eve", clock=fake.clock),
        )
        assert (error.status, error.field) == (404, "plan_id")
    assert ledger.runs(10) == []


def test_a_refused_id_of_another_form_is_named_never_repeated(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    # A credential pasted where an id goes stays out of the answer and the audit.
    canary = "Bearer CANARY-5f1c-do-not-log"
    for code, call in [
        (
            "plan_not_found",
            lambda: confirm_replay(slice_store, ledger, canary, "eve", clock=fake.clock),
        ),
        ("replay_not_found", lambda: cancel_replay(ledger, canary, "eve", fake.clock)),
        (
            "replay_not_found",
            lambda: execute_replay(slice_store, ledger, ListSink(), canary, "eve", fake.clock),
        ),
    ]:
        error = refused(ledger, code, call)
        assert "CANARY" not in str(error) and "32 hex digits" in str(error)
    records = ledger.audit_log(0, 100)
    assert len(records) == 3 and "CANARY" not in repr(records)


def test_an_expired_plan_is_refused(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    plan = plan_replay(slice_store, ledger, select(), "ana", fake.clock)
    fake.now = plan.expires_us - 2  # one reading before expiry: still good
    later = FakeClock(plan.expires_us)
    error = refused(
        ledger,
        "plan_expired",
        lambda: confirm_replay(slice_store, ledger, plan.plan_id, "ana", clock=later.clock),
    )
    assert error.status == 409
    assert ledger.runs(10) == []
    run = confirm_replay(slice_store, ledger, plan.plan_id, "ana", clock=fake.clock)
    assert run.plan_id == plan.plan_id


def test_a_plan_runs_once(slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock) -> None:
    plan, run = confirmed(slice_store, ledger, fake, select())
    error = refused(
        ledger,
        "plan_already_confirmed",
        lambda: confirm_replay(slice_store, ledger, plan.plan_id, "bob", clock=fake.clock),
    )
    assert (error.status, error.field) == (409, "plan_id")
    assert [r.replay_id for r in ledger.runs(10)] == [run.replay_id]
    execute_replay(slice_store, ledger, ListSink(), run.replay_id, "ana", fake.clock)
    refused(
        ledger,
        "plan_already_confirmed",
        lambda: confirm_replay(slice_store, ledger, plan.plan_id, "bob", clock=fake.clock),
    )


def test_a_late_event_in_the_window_changes_the_plan(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock, make_event: MakeEvent
) -> None:
    plan = plan_replay(slice_store, ledger, select(sources=["pay"]), "ana", fake.clock)
    # Outside the slice (another entity, another source, after the window): no change.
    ingest(
        slice_store,
        make_event,
        [
            {"entity_id": "c2", "source": "pay", "event_time": at(3.3)},
            {"entity_id": "c0", "source": "shop", "event_time": at(3.3)},
            {"entity_id": "c0", "source": "pay", "event_time": format_instant(T1)},
        ],
    )
    other = plan_replay(slice_store, ledger, select(sources=["pay"]), "ana", fake.clock)
    assert other.digest == plan.digest
    # A late event inside it: refused, and a fresh preview holds it.
    ingest(slice_store, make_event, [{"entity_id": "c1", "source": "pay", "event_time": at(0.1)}])
    error = refused(
        ledger,
        "plan_changed",
        lambda: confirm_replay(slice_store, ledger, plan.plan_id, "ana", clock=fake.clock),
    )
    assert error.status == 409 and "preview" in str(error)
    assert ledger.runs(10) == []
    fresh = plan_replay(slice_store, ledger, select(sources=["pay"]), "ana", fake.clock)
    assert fresh.events == plan.events + 1 and fresh.plan_id != plan.plan_id


def test_a_slice_over_the_plan_limit_is_refused_and_audited_at_planning(
    slice_store: EventStore,
    ledger: ReplayLedger,
    fake: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay, "MAX_PLAN_EVENTS", 5)
    error = refused(
        ledger,
        "plan_too_large",
        lambda: plan_replay(slice_store, ledger, select(["c0"]), "ana", fake.clock),
    )
    assert (error.status, error.field) == (422, "entity_ids")
    assert refusals(ledger)[-1].plan_id is None


def test_a_slice_grown_past_the_plan_limit_is_refused_at_confirmation(
    slice_store: EventStore,
    ledger: ReplayLedger,
    fake: FakeClock,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay, "MAX_PLAN_EVENTS", 20)
    plan = plan_replay(slice_store, ledger, select(["c0"]), "ana", fake.clock)
    assert plan.events == 20
    ingest(slice_store, make_event, [{"entity_id": "c0", "event_time": at(0.7)}])
    error = refused(
        ledger,
        "plan_too_large",
        lambda: confirm_replay(slice_store, ledger, plan.plan_id, "ana", clock=fake.clock),
    )
    assert error.status == 422
    assert ledger.runs(10) == []


@pytest.mark.parametrize("rate", [0, -1, replay.MAX_RATE + 1])
def test_a_bad_rate_is_refused(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock, rate: int
) -> None:
    plan = plan_replay(slice_store, ledger, select(), "ana", fake.clock)
    error = refused(
        ledger,
        "invalid_limit",
        lambda: confirm_replay(slice_store, ledger, plan.plan_id, "ana", rate, fake.clock),
    )
    assert (error.status, error.field) == (422, "rate")
    assert ledger.runs(10) == []


def test_an_ended_or_unknown_run_is_not_sent_again(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select())
    execute_replay(slice_store, ledger, ListSink(), run.replay_id, "ana", fake.clock)
    sink = ListSink()
    error = refused(
        ledger,
        "replay_ended",
        lambda: execute_replay(slice_store, ledger, sink, run.replay_id, "ana", fake.clock),
    )
    assert (error.status, error.field) == (409, "replay_id")
    refused(
        ledger,
        "replay_not_found",
        lambda: execute_replay(slice_store, ledger, sink, "f" * 32, "ana", fake.clock),
    )
    assert sink.batches == []


def test_a_running_replay_takes_another_rate_an_ended_one_none(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select(), rate=5)
    assert ledger.set_rate(run.replay_id, 900)
    changed = ledger.run(run.replay_id)
    assert changed is not None and (changed.rate, changed.status) == (900, replay.RUNNING)
    assert [r.rate for r in ledger.runs(10) if r.replay_id == run.replay_id] == [900]
    execute_replay(slice_store, ledger, ListSink(), run.replay_id, "ana", fake.clock)
    assert not ledger.set_rate(run.replay_id, 10), "an ended run keeps its rate"
    ended = ledger.run(run.replay_id)
    assert ended is not None and ended.rate == 900 and ended.status == replay.COMPLETED
    assert not ledger.set_rate("f" * 32, 10), "nor does a run that does not exist"


def test_only_a_running_replay_can_be_cancelled(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select())
    execute_replay(slice_store, ledger, ListSink(), run.replay_id, "ana", fake.clock)
    error = refused(
        ledger,
        "replay_not_running",
        lambda: cancel_replay(ledger, run.replay_id, "bob", fake.clock),
    )
    assert error.status == 409
    # An id no run has is not found, as for status and resume.
    error = refused(
        ledger, "replay_not_found", lambda: cancel_replay(ledger, "f" * 32, "bob", fake.clock)
    )
    assert (error.status, error.field) == (404, "replay_id")
    ended = ledger.run(run.replay_id)
    assert ended is not None
    assert ended.status == replay.COMPLETED and not ended.cancel_requested


# --- what a run covers -----------------------------------------------------------------------


def test_a_window_larger_than_a_page_is_planned_whole_and_half_open(
    store: EventStore, ledger: ReplayLedger, fake: FakeClock, make_event: MakeEvent
) -> None:
    count, step = 2_500, 100_001  # sub-second steps, several timeline pages
    assert count > 2 * PAGE
    end = T0 + count * step
    events = [
        {"entity_id": "big", "event_time": format_instant(T0 + k * step), "payload": {"k": k}}
        for k in range(count)
    ]
    events += [
        {"entity_id": "big", "event_time": format_instant(T0 - 1), "payload": {"at": "before"}},
        {"entity_id": "big", "event_time": format_instant(end), "payload": {"at": "end"}},
        {"entity_id": "big", "event_time": format_instant(end - 1), "payload": {"at": "last in"}},
    ]
    random.Random(3).shuffle(events)
    ingest(store, make_event, events)
    selection = select(["big"], start_us=T0, end_us=end)
    plan, run = confirmed(store, ledger, fake, selection)
    assert plan.events == count + 1
    assert (plan.first_event_us, plan.last_event_us) == (T0, end - 1)
    sink = ListSink(max_batch=500)
    done = execute_replay(store, ledger, sink, run.replay_id, "ana", fake.clock)
    assert (done.status, done.sent) == (replay.COMPLETED, count + 1)
    messages = sink.messages
    assert [m["seq"] for m in messages] == list(range(1, count + 2))
    times = [parse_instant(m["event_time"]) for m in messages]
    assert times == sorted(times) and times[0] == T0 and times[-1] == end - 1
    assert len({m["event_id"] for m in messages}) == count + 1


def test_sources_and_event_types_filter_the_slice(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    everything = collect(slice_store, select(["c0", "c1", "c2"]))
    for sources, types in [(["pay"], []), ([], ["y"]), (["shop"], ["x"]), (["pay", "shop"], [])]:
        selection = select(["c0", "c1", "c2"], sources=sources, event_types=types)
        expected = [
            r
            for r in everything
            if (not sources or r.source in sources) and (not types or r.event_type in types)
        ]
        plan, run = confirmed(slice_store, ledger, fake, selection)
        assert plan.events == len(expected) > 0
        sink = ListSink()
        execute_replay(slice_store, ledger, sink, run.replay_id, "ana", fake.clock)
        assert [m["event_id"] for m in sink.messages] == [r.event_id.hex() for r in expected]
        assert {m["source"] for m in sink.messages} <= set(sources or ["pay", "shop"])


# --- pausing, cancelling, pacing ----------------------------------------------------------------


def test_a_paused_run_continues_where_it_stopped(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select())
    sink = ListSink()
    paused = execute_replay(
        slice_store,
        ledger,
        sink,
        run.replay_id,
        "lambda",
        fake.clock,
        should_pause=lambda: len(sink.batches) >= 2,
    )
    assert (paused.status, paused.sent) == (replay.RUNNING, 20)
    done = execute_replay(slice_store, ledger, sink, run.replay_id, "lambda", fake.clock)
    assert (done.status, done.sent) == (replay.COMPLETED, 40)
    assert [m["seq"] for m in sink.messages] == list(range(1, 41))
    resumed = [r for r in ledger.audit_log(0, 100) if r.action == replay.RESUMED]
    assert [(r.replay_id, dict(r.detail)) for r in resumed] == [(run.replay_id, {"from": 20})]


def test_cancel_stops_a_run_at_its_next_batch(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select())

    def operator_cancels(batches: int) -> None:
        if batches == 1:
            cancel_replay(ledger, run.replay_id, "bob", fake.clock)

    sink = ListSink(on_send=operator_cancels)
    done = execute_replay(slice_store, ledger, sink, run.replay_id, "ana", fake.clock)
    assert (done.status, done.sent, done.cancel_requested) == (replay.CANCELLED, 10, True)
    assert len(sink.batches) == 1
    log = [r for r in ledger.audit_log(0, 100) if r.replay_id == run.replay_id]
    assert [(r.action, r.who) for r in log] == [
        (replay.CONFIRMED, "ana"),
        (replay.CANCEL_REQUESTED, "bob"),
        (replay.CANCELLED, "ana"),
    ]
    assert dict(log[-1].detail) == {"sent": 10}


@pytest.mark.parametrize(("rate", "batch"), [(25, 10), (7, 10), (1, 100)])
def test_a_run_never_goes_faster_than_its_rate(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock, rate: int, batch: int
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select(), rate=rate)
    sent_at: list[tuple[float, int]] = []
    sink = ListSink(max_batch=batch)
    sink.on_send = lambda _: sent_at.append((fake.monotonic, len(sink.batches[-1])))
    execute_replay(slice_store, ledger, sink, run.replay_id, "ana", fake.clock)
    assert sum(n for _, n in sent_at) == 40
    before = 0
    for moment, size in sent_at:
        assert size <= min(batch, rate)
        # No batch leaves before the events ahead of it were due at `rate` a second.
        assert moment >= before / rate - 1e-9
        before += size
    assert sum(fake.sleeps) == pytest.approx((40 - sent_at[-1][1]) / rate)


# --- the ledger itself ----------------------------------------------------------------------


def test_audit_log_is_complete_and_oldest_first(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    assert ledger.audit_log(0, 10) == []
    plan, run = confirmed(slice_store, ledger, fake, select())
    execute_replay(slice_store, ledger, ListSink(), run.replay_id, "bob", fake.clock)
    with pytest.raises(ReplayError):
        confirm_replay(slice_store, ledger, plan.plan_id, "eve", clock=fake.clock)
    log = ledger.audit_log(0, 100)
    assert [(r.action, r.who, r.outcome) for r in log] == [
        (replay.PLANNED, "ana", "ok"),
        (replay.CONFIRMED, "ana", "ok"),
        (replay.COMPLETED, "bob", "ok"),
        (replay.REFUSED, "eve", "plan_already_confirmed"),
    ]
    assert all(r.plan_id == plan.plan_id for r in log)
    assert [r.replay_id for r in log] == [None, run.replay_id, run.replay_id, None]
    assert dict(log[0].detail) == {"events": 40, "bytes": plan.bytes, "target": TARGET}
    assert dict(log[1].detail) == {"events": 40, "target": TARGET, "rate": replay.MAX_RATE}
    assert [r.at_us for r in log] == sorted(r.at_us for r in log)
    assert ledger.audit_log(log[1].at_us, 100) == log[1:]
    assert ledger.audit_log(0, 2) == log[:2]
    assert ledger.audit_log(log[-1].at_us + 1, 100) == []


def test_runs_are_listed_newest_first(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    assert ledger.runs(10) == []
    started = []
    for n in range(3):
        fake.now += 1_000_000
        started.append(confirmed(slice_store, ledger, fake, select([f"c{n}"]))[1])
    newest_first = [r.replay_id for r in reversed(started)]
    assert [r.replay_id for r in ledger.runs(10)] == newest_first
    assert [r.replay_id for r in ledger.runs(2)] == newest_first[:2]


def test_ledger_writes_keep_their_promises(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock
) -> None:
    assert ledger.plan("nothing") is None and ledger.run("nothing") is None
    plan = plan_replay(slice_store, ledger, select(), "ana", fake.clock)
    audit = AuditRecord(fake.now_us(), "ana", replay.PLANNED, plan.plan_id)
    ledger.save_plan(plan, audit)  # a plan id is saved once: this is a no-op
    assert ledger.plan(plan.plan_id) == plan
    assert [r.action for r in ledger.audit_log(0, 10)] == [replay.PLANNED]

    run = confirm_replay(slice_store, ledger, plan.plan_id, "ana", clock=fake.clock)
    other = ReplayRun("e" * 32, plan.plan_id, TARGET, replay.RUNNING, 1, 0, 1, "eve", 1, 1)
    with pytest.raises(ReplayError) as caught:
        ledger.confirm(
            plan.plan_id, other, AuditRecord(1, "eve", replay.CONFIRMED, plan.plan_id, "e" * 32)
        )
    assert caught.value.code == "plan_already_confirmed"
    assert ledger.run("e" * 32) is None and len(ledger.audit_log(0, 10)) == 2

    ledger.advance(run.replay_id, 30, fake.now_us())
    ledger.advance(run.replay_id, 20, fake.now_us())  # never backwards
    current = ledger.run(run.replay_id)
    assert current is not None and current.sent == 30

    cancel = AuditRecord(fake.now_us(), "bob", replay.CANCEL_REQUESTED, plan.plan_id)
    assert ledger.request_cancel(run.replay_id, cancel)
    end = AuditRecord(fake.now_us(), "ana", replay.CANCELLED, plan.plan_id, run.replay_id)
    ledger.finish(run.replay_id, replay.CANCELLED, end.at_us, end)
    again = AuditRecord(fake.now_us(), "ana", replay.COMPLETED, plan.plan_id, run.replay_id)
    ledger.finish(run.replay_id, replay.COMPLETED, again.at_us, again)  # ended: left as it is
    ended = ledger.run(run.replay_id)
    assert ended is not None
    assert (ended.status, ended.sent, ended.cancel_requested) == (replay.CANCELLED, 30, True)
    assert ended.updated_us == end.at_us
    assert not ledger.request_cancel(run.replay_id, cancel)
    assert [r.action for r in ledger.audit_log(0, 10)] == [
        replay.PLANNED,
        replay.CONFIRMED,
        replay.CANCEL_REQUESTED,
        replay.CANCELLED,
    ]


def test_a_run_into_a_file_sink_writes_one_line_a_message(
    slice_store: EventStore, ledger: ReplayLedger, fake: FakeClock, tmp_path: Path
) -> None:
    _, run = confirmed(slice_store, ledger, fake, select(["c0"]))
    path = tmp_path / "out.ndjson"
    sink = FileSink(path)
    try:
        execute_replay(slice_store, ledger, sink, run.replay_id, "ana", fake.clock)
    finally:
        sink.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    messages = [json.loads(line) for line in lines[:-1]]
    assert [m["seq"] for m in messages] == list(range(1, 21))
    assert {m["replay_id"] for m in messages} == {run.replay_id}
