"""The demo store: built once, reused, and rebuilt when this version cannot read it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pik.demo import LiveFeed, build_demo
from pik.engines.local import LocalEngine


def test_demo_is_built_once_and_rebuilt_when_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "demo"
    assert build_demo(path) is True
    assert build_demo(path) is False
    db = sqlite3.connect(path / "index.sqlite3")
    db.execute("UPDATE meta SET value = 'old' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    assert build_demo(path) is True, "an index of another schema is rebuilt for the demo"
    engine = LocalEngine(path, read_only=True)
    try:
        assert engine.counts()["entities"] == 60
        assert engine.verify().ok
    finally:
        engine.close()


def test_a_demo_store_open_in_another_process_is_not_reset_under_it(tmp_path: Path) -> None:
    # As when `pik-tui --demo` is browsing it: deleting its files would leave the TUI
    # reading a deleted index and stop its feed.
    path = tmp_path / "demo"
    build_demo(path)
    engine = LocalEngine(path, read_only=True)
    try:
        reset = subprocess.run(
            [sys.executable, "-m", "pik", "demo", "--path", str(path), "--reset"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reset.returncode == 1
        assert "is open in another process" in reset.stderr
        assert "quit it, then try again" in reset.stderr
        assert engine.counts()["entities"] == 60, "the open store is left whole"
        assert engine.verify().ok
    finally:
        engine.close()
    assert build_demo(path, reset=True) is True, "once closed, it is reset"


def test_the_live_feed_keeps_adding_events_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "demo"
    build_demo(path)
    before = _counts(path)
    feed = LiveFeed(path, interval_s=0.02, seed=3).start()
    deadline = time.monotonic() + 10
    while feed.batches < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    feed.stop()
    after = _counts(path)
    assert feed.batches >= 5
    assert after["accepted"] > before["accepted"]
    assert after["accepted"] + after["duplicate"] + after["rejected"] > before["accepted"] + (
        before["duplicate"] + before["rejected"]
    )
    stopped = feed.batches
    time.sleep(0.1)
    assert feed.batches == stopped, "nothing is fed after stop()"
    engine = LocalEngine(path, read_only=True)
    try:
        assert engine.verify().ok
    finally:
        engine.close()


def _counts(path: Path) -> dict[str, int]:
    engine = LocalEngine(path, read_only=True)
    try:
        return engine.counts()
    finally:
        engine.close()


def test_a_replayed_demo_store_can_be_reset(tmp_path: Path) -> None:
    from pik.domain.instants import parse_instant
    from pik.domain.replay import Selection
    from pik.engines.local.replay import LocalReplayBackend
    from pik.services.replay import confirm_replay, plan_replay

    path = tmp_path / "demo"
    build_demo(path)
    backend = LocalReplayBackend.open(path)
    try:
        selection = Selection.build(
            ["customer-0001"],
            0,
            parse_instant("2100-01-01T00:00:00Z"),
            backend.check_target("processor:day"),
        )
        plan = plan_replay(backend.store, backend.ledger, selection, "tester")
        run = confirm_replay(backend.store, backend.ledger, plan.plan_id, "tester")
        backend.start(run)
    finally:
        backend.close()
    assert {"ledger.sqlite", "versions.sqlite", "replay-locks"} <= {p.name for p in path.iterdir()}
    assert build_demo(path, reset=True) is True
    assert not (path / "ledger.sqlite").exists() and not (path / "replay-locks").exists()


def test_a_store_that_is_not_the_demo_is_never_replaced(tmp_path: Path) -> None:
    """Neither a reset nor an unreadable index lets the demo replace real data."""
    import pytest
    from click.testing import CliRunner

    from pik.cli.main import cli
    from pik.demo import NotADemoStoreError
    from pik.services.ingest import ingest_batch

    real = tmp_path / "real"
    engine = LocalEngine(real, create=True)
    ingest_batch(
        engine,
        [
            b'{"source":"s","event_type":"t","entity_id":"e",'
            b'"event_time":"2026-11-01T00:00:00Z","payload":{}}'
        ],
        "mine",
    )
    engine.close()
    segments = sorted((real / "segments").iterdir())
    with pytest.raises(NotADemoStoreError, match="reindex"):
        build_demo(real, reset=True)
    (real / "index.sqlite3").write_bytes(b"garbage")
    with pytest.raises(NotADemoStoreError):
        build_demo(real)
    assert sorted((real / "segments").iterdir()) == segments and not (real / "DEMO").exists()
    runner = CliRunner()
    result = runner.invoke(cli, ["--store", str(real), "demo", "--reset"])
    assert result.exit_code == 1 and "not the demo" in result.output
    # `pik --store DIR demo` builds the demo at DIR, and may reset it later.
    built = tmp_path / "mine-demo"
    result = runner.invoke(cli, ["--store", str(built), "--json", "demo"])
    assert result.exit_code == 0, result.output
    assert (built / "DEMO").exists() and build_demo(built, reset=True) is True


def test_a_store_the_user_may_not_write_gets_a_message_not_a_traceback(tmp_path: Path) -> None:
    """As another user than the store's owner (root drops to nobody here): ingest,
    reindex, versions and queries each say what is wrong and exit 1."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import pytest

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    root = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        store = root / "store"
        build_demo(store)
        for path in [store, *store.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        lines = root / "events.ndjson"
        lines.write_text('{"source": "s"}\n')
        os.chmod(lines, 0o644)
        pik = [sys.executable, "-m", "pik", "--store", str(store)]
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        for command in (
            ["ingest", str(lines)],
            ["reindex"],
            ["versions", "list", "c"],
            ["entities"],
        ):
            done = subprocess.run(
                [*nobody, *pik, *command],
                capture_output=True,
                text=True,
                env={**os.environ, "HOME": str(root), "PYTHONPATH": os.pathsep.join(sys.path)},
                timeout=60,
                check=False,
            )
            assert done.returncode == 1, (command, done.stderr)
            assert "Traceback" not in done.stderr and "owner" in done.stderr, (command, done.stderr)
    finally:
        shutil.rmtree(root)
