"""What the local engine does with its files: shared segments, sealing, safe names."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pik.engines.local import LocalEngine
from pik.engines.local.engine import SegmentPolicy
from pik.engines.local.layout import Layout, StoreError
from pik.services.ingest import ingest_batch

MakeEvent = Callable[..., bytes]


def test_duplicate_bytes_are_not_stored_again(engine: LocalEngine, make_event: MakeEvent) -> None:
    raw = make_event(payload={"blob": "x" * 10_000})
    ingest_batch(engine, [raw], "a")
    size_after_first = sum(p.stat().st_size for p in engine.layout.segments.iterdir())
    ingest_batch(engine, [raw] * 20, "a")
    grown = sum(p.stat().st_size for p in engine.layout.segments.iterdir()) - size_after_first
    assert grown < 20 * 200, "duplicates are recorded as small frames, not stored again"


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


def test_a_link_planted_as_the_stores_temporary_file_is_not_written_through(
    tmp_path: Path, make_event: MakeEvent
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("DATA")
    root = tmp_path / "shared"
    root.mkdir()
    (root / "pik.json.tmp").symlink_to(victim)  # a leftover name a new store accepts
    engine = LocalEngine(root)
    ingest_batch(engine, [make_event()], "test")
    engine.close()
    assert victim.read_text() == "DATA"
    assert not (root / "pik.json").is_symlink()


@pytest.mark.parametrize("planted", ["write.lock", "segments/00000001.seg", "index.sqlite3"])
def test_a_store_holding_a_symbolic_link_is_refused_not_followed(
    tmp_path: Path, make_event: MakeEvent, planted: str
) -> None:
    root = tmp_path / "store"
    engine = LocalEngine(root)
    ingest_batch(engine, [make_event()], "test")
    engine.close()
    secret = tmp_path / "secret.txt"
    secret.write_text("not the store's")
    link = root / planted
    link.unlink()
    link.symlink_to(secret)
    with pytest.raises(StoreError, match="symbolic link"):
        LocalEngine(root)
    assert secret.read_text() == "not the store's"


def test_a_store_made_by_another_process_while_this_one_looked_is_opened(
    tmp_path: Path, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of several processes opening one new store: this one finds no identity,
    then the other finishes creating it (identity, index, ...) before this one checks the
    folder for foreign files. What it then finds is a store, not a foreign folder."""
    store = tmp_path / "store"
    other = LocalEngine(store)  # the other process, done creating it
    ingest_batch(other, [make_event()], "other")
    other.close()
    first_look = Layout.read_identity
    looks: list[int] = []

    def late(layout: Layout) -> str | None:
        looks.append(1)
        return None if len(looks) == 1 else first_look(layout)

    monkeypatch.setattr(Layout, "read_identity", late)
    engine = LocalEngine(store)
    try:
        assert engine.counts()["events"] == 1 and len(looks) >= 2
    finally:
        engine.close()
