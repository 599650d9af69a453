"""Replay on the local engine: file targets, the NDJSON file sink, the ledger's own file, and
the backend that sends a run in this process."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tamper import alter_raw

from pik.domain import replay
from pik.domain.instants import parse_instant
from pik.domain.replay import ReplayError, Selection
from pik.domain.versions import AggregateSpec
from pik.engines.local import LocalEngine
from pik.engines.local.ledger import LEDGER_NAME, LedgerFullError, LocalReplayLedger
from pik.engines.local.rebuild import reindex
from pik.engines.local.replay import LOCKS, LocalReplayBackend, os_user
from pik.engines.local.versions import LocalVersionStore
from pik.services.ingest import ingest_batch
from pik.services.replay import confirm_replay, plan_replay
from pik.services.replay_control import LedgerControl
from pik.sinks import FileSink, file_target, target_path
from pik.storage_errors import StoreFullError, StoreUnavailableError

MakeEvent = Callable[..., bytes]
T0 = parse_instant("2026-11-01T00:00:00Z")
T1 = parse_instant("2026-11-02T00:00:00Z")


def refused_target(target: str, cwd: Path | None = None) -> str:
    with pytest.raises(ReplayError) as caught:
        file_target(target, cwd)
    assert (caught.value.code, caught.value.status, caught.value.field) == (
        "invalid_selection",
        422,
        "target",
    )
    return str(caught.value)


# --- targets -----------------------------------------------------------------------------------


def test_a_file_target_is_made_absolute_when_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    assert file_target("file:out.ndjson", tmp_path) == f"file:{tmp_path}/out.ndjson"
    assert file_target("file:sub/../out.ndjson", tmp_path) == f"file:{tmp_path}/out.ndjson"
    assert file_target(f"file://{tmp_path}/x.ndjson") == f"file:{tmp_path}/x.ndjson"
    monkeypatch.chdir(tmp_path / "sub")
    assert file_target("file:./o.ndjson") == f"file:{tmp_path}/sub/o.ndjson"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_target("file:~/h.ndjson") == f"file:{tmp_path}/h.ndjson"
    existing = tmp_path / "existing.ndjson"
    existing.write_text("kept\n")
    assert file_target(f"file:{existing}") == f"file:{existing}"
    assert target_path(file_target("file:o.ndjson", tmp_path)) == tmp_path / "o.ndjson"


def test_a_file_target_that_cannot_be_written_is_refused_with_what_to_do(tmp_path: Path) -> None:
    assert "file:PATH" in refused_target("out.ndjson")
    assert "file:PATH" in refused_target("s3://bucket/key")
    assert "empty" in refused_target("file:")
    assert "local path" in refused_target("file://host/share/out.ndjson")
    assert "does not exist" in refused_target("file:missing/out.ndjson", tmp_path)
    assert "directory" in refused_target(f"file:{tmp_path}")
    assert "directory" in refused_target(f"file:{tmp_path}/")
    assert "directory" in refused_target("file:.", tmp_path)
    assert "directory" in refused_target("file:..", tmp_path)
    assert "control" in refused_target("file:out\x00.ndjson", tmp_path)
    assert "control" in refused_target("file:out\x1b[2J.ndjson", tmp_path)
    os.mkfifo(tmp_path / "fifo")
    assert "regular file" in refused_target("file:fifo", tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing" / "out.ndjson")
    assert "symbolic link to nothing" in refused_target("file:dangling", tmp_path)
    with pytest.raises(ReplayError):
        target_path("file:relative/out.ndjson")


# --- the file sink -----------------------------------------------------------------------------


def test_a_file_sink_appends_one_line_a_message(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(b'{"before": 1}\n')
    sink = FileSink(path)
    sink.send([b'{"a": 1}', b'{"b": 2}'])
    sink.send([])
    sink.close()
    sink.close()
    again = FileSink(path)
    again.send([b'{"c": 3}'])
    again.close()
    assert path.read_bytes() == b'{"before": 1}\n{"a": 1}\n{"b": 2}\n{"c": 3}\n'
    with pytest.raises(ValueError, match="one line"):
        FileSink(path).send([b'{"a":\n1}'])
    with pytest.raises(ValueError, match="closed"):
        again.send([b"{}"])


def test_a_send_cut_short_leaves_one_unreadable_line_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(b'{"seq": 1}\n{"seq": 2, "ra')  # a crash mid-line
    sink = FileSink(path)
    sink.send([b'{"seq": 2}', b'{"seq": 3}'])
    sink.close()
    assert path.read_bytes().split(b"\n") == [
        b'{"seq": 1}',
        b'{"seq": 2, "ra',
        b'{"seq": 2}',
        b'{"seq": 3}',
        b"",
    ]


def test_sinks_sending_to_one_file_at_once_never_mix_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.ndjson"
    barrier = threading.Barrier(4)

    def writer(n: int) -> None:
        sink = FileSink(path)
        barrier.wait()
        for batch in range(20):
            sink.send([json.dumps({"w": n, "b": batch, "pad": "x" * 3000}).encode()] * 50)
        sink.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4 * 20 * 50
    documents = [json.loads(line) for line in lines]
    for start in range(0, len(documents), 50):  # each batch stays whole and together
        assert len({(d["w"], d["b"]) for d in documents[start : start + 50]}) == 1


# --- the ledger's file -------------------------------------------------------------------------


@pytest.fixture
def filled(engine: LocalEngine, make_event: MakeEvent) -> LocalEngine:
    ingest_batch(
        engine,
        [
            make_event(entity_id=f"c{n % 2}", event_time=f"2026-11-01T10:00:{n:02d}.5Z")
            for n in range(30)
        ],
        "test",
    )
    return engine


def selection(target: str, entities: tuple[str, ...] = ("c0", "c1")) -> Selection:
    return Selection.build(entities, T0, T1, target)


def test_the_ledger_is_its_own_durable_file_that_reindex_leaves_alone(
    filled: LocalEngine, store_path: Path
) -> None:
    ledger = LocalReplayLedger(store_path)
    assert ledger.runs(5) == [] and ledger.plan("x") is None and ledger.audit_log(0, 5) == []
    assert not (store_path / LEDGER_NAME).exists(), "reading wrote nothing"
    plan = plan_replay(filled, ledger, selection("file:/tmp/x"), "ana")
    assert (store_path / LEDGER_NAME).exists()
    db = sqlite3.connect(store_path / LEDGER_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    ledger.close()
    filled.close()
    reindex(store_path)
    reopened = LocalReplayLedger(store_path)
    assert reopened.plan(plan.plan_id) == plan
    assert [r.action for r in reopened.audit_log(0, 5)] == [replay.PLANNED]
    reopened.close()


def test_a_ledger_of_another_format_is_refused(store_path: Path, filled: LocalEngine) -> None:
    db = sqlite3.connect(store_path / LEDGER_NAME)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('format', 'pik-ledger/99')")
    db.commit()
    db.close()
    with pytest.raises(StoreUnavailableError, match="pik-ledger/99"):
        LocalReplayLedger(store_path).runs(1)


def test_a_ledger_that_is_not_a_database_is_unavailable(
    store_path: Path, filled: LocalEngine
) -> None:
    (store_path / LEDGER_NAME).write_bytes(b"this is not sqlite" * 100)
    ledger = LocalReplayLedger(store_path)
    with pytest.raises(StoreUnavailableError, match="replay ledger"):
        ledger.runs(1)
    with pytest.raises(StoreUnavailableError):
        plan_replay(filled, ledger, selection("file:/tmp/x"), "ana")


def test_a_full_ledger_keeps_nothing_of_the_write_it_refused(
    store_path: Path, filled: LocalEngine
) -> None:
    ledger = LocalReplayLedger(store_path)
    try:
        plan_replay(filled, ledger, selection("file:/tmp/x"), "ana")
        db = ledger._connection(create=True)  # the only way to fill a file on purpose
        assert db is not None
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full"
        wide = selection("file:/tmp/" + "y" * 1_000, tuple(f"c{n}-{'z' * 200}" for n in range(200)))
        with pytest.raises(LedgerFullError, match="make room"):
            plan_replay(filled, ledger, wide, "ana")
        assert isinstance(LedgerFullError(28, "x"), StoreFullError)
        assert [r.action for r in ledger.audit_log(0, 10)] == [replay.PLANNED]
        assert len(ledger.runs(10)) == 0
    finally:
        ledger.close()


# --- the backend -------------------------------------------------------------------------------


@pytest.fixture
def backend(filled: LocalEngine, store_path: Path) -> Iterator[LocalReplayBackend]:
    filled.close()
    opened = LocalReplayBackend.open(store_path, who="ana")
    yield opened
    opened.close()


def test_the_backend_reads_a_read_only_store_and_sends_into_a_file(
    backend: LocalReplayBackend, tmp_path: Path, store_path: Path
) -> None:
    assert getattr(backend.store, "read_only", False)
    target = backend.check_target(f"file:{tmp_path}/out.ndjson")
    plan = plan_replay(backend.store, backend.ledger, selection(target), backend.who)
    run = confirm_replay(backend.store, backend.ledger, plan.plan_id, backend.who)
    done = backend.start(run)
    assert (done.status, done.sent) == (replay.COMPLETED, 30)
    lines = (tmp_path / "out.ndjson").read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 31))
    assert (store_path / LOCKS / f"{run.replay_id}.lock").exists()


def test_a_run_refused_at_its_start_leaves_no_file(
    backend: LocalReplayBackend, tmp_path: Path
) -> None:
    target = backend.check_target(f"file:{tmp_path}/out.ndjson")
    plan = plan_replay(backend.store, backend.ledger, selection(target), backend.who)
    run = confirm_replay(backend.store, backend.ledger, plan.plan_id, backend.who)
    backend.start(run)
    (tmp_path / "out.ndjson").unlink()
    with pytest.raises(ReplayError) as caught:
        backend.start(run)
    assert caught.value.code == "replay_ended"
    assert not (tmp_path / "out.ndjson").exists()


def test_a_run_another_process_is_sending_is_refused(
    backend: LocalReplayBackend, tmp_path: Path, store_path: Path
) -> None:
    target = backend.check_target(f"file:{tmp_path}/out.ndjson")
    plan = plan_replay(backend.store, backend.ledger, selection(target), backend.who)
    run = confirm_replay(backend.store, backend.ledger, plan.plan_id, backend.who)
    (store_path / LOCKS).mkdir(exist_ok=True)
    holder = os.open(store_path / LOCKS / f"{run.replay_id}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(ReplayError) as caught:
            backend.start(run)
        assert (caught.value.code, caught.value.status) == ("replay_in_progress", 409)
    finally:
        os.close(holder)
    assert not (tmp_path / "out.ndjson").exists()
    last = backend.ledger.audit_log(0, 10)[-1]
    assert (last.action, last.outcome) == (replay.REFUSED, "replay_in_progress")
    assert backend.start(run).status == replay.COMPLETED  # released: it goes on


def test_a_resume_at_another_rate_refused_by_a_live_sender_changes_no_rate(
    backend: LocalReplayBackend, tmp_path: Path, store_path: Path
) -> None:
    target = backend.check_target(f"file:{tmp_path}/out.ndjson")
    plan = plan_replay(backend.store, backend.ledger, selection(target), backend.who)
    run = confirm_replay(backend.store, backend.ledger, plan.plan_id, backend.who, rate=2)
    control = LedgerControl(backend)
    asked = control.resume(run.replay_id, 5_000)
    assert asked.rate == 5_000
    (store_path / LOCKS).mkdir(exist_ok=True)
    holder = os.open(store_path / LOCKS / f"{run.replay_id}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another process sends it, at its own rate
        with pytest.raises(ReplayError, match="another process"):
            control.start(asked)
    finally:
        os.close(holder)
    stored = backend.ledger.run(run.replay_id)
    assert stored is not None and stored.rate == 2, "the live sender's rate stands"
    resumed = [r for r in backend.ledger.audit_log(0, 100) if r.action == replay.RESUME_REQUESTED]
    assert [r.detail for r in resumed] == [{"rate": 5_000, "was": 2}], "what was asked"
    done = control.start(asked)  # nobody sends it now: the rate asked is taken
    assert (done.status, done.rate) == (replay.COMPLETED, 5_000)


def test_a_processor_target_feeds_the_processor(
    backend: LocalReplayBackend, store_path: Path
) -> None:
    target = backend.check_target("processor:day")
    assert target == "processor:day"
    for bad in ("processor:week", "processor:day:amount"):
        with pytest.raises(ReplayError) as caught:
            backend.check_target(bad)
        assert (caught.value.code, caught.value.field) == ("invalid_selection", "target")
    with pytest.raises(ReplayError, match="processor:"):
        backend.check_target("queue:orders")
    plan = plan_replay(backend.store, backend.ledger, selection(target, ("c0",)), backend.who)
    run = confirm_replay(backend.store, backend.ledger, plan.plan_id, backend.who)
    assert backend.start(run).status == replay.COMPLETED
    versions = LocalVersionStore(store_path)
    try:
        latest = versions.latest(AggregateSpec("day").spec_id, "c0", T0)
        assert latest is not None and latest.replay_id == run.replay_id
        assert latest.aggregate.count == 15
    finally:
        versions.close()


def test_a_window_mate_with_altered_bytes_fails_a_processor_run_audited(
    filled: LocalEngine, store_path: Path
) -> None:
    """Replaying one event into the processor reads its whole window: another event of it
    whose stored bytes were altered stops the run as failed (`raw_corrupt`), audited, with
    no version written, rather than escaping as an error that leaves the run open."""
    records = filled.timeline("c0", T0, T1, 100)
    alter_raw(filled, records[-1], b'"amount":1', b'"amount":9')
    filled.close()
    backend = LocalReplayBackend.open(store_path, who="ana")
    try:
        target = backend.check_target("processor:day:/amount")
        first_only = Selection.build(("c0",), T0, records[0].event_time_us + 1, target)
        plan = plan_replay(backend.store, backend.ledger, first_only, backend.who)
        assert plan.events == 1
        run = confirm_replay(backend.store, backend.ledger, plan.plan_id, backend.who)
        with pytest.raises(ReplayError) as caught:
            backend.start(run)
        assert caught.value.code == "raw_corrupt" and records[-1].event_id.hex() in str(
            caught.value
        )
        ended = backend.ledger.run(run.replay_id)
        assert ended is not None and (ended.status, ended.sent) == (replay.FAILED, 0)
        last = backend.ledger.audit_log(0, 10)[-1]
        assert (last.action, last.outcome, last.detail["sent"]) == (replay.FAILED, "raw_corrupt", 0)
    finally:
        backend.close()
    versions = LocalVersionStore(store_path)
    try:
        assert versions.latest(AggregateSpec("day", "/amount").spec_id, "c0", T0) is None
    finally:
        versions.close()


def test_the_acting_user_is_never_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert os_user()

    def no_user() -> str:
        raise KeyError("no passwd entry")

    monkeypatch.setattr("getpass.getuser", no_user)
    assert os_user() == f"uid-{os.getuid()}"
