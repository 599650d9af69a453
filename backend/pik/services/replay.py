"""Replay: preview a slice as a plan, confirm it once, send it in order, resume after a crash.

Every step goes through the ledger first. A plan is saved with its audit record; a
confirmation starts the run and audits it in one write, before the first message is sent;
each refusal is audited with its code. A ledger that cannot be written stops the replay
before anything is sent (fail closed).

A run sends batches in event-time order, at most ``rate`` events a second, and records
after each batch how far it got. Killed at any point, it resumes from that record: the
batch in flight may be sent again (consumers drop repeats by ``(replay_id, seq)``), no
planned event is skipped.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pik.domain import replay
from pik.domain.instants import now_us
from pik.domain.records import EventRecord
from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun, Selection
from pik.ports import EventStore, Progress, ReplayLedger, ReplaySink
from pik.services.raw import stored_bytes, verified

PAGE = 1_000
"""Timeline rows read per request while collecting a plan's events."""


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall time for records, a monotonic clock and sleep for pacing (tests pass fakes)."""

    now_us: Callable[[], int] = now_us
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


def collect(
    store: EventStore, selection: Selection, as_of_us: int | None = None
) -> list[EventRecord]:
    """The events of ``selection`` (ingested by ``as_of_us``, if given), in replay order."""
    found: list[EventRecord] = []
    for entity_id in selection.entity_ids:
        after: tuple[int, bytes] | None = None
        while True:
            page = store.timeline(
                entity_id, selection.start_us, selection.end_us, PAGE, after=after
            )
            found.extend(
                r
                for r in page
                if selection.admits(r) and (as_of_us is None or r.ingest_time_us <= as_of_us)
            )
            if len(found) > replay.MAX_PLAN_EVENTS:
                raise ReplayError(
                    "plan_too_large",
                    f"the selection holds more than {replay.MAX_PLAN_EVENTS:,} events; "
                    "narrow the window or the entities and replay it as several plans",
                    422,
                    "entity_ids",
                )
            if len(page) < PAGE:
                break
            after = (page[-1].event_time_us, page[-1].event_id)
    return replay.replay_order(found)


def _refuse(
    ledger: ReplayLedger,
    error: ReplayError,
    who: str,
    at_us: int,
    plan_id: str | None,
    replay_id: str | None = None,
) -> ReplayError:
    """Audit a refusal, then hand the error back to be raised."""
    ledger.audit(
        AuditRecord(
            at_us,
            who,
            replay.REFUSED,
            plan_id if replay.is_id(plan_id) else None,
            replay_id if replay.is_id(replay_id) else None,
            error.code,
            {"message": str(error)},
        )
    )
    return error


def plan_replay(
    store: EventStore,
    ledger: ReplayLedger,
    selection: Selection,
    who: str,
    clock: Clock = SYSTEM_CLOCK,
) -> Plan:
    """The dry-run: the exact events ``selection`` covers, saved as a plan to confirm."""
    try:
        records = collect(store, selection)
    except ReplayError as error:  # a selection too large to plan: refused, and audited
        raise _refuse(ledger, error, who, clock.now_us(), None) from None
    created_us = clock.now_us()
    plan = replay.make_plan(selection, records, created_us, who)
    audit = AuditRecord(
        created_us,
        who,
        replay.PLANNED,
        plan.plan_id,
        detail={"events": plan.events, "bytes": plan.bytes, "target": selection.target},
    )
    try:
        ledger.save_plan(plan, audit)
    except ReplayError as error:  # a ledger that cannot keep this plan: audited the same
        raise _refuse(ledger, error, who, created_us, None) from None
    return plan


def confirm_replay(
    store: EventStore,
    ledger: ReplayLedger,
    plan_id: str,
    who: str,
    rate: int = replay.DEFAULT_RATE,
    clock: Clock = SYSTEM_CLOCK,
) -> ReplayRun:
    """Confirm a plan: refused (and audited) if it is unknown, expired, confirmed before,
    or if its events changed since the preview; else a new run, audited, nothing sent."""
    at_us = clock.now_us()
    try:
        replay.check_rate(rate)
    except ReplayError as error:
        raise _refuse(ledger, error, who, at_us, plan_id) from None
    plan = ledger.plan(plan_id)
    if plan is None:
        raise _refuse(
            ledger,
            replay.plan_not_found(plan_id),
            who,
            at_us,
            plan_id,
        )
    if plan.expired(at_us):
        raise _refuse(
            ledger,
            ReplayError(
                "plan_expired",
                "the plan expired before it was confirmed; preview the replay again",
                409,
                "plan_id",
            ),
            who,
            at_us,
            plan_id,
        )
    try:
        records = collect(store, plan.selection)
    except ReplayError as error:  # grown past the limit since the preview: audited too
        raise _refuse(ledger, error, who, at_us, plan_id) from None
    if replay.set_digest(records) != plan.digest:
        raise _refuse(
            ledger,
            ReplayError(
                "plan_changed",
                f"the selection now holds {len(records):,} events where the plan had "
                f"{plan.events:,} (events arrived or changed since the preview); "
                "preview the replay again",
                409,
                "plan_id",
            ),
            who,
            at_us,
            plan_id,
        )
    run = ReplayRun(
        replay_id=new_replay_id(plan_id),
        plan_id=plan_id,
        target=plan.selection.target,
        status=replay.RUNNING,
        total=plan.events,
        sent=0,
        rate=rate,
        confirmed_by=who,
        started_us=at_us,
        updated_us=at_us,
    )
    audit = AuditRecord(
        at_us,
        who,
        replay.CONFIRMED,
        plan_id,
        run.replay_id,
        detail={"events": plan.events, "target": run.target, "rate": rate},
    )
    try:
        ledger.confirm(plan_id, run, audit)
    except ReplayError as error:
        raise _refuse(ledger, error, who, at_us, plan_id) from None
    return run


def new_replay_id(plan_id: str) -> str:
    """A fresh replay id (random: two confirmations could never share one)."""
    return hashlib.sha256(f"{plan_id}:{secrets.token_hex(16)}".encode()).hexdigest()[:32]


class _Pacer:
    """Holds a run to ``rate`` events a second: event k goes no earlier than k / rate
    seconds after the first."""

    def __init__(self, rate: int, clock: Clock) -> None:
        self.rate = rate
        self.clock = clock
        self.start = clock.monotonic()
        self.sent = 0

    def wait(self, count: int) -> None:
        due = self.start + self.sent / self.rate
        delay = due - self.clock.monotonic()
        if delay > 0:
            self.clock.sleep(delay)
        self.sent += count


def execute_replay(
    store: EventStore,
    ledger: ReplayLedger,
    sink: ReplaySink,
    replay_id: str,
    who: str,
    clock: Clock = SYSTEM_CLOCK,
    progress: Progress | None = None,
    should_pause: Callable[[], bool] | None = None,
) -> ReplayRun:
    """Send a confirmed run's messages from where its ledger says it got to.

    Returns the run as the ledger holds it at the end: completed, cancelled (at an
    operator's request), or still running when ``should_pause`` said to stop (a Lambda
    near its deadline); a paused or crashed run is continued by calling this again.
    """
    at_us = clock.now_us()
    run = ledger.run(replay_id)
    if run is None:
        raise _no_such_replay(ledger, replay_id, who, at_us)
    if run.status != replay.RUNNING:
        raise _refuse(
            ledger, replay.replay_ended(replay_id, run.status), who, at_us, run.plan_id, replay_id
        )
    plan = ledger.plan(run.plan_id)
    if plan is None:  # the ledger wrote plan and run together: only damage gets here
        raise ReplayError("plan_not_found", f"the plan of replay {replay_id} is gone", 409)
    records = collect(store, plan.selection, as_of_us=plan.as_of_us)
    if replay.set_digest(records) != plan.digest:
        _end(ledger, run, replay.FAILED, who, clock, "plan_changed")
        raise ReplayError(
            "plan_changed",
            f"the planned events changed under replay {replay_id} ({len(records):,} found, "
            f"{plan.events:,} planned); it was stopped, preview the replay again",
            409,
            "replay_id",
        )
    if run.sent:
        ledger.audit(
            AuditRecord(
                at_us, who, replay.RESUMED, run.plan_id, replay_id, detail={"from": run.sent}
            )
        )
    pacer = _Pacer(run.rate, clock)
    position = run.sent
    if progress:
        progress(position, run.total)
    while position < len(records):
        if should_pause is not None and should_pause():
            return ledger.run(replay_id) or run
        current = ledger.run(replay_id)
        if current is not None and current.cancel_requested:
            return _end(ledger, run, replay.CANCELLED, who, clock, "ok", position)
        size = min(sink.max_batch, run.rate, len(records) - position)
        batch = records[position : position + size]
        raws = _raws(store, ledger, run, batch, who, clock, position)
        messages = [
            replay.replay_message(run, position + i + 1, record, raw)
            for i, (record, raw) in enumerate(zip(batch, raws, strict=True))
        ]
        pacer.wait(size)
        try:
            sink.send(messages)
        except ReplayError as error:
            # A refusal no retry fixes (the target refused a message, the processor found
            # a window's stored bytes altered): the run ends failed, and that is audited.
            _end(ledger, run, replay.FAILED, who, clock, error.code, position, message=str(error))
            raise
        position += size
        ledger.advance(replay_id, position, clock.now_us())
        if progress:
            progress(position, run.total)
    return _end(ledger, run, replay.COMPLETED, who, clock, "ok", position)


def _raws(
    store: EventStore,
    ledger: ReplayLedger,
    run: ReplayRun,
    batch: Sequence[EventRecord],
    who: str,
    clock: Clock,
    sent: int,
) -> list[bytes]:
    """A batch's stored bytes, read together and each verified against its recorded
    sha256; a run never sends bytes that do not verify, it fails instead (with ``sent``
    messages sent before)."""
    found: list[bytes] = []
    for record, raw in zip(batch, stored_bytes(store, batch), strict=True):
        if raw is None or not verified(record, raw):
            event = record.event_id.hex()
            _end(ledger, run, replay.FAILED, who, clock, "raw_corrupt", sent, event)
            raise ReplayError(
                "raw_corrupt",
                f"the stored bytes of event {event} are missing or do not match their "
                "sha256; the replay stopped before sending them (run `pik verify`)",
                409,
            )
        found.append(raw)
    return found


def _end(
    ledger: ReplayLedger,
    run: ReplayRun,
    status: str,
    who: str,
    clock: Clock,
    outcome: str,
    sent: int | None = None,
    detail: str = "",
    message: str = "",
) -> ReplayRun:
    at_us = clock.now_us()
    facts: dict[str, object] = {"sent": run.sent if sent is None else sent}
    if detail:
        facts["event_id"] = detail
    if message:
        facts["message"] = message
    ledger.finish(
        run.replay_id,
        status,
        at_us,
        AuditRecord(at_us, who, status, run.plan_id, run.replay_id, outcome, facts),
    )
    return ledger.run(run.replay_id) or run.ended(status, at_us)


def cancel_replay(
    ledger: ReplayLedger, replay_id: str, who: str, clock: Clock = SYSTEM_CLOCK
) -> None:
    """Ask a running replay to stop after the batch it is sending; refused (and audited)
    when there is no such running replay."""
    at_us = clock.now_us()
    run = ledger.run(replay_id)
    if run is None:
        raise _no_such_replay(ledger, replay_id, who, at_us)
    audit = AuditRecord(at_us, who, replay.CANCEL_REQUESTED, run.plan_id, replay_id)
    if not ledger.request_cancel(replay_id, audit):
        raise _refuse(
            ledger,
            ReplayError(
                "replay_not_running",
                f"replay {replay_id} is not running, so there is nothing to cancel",
                409,
                "replay_id",
            ),
            who,
            at_us,
            run.plan_id,
            replay_id,
        )


def take_rate(ledger: ReplayLedger, run: ReplayRun) -> None:
    """Record the rate a resume asked for (``run.rate``), by the sender about to send the
    run. A run that ended meanwhile keeps its rate; sending it is refused, and audited, as
    for any ended run."""
    stored = ledger.run(run.replay_id)
    if stored is not None and stored.rate != run.rate:
        ledger.set_rate(run.replay_id, run.rate)


def _no_such_replay(ledger: ReplayLedger, replay_id: str, who: str, at_us: int) -> ReplayError:
    """The refusal (audited) of an action on a replay id the ledger does not know."""
    return _refuse(ledger, replay.replay_not_found(replay_id), who, at_us, None, replay_id)


class ReplayBackend(Protocol):
    """What an edge (the CLI, a Lambda handler) needs to run replays on one engine: its
    store and ledger, who is acting, which targets it can send to, and how a confirmed
    run is started (sent at once, or handed to a worker)."""

    store: EventStore
    ledger: ReplayLedger
    who: str
    """The acting identity, as audited: the OS user locally, the IAM principal on AWS."""

    def check_target(self, target: str) -> str:
        """``target`` in the form a plan records it, or a ``ReplayError`` (422, field
        ``target``) when this engine cannot send there."""
        ...

    def start(self, run: ReplayRun, progress: Progress | None = None) -> ReplayRun:
        """Begin sending a confirmed run; returns the run as it then stands."""
        ...

    def close(self) -> None: ...
