"""Replay under faults on the local engine: senders killed with SIGKILL mid-run and resumed,
operators confirming one plan at the same moment, and a ledger that cannot be written.

What must hold (docs/replay.md): every planned event reaches the target, a consumer can
drop every re-sent message by ``(replay_id, seq)``, the ledger's count is exact, a plan
runs once, and nothing is sent unless its audit record was written first.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from children import crash_env

from pik.domain import replay
from pik.domain.instants import parse_instant
from pik.domain.records import EventRecord
from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun, Selection
from pik.engines.local import LocalEngine
from pik.engines.local.ledger import LEDGER_NAME, LocalReplayLedger
from pik.engines.local.replay import LocalReplayBackend
from pik.services.ingest import ingest_batch
from pik.services.replay import collect, confirm_replay, plan_replay
from pik.sinks import AFTER_SEND, MID_SEND, FileSink
from pik.storage_errors import StoreUnavailableError

MakeEvent = Callable[..., bytes]
T0 = parse_instant("2026-11-01T00:00:00Z")
T1 = parse_instant("2026-11-02T00:00:00Z")
EVENTS = 3_000
RATE = replay.MAX_RATE
PIK = [sys.executable, "-m", "pik"]

SENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pik.engines.local.replay import LocalReplayBackend
    backend = LocalReplayBackend.open(Path(sys.argv[1]), who="sender")
    run = backend.ledger.run(sys.argv[2])
    print(backend.start(run).status, flush=True)
    """
)


@pytest.fixture
def store(store_path: Path, make_event: MakeEvent) -> Path:
    """Two entities, payloads of varied size (messages of varied length), sub-second times."""
    rng = random.Random(11)
    engine = LocalEngine(store_path)
    try:
        lines = [
            make_event(
                entity_id=f"c{n % 2}",
                event_time=f"2026-11-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{n:06d}Z",
                payload={"n": n, "pad": "x" * rng.randint(0, 2_000)},
            )
            for n in range(EVENTS)
        ]
        ingest_batch(engine, lines, "test")
    finally:
        engine.close()
    return store_path


def confirmed(store: Path, target: Path, rate: int = RATE) -> tuple[Plan, ReplayRun]:
    backend = LocalReplayBackend.open(store, who="ana")
    try:
        selection = Selection.build(["c0", "c1"], T0, T1, backend.check_target(f"file:{target}"))
        plan = plan_replay(backend.store, backend.ledger, selection, backend.who)
        return plan, confirm_replay(backend.store, backend.ledger, plan.plan_id, "ana", rate)
    finally:
        backend.close()


def start_sender(
    store: Path, replay_id: str, crash_point: str | None = None
) -> subprocess.Popen[bytes]:
    env = crash_env(crash_point)
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, str(store), replay_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_of(store: Path, replay_id: str) -> ReplayRun:
    ledger = LocalReplayLedger(store)
    try:
        found = ledger.run(replay_id)
    finally:
        ledger.close()
    assert found is not None
    return found


def read_target(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The messages in the file, and the lines that do not parse (cut-short sends)."""
    messages, torn = [], []
    if not path.exists():
        return messages, torn
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            messages.append(json.loads(line))
        except ValueError:
            torn.append(line)
    return messages, torn


def planned(store: Path, plan: Plan) -> tuple[list[EventRecord], list[bytes]]:
    engine = LocalEngine(store, read_only=True)
    try:
        records = collect(engine, plan.selection)
        return records, [engine.read_raw(r) for r in records]
    finally:
        engine.close()


def check_delivery(store: Path, plan: Plan, run: ReplayRun, target: Path, kills: int) -> None:
    """Every planned event in the file, in its place; repeats only re-sent batches."""
    final = run_of(store, run.replay_id)
    assert (final.status, final.sent, final.total) == (replay.COMPLETED, plan.events, plan.events)
    records, raws = planned(store, plan)
    messages, torn = read_target(target)
    assert len(torn) <= kills
    full_lines = set(target.read_bytes().split(b"\n"))
    for fragment in torn:  # each a prefix of a message sent again whole
        assert any(line.startswith(fragment) and line != fragment for line in full_lines)
    seqs = [m["seq"] for m in messages]
    assert set(seqs) == set(range(1, plan.events + 1))
    assert len(seqs) - plan.events <= kills * FileSink.max_batch
    for message in messages:
        index = message["seq"] - 1
        assert message["replay_id"] == run.replay_id and message["total"] == plan.events
        assert message["event_id"] == records[index].event_id.hex()
        assert message["raw"].encode() == raws[index]


# --- (a) SIGKILL mid-send, then resume -------------------------------------------------------


def kill_and_resume(store: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    target = tmp_path / "out.ndjson"
    plan, run = confirmed(store, target)
    kills = 0
    for _ in range(rng.randint(1, 3)):
        before = len(read_target(target)[0])
        goal = min(plan.events - 1, before + rng.randint(1, 800))
        child = start_sender(store, run.replay_id)
        deadline = time.monotonic() + 60
        pause = rng.choice([0.0, rng.uniform(0, 0.01)])  # in a write, a commit, a sleep
        while child.poll() is None and time.monotonic() < deadline:
            if target.exists() and target.read_bytes().count(b"\n") >= goal:
                time.sleep(pause)
                break
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        if child.returncode != -signal.SIGKILL:
            assert child.returncode == 0, child.stderr
            break  # it finished first: nothing more to kill
        kills += 1
        # What a killed sender left: the recorded count never runs ahead of the file, and
        # at most the one batch it was sending is in the file unrecorded.
        recorded = run_of(store, run.replay_id)
        assert recorded.status == replay.RUNNING
        seqs = {m["seq"] for m in read_target(target)[0]}
        assert set(range(1, recorded.sent + 1)) <= seqs
        assert max(seqs, default=0) <= recorded.sent + FileSink.max_batch
        assert seqs == set(range(1, max(seqs, default=0) + 1))
    backend = LocalReplayBackend.open(store, who="ana")
    try:
        current = backend.ledger.run(run.replay_id)
        assert current is not None
        if current.status == replay.RUNNING:
            backend.start(current)
    finally:
        backend.close()
    check_delivery(store, plan, run, target, kills)


@pytest.mark.parametrize("seed", [20261127, 7])
def test_kill_9_mid_send_then_resume_delivers_every_event(
    store: Path, tmp_path: Path, seed: int
) -> None:
    kill_and_resume(store, tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_ten_seeds_then_resume_delivers_every_event(
    store: Path, tmp_path: Path, seed: int
) -> None:
    kill_and_resume(store, tmp_path, seed)


@pytest.mark.parametrize("point", [MID_SEND, AFTER_SEND])
def test_a_crash_at_each_send_point_then_resume(store: Path, tmp_path: Path, point: str) -> None:
    target = tmp_path / "out.ndjson"
    plan, run = confirmed(store, target)
    child = start_sender(store, run.replay_id, crash_point=point)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert run_of(store, run.replay_id).sent == 0, "the batch in flight was not recorded"
    messages, torn = read_target(target)
    if point == MID_SEND:
        assert messages[:1] and not target.read_bytes().endswith(b"\n")
    else:
        assert [m["seq"] for m in messages] == list(range(1, FileSink.max_batch + 1))
        assert torn == []
    resumed = start_sender(store, run.replay_id)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert out.strip() == b"completed"
    check_delivery(store, plan, run, target, kills=1)


# --- (b) two operators confirm one plan at once ------------------------------------------------


class ConfirmAtOnce(LocalReplayLedger):
    """A ledger whose confirmations wait for each other, so both reach the write together."""

    def __init__(self, store_dir: Path, barrier: threading.Barrier) -> None:
        super().__init__(store_dir)
        self.barrier = barrier

    def confirm(self, plan_id: str, run: ReplayRun, audit: AuditRecord) -> None:
        self.barrier.wait(timeout=30)
        super().confirm(plan_id, run, audit)


@pytest.fixture
def operators(store: Path) -> Iterator[list[tuple[LocalEngine, ConfirmAtOnce]]]:
    barrier = threading.Barrier(2)
    pairs = [(LocalEngine(store, read_only=True), ConfirmAtOnce(store, barrier)) for _ in range(2)]
    yield pairs
    for engine, ledger in pairs:
        engine.close()
        ledger.close()


def test_two_operators_confirm_one_plan_at_once_in_threads(
    store: Path, tmp_path: Path, operators: list[tuple[LocalEngine, ConfirmAtOnce]]
) -> None:
    for round_ in range(5):
        engine, ledger = operators[0]
        selection = Selection.build(["c0"], T0, T1, f"file:{tmp_path}/r{round_}.ndjson")
        plan = plan_replay(engine, ledger, selection, "ana")
        outcomes: dict[str, object] = {}

        def operator(
            who: str,
            pair: tuple[LocalEngine, ConfirmAtOnce],
            p: Plan = plan,
            seen: dict[str, object] = outcomes,
        ) -> None:
            try:
                seen[who] = confirm_replay(pair[0], pair[1], p.plan_id, who)
            except ReplayError as error:
                seen[who] = error

        threads = [
            threading.Thread(target=operator, args=(who, pair))
            for who, pair in zip(("ana", "bob"), operators, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        runs = [o for o in outcomes.values() if isinstance(o, ReplayRun)]
        errors = [o for o in outcomes.values() if isinstance(o, ReplayError)]
        assert len(runs) == 1 and len(errors) == 1, outcomes
        assert errors[0].code == "plan_already_confirmed"
        check_one_run(store, plan, runs[0])


def check_one_run(store: Path, plan: Plan, winner: ReplayRun) -> None:
    ledger = LocalReplayLedger(store)
    try:
        assert [r.replay_id for r in ledger.runs(100) if r.plan_id == plan.plan_id] == [
            winner.replay_id
        ]
        log = [r for r in ledger.audit_log(0, 10_000) if r.plan_id == plan.plan_id]
        assert sorted((r.action, r.outcome) for r in log[1:]) == [
            (replay.CONFIRMED, "ok"),
            (replay.REFUSED, "plan_already_confirmed"),
        ]
        confirmed_by = next(r.who for r in log if r.action == replay.CONFIRMED)
        refused_who = next(r.who for r in log if r.action == replay.REFUSED)
        assert confirmed_by == winner.confirmed_by and refused_who != confirmed_by
    finally:
        ledger.close()


CONFIRMER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pik.domain.replay import ReplayError
    from pik.engines.local.replay import LocalReplayBackend
    from pik.services.replay import confirm_replay
    store, plan_id, go, who = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    backend = LocalReplayBackend.open(store, who=who)
    backend.ledger.plan(plan_id)  # opened and read: ready
    while not go.exists():
        time.sleep(0.001)
    try:
        run = confirm_replay(backend.store, backend.ledger, plan_id, who)
        print("confirmed", run.replay_id)
    except ReplayError as error:
        print("refused", error.code)
    """
)


def test_operators_in_separate_processes_confirm_one_plan_at_once(
    store: Path, tmp_path: Path
) -> None:
    selection = Selection.build(["c1"], T0, T1, f"file:{tmp_path}/out.ndjson")
    backend = LocalReplayBackend.open(store, who="ana")
    try:
        plan = plan_replay(backend.store, backend.ledger, selection, "ana")
    finally:
        backend.close()
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONFIRMER, str(store), plan.plan_id, str(go), f"op{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    time.sleep(0.5)
    go.touch()
    said = [c.communicate(timeout=60) for c in children]
    assert [c.returncode for c in children] == [0] * 4, [err for _, err in said]
    words = sorted(out.decode().split()[0] for out, _ in said)
    assert words == ["confirmed", "refused", "refused", "refused"]
    winner = next(out.decode().split() for out, _ in said if out.startswith(b"confirmed"))
    ledger = LocalReplayLedger(store)
    try:
        assert [r.replay_id for r in ledger.runs(10)] == [winner[1]]
        log = [r for r in ledger.audit_log(0, 100) if r.plan_id == plan.plan_id]
        assert sorted((r.action, r.outcome) for r in log) == [
            (replay.CONFIRMED, "ok"),
            (replay.PLANNED, "ok"),
            *[(replay.REFUSED, "plan_already_confirmed")] * 3,
        ]
    finally:
        ledger.close()


# --- (c) a ledger that cannot be written: nothing is sent ------------------------------------


def nothing_confirmed(store: Path, plan: Plan, target: Path) -> None:
    """No run, no confirmation record, no message; the plan can still be confirmed."""
    assert not target.exists()
    backend = LocalReplayBackend.open(store, who="ana")
    try:
        assert backend.ledger.runs(10) == []
        actions = [r.action for r in backend.ledger.audit_log(0, 100)]
        assert replay.CONFIRMED not in actions
        run = confirm_replay(backend.store, backend.ledger, plan.plan_id, "ana")
        assert backend.start(run).sent == plan.events
    finally:
        backend.close()


def planned_only(store: Path, target: Path) -> Plan:
    backend = LocalReplayBackend.open(store, who="ana")
    try:
        selection = Selection.build(["c0"], T0, T1, backend.check_target(f"file:{target}"))
        return plan_replay(backend.store, backend.ledger, selection, "ana")
    finally:
        backend.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_ledger_refuses_the_confirmation(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.ndjson"
    plan = planned_only(store, target)
    ledger_file = store / LEDGER_NAME
    ledger_file.chmod(0o444)
    try:
        backend = LocalReplayBackend.open(store, who="ana")
        try:
            assert backend.ledger.plan(plan.plan_id) == plan  # still readable
            with pytest.raises(StoreUnavailableError, match="replay ledger"):
                confirm_replay(backend.store, backend.ledger, plan.plan_id, "ana")
        finally:
            backend.close()
    finally:  # SQLite gave the -wal and -shm files it made the ledger's mode: fix all
        for path in store.glob(f"{LEDGER_NAME}*"):
            path.chmod(0o644)
    nothing_confirmed(store, plan, target)


FILE_SIZE_LIMITED = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from pik.engines.local.replay import LocalReplayBackend
    from pik.services.replay import confirm_replay
    from pik.storage_errors import StoreUnavailableError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    backend = LocalReplayBackend.open(Path(sys.argv[1]), who="child")
    assert backend.ledger.plan(sys.argv[2]) is not None  # opened and readable
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))  # no file may grow any more
    try:
        confirm_replay(backend.store, backend.ledger, sys.argv[2], "child")
    except StoreUnavailableError as exc:
        print(type(exc).__name__, exc)
        sys.exit(3)
    """
)


def test_a_ledger_that_cannot_grow_refuses_the_confirmation(store: Path, tmp_path: Path) -> None:
    # SQLite reports a write past RLIMIT_FSIZE as a disk I/O error (ENOSPC alone is "full").
    target = tmp_path / "out.ndjson"
    plan = planned_only(store, target)
    done = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED, str(store), plan.plan_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("StoreUnavailableError") and "replay ledger" in done.stdout
    nothing_confirmed(store, plan, target)


def test_a_ledger_that_cannot_be_opened_stops_the_cli_before_anything_is_sent(
    store: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.ndjson"
    plan = planned_only(store, target)
    wal = store / f"{LEDGER_NAME}-wal"
    wal.unlink(missing_ok=True)
    wal.mkdir()  # the ledger's write-ahead log cannot be created: it cannot be used at all
    try:
        done = subprocess.run(
            [*PIK, "--store", str(store), "replay", "run", plan.plan_id, "--confirm"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        wal.rmdir()
    assert done.returncode == 1
    assert "replay ledger" in done.stderr and "[storage_unavailable]" in done.stderr
    nothing_confirmed(store, plan, target)
