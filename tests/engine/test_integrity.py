"""Raw is the truth: verify finds damage, reindex rebuilds the identical index from raw."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from tamper import alter_raw

from pik import frames
from pik.engines.local import LocalEngine
from pik.engines.local.disk import StorageFullError
from pik.engines.local.engine import SegmentPolicy
from pik.engines.local.index import IndexCorruptError
from pik.engines.local.layout import Layout, StoreError
from pik.engines.local.rebuild import reindex
from pik.engines.local.rows import SegmentRow
from pik.engines.local.segments import create_segment
from pik.services.ingest import ingest_batch
from pik.services.query import event_detail

MakeEvent = Callable[..., bytes]
TABLES = (
    "segments",
    "events",
    "attempts",
    "rates",
    "rejections",
    "coverage",
    "coverage_all_sources",
    "entities",
)


def dump(index: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(index)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in TABLES}
    finally:
        db.close()


def fill(store: Path, make_event: MakeEvent) -> None:
    engine = LocalEngine(store, policy=SegmentPolicy(max_bytes=8192))
    try:
        for n in range(30):
            raws = [
                make_event(entity_id=f"e{n % 4}", payload={"n": n, "pad": "x" * 200}),
                make_event(entity_id="dup"),
                b"not json",
                make_event(idempotency_key=f"k{n % 3}", payload={"n": n}),
            ]
            ingest_batch(engine, raws, f"origin-{n % 2}")
    finally:
        engine.close()


def test_reindex_rebuilds_an_identical_index(store_path: Path, make_event: MakeEvent) -> None:
    fill(store_path, make_event)
    before = dump(store_path / "index.sqlite3")
    assert len(before["segments"]) > 2 and len(before["events"]) == 34
    reindex(store_path)
    assert dump(store_path / "index.sqlite3") == before


def test_reindex_under_open_stores_leaves_them_on_the_new_index(
    store_path: Path, make_event: MakeEvent
) -> None:
    fill(store_path, make_event)
    index = store_path / "index.sqlite3"
    inode = index.stat().st_ino
    writer = LocalEngine(store_path)
    reader = LocalEngine(store_path, create=False, read_only=True)
    try:
        assert reader.counts()["events"] == 34
        db = sqlite3.connect(index)  # damage a derived row the rebuild must put right
        with db:
            db.execute("DELETE FROM entities WHERE entity_id = 'e0'")
        db.close()
        reindex(store_path)
        assert index.stat().st_ino == inode, "the file the open stores hold was kept"
        ingest_batch(writer, [make_event(entity_id="after-reindex")], "a")
        entities = [e.entity_id for e in reader.entities("", None, 10, None)]
        assert "e0" in entities and "after-reindex" in entities
        report = reader.verify()
        assert report.ok and report.events == 35, report.problems
    finally:
        writer.close()
        reader.close()


def test_a_deleted_index_is_detected_and_rebuilt(store_path: Path, make_event: MakeEvent) -> None:
    fill(store_path, make_event)
    before = dump(store_path / "index.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store_path}/index.sqlite3{suffix}").unlink(missing_ok=True)
    with pytest.raises(IndexCorruptError, match=r"pik --store .* reindex"):
        LocalEngine(store_path)
    reindex(store_path)
    after = dump(store_path / "index.sqlite3")
    # Segment timestamps come from the files when the old index is gone; all else is equal.
    assert {t: rows for t, rows in after.items() if t != "segments"} == {
        t: rows for t, rows in before.items() if t != "segments"
    }
    engine = LocalEngine(store_path)
    try:
        assert engine.verify().ok
    finally:
        engine.close()


def test_a_corrupted_index_is_never_served(store_path: Path, make_event: MakeEvent) -> None:
    fill(store_path, make_event)
    for suffix in ("-wal", "-shm"):
        Path(f"{store_path}/index.sqlite3{suffix}").unlink(missing_ok=True)
    (store_path / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexCorruptError):
        LocalEngine(store_path)
    reindex(store_path)
    engine = LocalEngine(store_path)
    try:
        assert engine.verify().ok and engine.counts()["events"] == 34
    finally:
        engine.close()


def test_a_damaged_index_page_is_never_served(store_path: Path, make_event: MakeEvent) -> None:
    fill(store_path, make_event)
    engine = LocalEngine(store_path)
    event_id = engine.entities("", None, 1, None)[0].entity_id
    some = engine.timeline(event_id, 0, 2**62, 1)[0].event_id
    engine.close()
    index = store_path / "index.sqlite3"
    db = sqlite3.connect(index)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    db.close()
    with index.open("r+b") as file:  # the events table's first page, overwritten
        file.seek((root - 1) * page)
        file.write(b"\xa5" * page)
    engine = LocalEngine(store_path)  # the damage is not where an open reads
    try:
        with pytest.raises(IndexCorruptError, match=r"damaged .* `pik --store .* reindex`"):
            engine.event(some)
        report = engine.verify()
        kinds = [p.kind for p in report.problems]
        assert not report.ok and set(kinds) == {"index_integrity"}, kinds
        assert "pik --store" in report.problems[-1].message, "the last one says what to do"
        with pytest.raises(IndexCorruptError):
            ingest_batch(engine, [make_event(entity_id="after")], "a")
    finally:
        engine.close()
    reindex(store_path)
    engine = LocalEngine(store_path)
    try:
        assert engine.verify().ok and engine.event(some) is not None
        assert engine.counts()["events"] == 34, "the refused write stored nothing"
    finally:
        engine.close()


def test_verify_reports_tampered_raw_bytes(engine: LocalEngine, make_event: MakeEvent) -> None:
    outcome = ingest_batch(engine, [make_event(payload={"amount": 100})], "a")[0]
    record = engine.event(outcome.event_id)  # type: ignore[arg-type]
    assert record is not None
    alter_raw(engine, record, b"100", b"999")
    report = engine.verify()
    kinds = {p.kind for p in report.problems}
    assert not report.ok and {"event_hash_mismatch", "frame_corrupt"} <= kinds
    detail = event_detail(engine, outcome.event_id)  # type: ignore[arg-type]
    assert detail is not None and not detail.verified
    assert detail.read_error is None, "altered, not unreadable"


def test_an_event_in_a_segment_cut_short_is_reported_as_cut(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    outcome = ingest_batch(engine, [make_event(payload={"amount": 100})], "a")[0]
    record = engine.event(outcome.event_id)  # type: ignore[arg-type]
    assert record is not None
    os.truncate(engine.layout.segment(int(record.segment)), record.offset + 10)
    detail = event_detail(engine, record.event_id)
    assert detail is not None and not detail.verified
    assert detail.read_error == (
        f"only 10 of its {record.length} bytes are stored (the file was cut short)"
    )


def test_a_torn_tail_is_never_indexed_and_writing_goes_on(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    ingest_batch(engine, [make_event(entity_id="before")], "a")
    path = engine.layout.segment(1)
    with open(path, "ab") as handle:
        handle.write(b"PKF1E\x00\x00\x00\xff\xff\x00\x00garbage")  # a frame cut short
    report = engine.verify()
    assert report.ok and {p.kind for p in report.problems} == {"unacknowledged_tail"}
    ingest_batch(engine, [make_event(entity_id="after")], "a")
    assert engine.layout.segment(2).exists(), "the torn segment is sealed, a new one opened"
    report = engine.verify()
    assert report.ok and report.events == 2
    assert [p.kind for p in report.problems] == ["unacknowledged_tail"]


def test_an_existing_segment_is_never_overwritten(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    ingest_batch(engine, [make_event()], "a")
    before = engine.layout.segment(1).read_bytes()
    with pytest.raises(FileExistsError):
        create_segment(engine.layout, 1)
    assert engine.layout.segment(1).read_bytes() == before


def test_complete_frames_left_unindexed_are_recovered(
    store_path: Path, make_event: MakeEvent
) -> None:
    engine = LocalEngine(store_path)
    ingest_batch(engine, [make_event(entity_id="a")], "x")
    engine.close()
    # Simulate a crash after the raw fsync and before the index commit: copy the event's
    # frame onto the end of the segment with another event's bytes, leaving the index behind.
    other = LocalEngine(store_path.parent / "scratch")
    ingest_batch(other, [make_event(entity_id="b")], "x")
    other.close()
    scratch = (store_path.parent / "scratch" / "segments" / "00000001.seg").read_bytes()
    with open(store_path / "segments" / "00000001.seg", "ab") as handle:
        handle.write(scratch[8:])
    engine = LocalEngine(store_path)
    try:
        engine.reconcile()
        assert [e.entity_id for e in engine.entities("", None, 10, None)] == ["a", "b"]
        assert engine.verify().problems == ()
    finally:
        engine.close()


def test_a_read_only_open_writes_nothing(store_path: Path, make_event: MakeEvent) -> None:
    fill(store_path, make_event)

    def state() -> dict[Path, tuple[int, int]]:
        # SQLite may tidy away its empty -wal/-shm files on close; they hold no data.
        return {
            p: (p.stat().st_mtime_ns, p.stat().st_size)
            for p in store_path.rglob("*")
            if not p.name.endswith(("-wal", "-shm"))
        }

    before = state()
    reader = LocalEngine(store_path, read_only=True)
    try:
        assert reader.counts()["events"] == 34
        assert reader.verify().ok
        with pytest.raises(StoreError, match="read-only"):
            reader.commit([])
    finally:
        reader.close()
    assert state() == before


def test_ingest_time_comes_from_the_engine_clock(store_path: Path, make_event: MakeEvent) -> None:
    engine = LocalEngine(store_path, clock=lambda: 1_800_000_000_000_000)
    try:
        outcome = ingest_batch(engine, [make_event()], "a")[0]
        record = engine.event(outcome.event_id)  # type: ignore[arg-type]
        assert record is not None and record.ingest_time_us == 1_800_000_000_000_000
    finally:
        engine.close()


def ingest_one(store: Path, raw: bytes) -> Layout:
    engine = LocalEngine(store)
    try:
        ingest_batch(engine, [raw], "a")
    finally:
        engine.close()
    return engine.layout


def test_a_segment_file_without_its_magic_is_never_written_into(
    store_path: Path, make_event: MakeEvent
) -> None:
    layout = ingest_one(store_path, make_event(entity_id="before"))
    # What a crash while creating a segment left behind in older versions: an empty file
    # under a segment's name. A rebuild must not make it the segment new frames go into.
    layout.segment(2).touch()
    reindex(store_path)
    engine = LocalEngine(store_path)
    try:
        ingest_batch(engine, [make_event(entity_id="after")], "a")
        assert engine.layout.segment(3).read_bytes().startswith(b"PIKSEG")
        assert engine.layout.segment(2).read_bytes() == b""
    finally:
        engine.close()
    reindex(store_path)
    engine = LocalEngine(store_path)
    try:
        assert [e.entity_id for e in engine.entities("", None, 10, None)] == ["after", "before"]
        report = engine.verify()
        assert report.ok and report.events == 2, report.problems
    finally:
        engine.close()


def test_an_active_segment_without_its_magic_is_sealed_before_writing(
    store_path: Path, make_event: MakeEvent
) -> None:
    layout = ingest_one(store_path, make_event(entity_id="before"))
    layout.segment(2).touch()
    db = sqlite3.connect(layout.index)  # as an older rebuild recorded such a file
    with db:
        db.execute("UPDATE segments SET sealed_us = 1, sha256 = 'x' WHERE segment_id = 1")
        db.execute("INSERT INTO segments (segment_id, created_us, committed_end) VALUES (2, 1, 0)")
    db.close()
    engine = LocalEngine(store_path)
    try:
        ingest_batch(engine, [make_event(entity_id="after")], "a")
        assert engine.layout.segment(2).read_bytes() == b""
        assert engine.layout.segment(3).exists()
    finally:
        engine.close()


def test_a_full_index_is_storage_full_and_the_refused_batch_is_never_stored(
    engine: LocalEngine, make_event: MakeEvent
) -> None:
    ingest_batch(engine, [make_event(entity_id="first")], "a")
    segment = engine.layout.segment(1)
    size = segment.stat().st_size
    db = engine._index._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    batch = [make_event(entity_id=f"e{n}", payload={"pad": "x" * 900}) for n in range(200)]
    with pytest.raises(StorageFullError, match=r"the index .* cannot grow"):
        ingest_batch(engine, batch, "a")
    assert segment.stat().st_size == size, "the refused batch's bytes were taken back"
    db.execute("PRAGMA max_page_count = 1073741823")
    # The next write recovers whatever raw the index does not know: nothing of the refused
    # batch may come back with it, since its sender was told it failed.
    ingest_batch(engine, [make_event(entity_id="unrelated")], "b")
    assert engine.counts()["events"] == 2
    outcomes = ingest_batch(engine, batch, "retry")
    assert {o.status.value for o in outcomes} == {"accepted"}
    report = engine.verify()
    assert report.ok and report.events == 202, report.problems


def test_index_commits_lost_to_a_power_cut_are_back_when_the_store_is_opened(
    store_path: Path, make_event: MakeEvent
) -> None:
    layout = ingest_one(store_path, make_event(entity_id="kept"))
    saved = layout.index.read_bytes()
    ingest_one(store_path, make_event(entity_id="acknowledged"))
    # The index as a power cut with synchronous=NORMAL may leave it: its last commit gone,
    # the segment (fsync'd before the acknowledgement) whole.
    for suffix in ("-wal", "-shm"):
        Path(f"{layout.index}{suffix}").unlink(missing_ok=True)
    layout.index.write_bytes(saved)
    engine = LocalEngine(store_path)
    try:
        names = [e.entity_id for e in engine.entities("", None, 10, None)]
        assert names == ["acknowledged", "kept"], "recovered at open, not at the next write"
        assert engine.verify().problems == ()
    finally:
        engine.close()


def test_verify_while_another_process_ingests_reports_no_false_problem(
    store_path: Path, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_one(store_path, make_event(entity_id="before"))
    verifier = LocalEngine(store_path, create=False, read_only=True)
    writer = LocalEngine(store_path)
    segments_of = verifier._index.segments

    def then_ingest() -> list[SegmentRow]:
        rows = segments_of()
        # Another process commits a batch between verify's reads of the index.
        ingest_batch(writer, [make_event(entity_id="during")], "a")
        return rows

    monkeypatch.setattr(verifier._index, "segments", then_ingest)
    try:
        report = verifier.verify()
        assert report.ok and report.events == 1, report.problems
        assert [p.kind for p in report.problems] == ["unacknowledged_tail"]
    finally:
        writer.close()
        verifier.close()


def test_reindex_of_a_store_with_no_segment_yet_keeps_the_open_index(store_path: Path) -> None:
    writer = LocalEngine(store_path)
    try:
        inode = writer.layout.index.stat().st_ino
        reindex(store_path)
        assert writer.layout.index.stat().st_ino == inode
    finally:
        writer.close()


def test_segments_are_made_where_hard_links_are_not(
    engine: LocalEngine, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # as vfat answers

    monkeypatch.setattr(os, "link", refused)
    ingest_batch(engine, [make_event()], "a")
    assert [p.name for p in engine.layout.segments.iterdir()] == ["00000001.seg"]
    with pytest.raises(FileExistsError):
        create_segment(engine.layout, 1)
    assert engine.verify().ok


def test_reindex_over_an_index_of_another_schema_keeps_its_file_and_times(
    store_path: Path, make_event: MakeEvent
) -> None:
    fill(store_path, make_event)
    index = store_path / "index.sqlite3"
    before = dump(index)["segments"]
    db = sqlite3.connect(index)  # as an older version of pik left it
    with db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.close()
    inode = index.stat().st_ino
    with pytest.raises(IndexCorruptError, match="another schema"):
        LocalEngine(store_path)
    reindex(store_path)
    assert index.stat().st_ino == inode, "copied into, not replaced"
    assert dump(index)["segments"] == before, "segment times carried over"
    engine = LocalEngine(store_path)
    try:
        assert engine.verify().ok
    finally:
        engine.close()


def test_damage_with_valid_frames_after_it_is_reported_not_taken_for_a_torn_tail(
    store_path: Path, make_event: MakeEvent
) -> None:
    """One bad byte early in a segment: a rebuild indexes what comes before it and says
    that valid frames follow (their events are not indexed); verify reports it as an
    error from then on. A torn tail, with nothing valid after it, stays a warning."""
    engine = LocalEngine(store_path)
    for n in range(5):
        ingest_batch(engine, [make_event(entity_id=f"e{n}")], "a")
    # Batch 6 holds three events; its second is damaged below. Batch 7 follows it.
    ingest_batch(engine, [make_event(entity_id=f"f{n}") for n in range(3)], "a")
    ingest_batch(engine, [make_event(entity_id="g0")], "a")
    engine.close()
    path = Layout(store_path).segment(1)
    data = bytearray(path.read_bytes())
    found = frames.scan(bytes(data), len(frames.SEGMENT_MAGIC), len(data))
    events = [f for f in found if isinstance(f, frames.Frame) and f.kind == frames.EVENT]
    os.chmod(path, 0o644)
    data[events[6].offset + 30] ^= 0xFF  # f1, in the middle of the last batch
    path.write_bytes(bytes(data))
    Layout(store_path).index.unlink()
    damages = reindex(store_path)
    assert [(d.segment_id, d.offset < d.resumes) for d in damages] == [(1, True)]
    engine = LocalEngine(store_path, read_only=True)
    try:
        report = engine.verify()
        assert not report.ok and "frames_after_damage" in {p.kind for p in report.problems}
        # Indexed up to the damage: every earlier batch, and f0 before it in its own batch
        # (a later batch after the damage shows that batch was whole on disk).
        names = {e.entity_id for e in engine.entities("", None, 10, None)}
        assert names == {"e0", "e1", "e2", "e3", "e4", "f0"}
    finally:
        engine.close()
    from click.testing import CliRunner

    from pik.cli.main import cli

    result = CliRunner().invoke(cli, ["--store", str(store_path), "--json", "reindex"])
    assert result.exit_code == 1 and "valid frames follow" in result.output
    assert json.loads(result.stdout)["damaged"][0]["segment"] == "00000001"


def test_a_hole_a_power_cut_left_in_the_last_write_is_a_torn_write(
    store_path: Path, make_event: MakeEvent
) -> None:
    """Pages of a write whose fsync never returned can reach the disk out of order: a hole
    in its middle, its end frame after it. Nothing written after it shows the write was
    whole, so recovery indexes none of it, even the frames before the hole."""
    engine = LocalEngine(store_path)
    ingest_batch(engine, [make_event(entity_id="kept")], "a")
    saved = engine.layout.index.read_bytes()  # the index before the last write
    torn = [make_event(entity_id=f"t{n}", payload={"pad": "x" * 5000}) for n in range(3)]
    ingest_batch(engine, torn, "a")
    engine.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{store_path}/index.sqlite3{suffix}").unlink(missing_ok=True)
    Layout(store_path).index.write_bytes(saved)
    path = Layout(store_path).segment(1)
    data = bytearray(path.read_bytes())
    found = frames.scan(bytes(data), len(frames.SEGMENT_MAGIC), len(data))
    events = [f for f in found if isinstance(f, frames.Frame) and f.kind == frames.EVENT]
    hole = events[2].offset + 100  # inside t1: zeros, as an unwritten page reads
    data[hole : hole + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    engine = LocalEngine(store_path)  # start-up recovery
    try:
        names = {e.entity_id for e in engine.entities("", None, 10, None)}
        assert names == {"kept"}, "no part of the torn write is indexed"
    finally:
        engine.close()


def test_verify_and_reindex_report_progress_inside_a_segment(
    store_path: Path, make_event: MakeEvent
) -> None:
    """One segment holds up to 64 MiB: the bar must move while it is read, not only after."""
    engine = LocalEngine(store_path)
    for start in range(0, 10_000, 1_000):
        ingest_batch(
            engine, [make_event(entity_id=f"e{n}") for n in range(start, start + 1_000)], "a"
        )
    seen: list[tuple[int, int]] = []
    try:
        assert engine.verify(lambda done, total: seen.append((done, total))).ok
    finally:
        engine.close()
    assert len(seen) >= 3 and seen == sorted(seen), "reports inside the one segment, in order"
    assert seen[-1][0] == seen[-1][1] == (store_path / "segments" / "00000001.seg").stat().st_size
    rebuilt: list[tuple[int, int]] = []
    reindex(store_path, progress=lambda done, total: rebuilt.append((done, total)))
    assert len(rebuilt) >= 2 and rebuilt == sorted(rebuilt)
    assert rebuilt[-1][0] == rebuilt[-1][1]
