"""Several processes, and processes killed with SIGKILL: nothing acknowledged is lost."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from children import crash_env

from pik.domain.envelope import Event, prepare
from pik.domain.limits import DEFAULT_LIMITS
from pik.engines.local import LocalEngine
from pik.engines.local.engine import SegmentPolicy
from pik.engines.local.layout import Layout
from pik.engines.local.rebuild import reindex
from pik.faults import CRASH_POINTS
from pik.services.ingest import ingest_batch

MakeEvent = Callable[..., bytes]
PIK = [sys.executable, "-m", "pik"]


def lines(start: int, stop: int) -> bytes:
    return b"".join(
        json.dumps(
            {
                "source": "load",
                "event_type": "tick",
                "entity_id": f"e{n % 50}",
                "event_time": f"2026-11-01T{n % 24:02d}:00:00Z",
                "payload": {"n": n},
            }
        ).encode()
        + b"\n"
        for n in range(start, stop)
    )


def test_four_processes_ingest_overlapping_batches(tmp_path: Path) -> None:
    store = tmp_path / "store"
    files = []
    for worker in range(4):  # worker w sends events [300w, 300w + 1000): heavy overlap
        path = tmp_path / f"w{worker}.ndjson"
        path.write_bytes(lines(300 * worker, 300 * worker + 1000))
        files.append(path)
    procs = [
        subprocess.Popen(
            [*PIK, "--store", str(store), "ingest", str(f), "--json", "--batch-size", "100"],
            stdout=subprocess.PIPE,
        )
        for f in files
    ]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    unique = 300 * 3 + 1000
    assert sum(r["accepted"] for r in reports) == unique
    assert sum(r["duplicate"] for r in reports) == 4000 - unique
    engine = LocalEngine(store)
    try:
        counts = engine.counts()
        assert (counts["events"], counts["accepted"], counts["duplicate"]) == (
            unique,
            unique,
            4000 - unique,
        )
        assert engine.verify().ok
    finally:
        engine.close()


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pik.engines.local import LocalEngine
    from pik.services.ingest import ingest_batch
    store, batch_file, acks = sys.argv[1], sys.argv[2], sys.argv[3]
    lines = Path(batch_file).read_bytes().splitlines()
    engine = LocalEngine(Path(store))
    with open(acks, "a") as ack:
        for start in range(0, len(lines), int(sys.argv[4])):
            outcomes = ingest_batch(engine, lines[start:start + int(sys.argv[4])], "child")
            ack.write("".join(o.event_id.hex() + "\\n" for o in outcomes))
            ack.flush()
    """
)


def run_child(
    store: Path, batch: Path, acks: Path, batch_size: int, crash_point: str | None = None
) -> subprocess.Popen[bytes]:
    env = crash_env(crash_point)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(batch), str(acks), str(batch_size)], env=env
    )


def check_store(store: Path, acked: set[str]) -> int:
    """Every acknowledged event has exactly one index entry with raw bytes that hash right."""
    engine = LocalEngine(store)
    try:
        engine.reconcile()
        report = engine.verify()
        assert report.ok, report.problems
        assert all(p.severity == "warning" for p in report.problems)
        for hex_id in acked:
            record = engine.event(bytes.fromhex(hex_id))
            assert record is not None, f"acknowledged event {hex_id} lost"
        return engine.counts()["events"]
    finally:
        engine.close()


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_each_point_then_retry_stores_once(tmp_path: Path, point: str) -> None:
    store, batch, acks = tmp_path / "store", tmp_path / "batch.ndjson", tmp_path / "acks"
    batch.write_bytes(lines(0, 200))
    LocalEngine(store).close()
    child = run_child(store, batch, acks, 200, crash_point=point)
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert not acks.exists() or acks.read_text() == "", "nothing was acknowledged"
    check_store(store, set())
    engine = LocalEngine(store)
    try:
        outcomes = ingest_batch(engine, batch.read_bytes().splitlines(), "retry")
        expected = [
            prepare(line, 2**62, DEFAULT_LIMITS) for line in batch.read_bytes().splitlines()
        ]
        assert [o.event_id for o in outcomes] == [
            e.event_id for e in expected if isinstance(e, Event)
        ]
        assert {o.status.value for o in outcomes} <= {"accepted", "duplicate"}
        assert engine.counts()["events"] == 200
        assert engine.verify().ok
    finally:
        engine.close()


def kill_at_random(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    store, acks = tmp_path / "store", tmp_path / "acks"
    LocalEngine(store).close()
    acked: set[str] = set()
    for run in range(kills):
        batch = tmp_path / f"batch{run}.ndjson"
        batch.write_bytes(lines(run * 100_000, run * 100_000 + 3_000))
        child = run_child(store, batch, acks, rng.choice([1, 10, 100, 500]))
        time.sleep(rng.uniform(0.15, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        if acks.exists():
            acked |= {line for line in acks.read_text().splitlines() if len(line) == 32}
        check_store(store, acked)
    assert acked, "the children acknowledged events before they were killed"


def test_twenty_kill_9s_at_random_points_lose_nothing(tmp_path: Path) -> None:
    kill_at_random(tmp_path, kills=20, seed=20261127)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a full verify after each kill: about 4 minutes alone, 2 cores
@pytest.mark.parametrize("seed", range(5))
def test_a_hundred_kill_9s_lose_nothing(tmp_path: Path, seed: int) -> None:
    kill_at_random(tmp_path, kills=100, seed=seed)


def test_cli_reports_rejections_and_exits_1(tmp_path: Path) -> None:
    data = tmp_path / "mixed.ndjson"
    data.write_bytes(lines(0, 3) + b"{broken\n\n" + lines(3, 5))
    done = subprocess.run(
        [*PIK, "--store", str(tmp_path / "s"), "ingest", str(data), "--json"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["accepted"], report["rejected"], report["lines"]) == (5, 1, 6)
    assert report["rejections"] == [
        {
            "line": 4,
            "code": "invalid_json",
            "field": None,
            "message": report["rejections"][0]["message"],
        }
    ]


def test_processes_creating_one_new_store_at_once_agree(tmp_path: Path) -> None:
    data = tmp_path / "one.ndjson"
    data.write_bytes(lines(0, 1))
    for attempt in range(3):
        store = tmp_path / f"store{attempt}"
        procs = [
            subprocess.Popen(
                [*PIK, "--store", str(store), "ingest", str(data), "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
        statuses = sorted(
            (json.loads(out)["accepted"], json.loads(out)["duplicate"]) for out, _ in results
        )
        assert statuses == [(0, 1), (0, 1), (0, 1), (1, 0)]
        # One raw copy: verify finds no second frame of the event (an orphan) and no damage.
        assert check_store(store, set()) == 1


FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from pik.engines.local import LocalEngine
    from pik.engines.local.disk import StorageFullError
    from pik.engines.local.engine import SegmentPolicy
    from pik.services.ingest import ingest_batch
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    policy = SegmentPolicy(max_bytes=int(sys.argv[4])) if len(sys.argv) > 4 else SegmentPolicy()
    engine = LocalEngine(Path(sys.argv[1]), policy=policy)
    limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        ingest_batch(engine, Path(sys.argv[2]).read_bytes().splitlines(), "child")
    except StorageFullError as exc:
        print("storage full:", exc)
        sys.exit(3)
    """
)


def test_a_full_disk_acknowledges_nothing_and_a_retry_succeeds(tmp_path: Path) -> None:
    store, batch = tmp_path / "store", tmp_path / "batch.ndjson"
    engine = LocalEngine(store)
    ingest_batch(engine, lines(0, 10).splitlines(), "before")
    engine.close()
    size = (store / "segments" / "00000001.seg").stat().st_size
    batch.write_bytes(lines(10, 400))
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(store), str(batch), str(size + 4096)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "storage full" in done.stdout
    assert check_store(store, set()) == 10, "the refused batch was not acknowledged"
    segment = store / "segments" / "00000001.seg"
    assert segment.stat().st_size == size, "what was written of it was cut off again"
    engine = LocalEngine(store)
    try:
        outcomes = ingest_batch(engine, batch.read_bytes().splitlines(), "retry")
        assert {o.status.value for o in outcomes} == {"accepted"}
        report = engine.verify()
        assert report.ok and report.events == 400, report.problems
        assert engine.layout.segment(1) == segment and report.segments == 1, "not sealed torn"
    finally:
        engine.close()


def test_a_file_size_limit_met_by_the_index_is_storage_full(tmp_path: Path) -> None:
    # Long entity ids make the index's WAL outgrow the segment, so the limit meets the index
    # (which SQLite reports as an I/O error, not as a full disk).
    store, batch = tmp_path / "store", tmp_path / "batch.ndjson"
    batch.write_bytes(
        b"".join(
            json.dumps(
                {
                    "source": "s",
                    "event_type": "t",
                    "entity_id": f"entity-{n:06d}-" + "x" * 200,
                    "event_time": "2026-11-01T10:00:00Z",
                    "payload": {},
                }
            ).encode()
            + b"\n"
            for n in range(3000)
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(store), str(batch), "1500000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "storage full: the index" in done.stdout
    assert (store / "segments" / "00000001.seg").stat().st_size < 1_500_000, "raw fitted"
    engine = LocalEngine(store)
    try:
        assert engine.counts()["events"] == 0, "nothing of the refused batch is stored"
        outcomes = ingest_batch(engine, batch.read_bytes().splitlines(), "retry")
        assert {o.status.value for o in outcomes} == {"accepted"}
        assert engine.verify().ok
    finally:
        engine.close()


def test_a_full_disk_while_a_segment_is_made_leaves_no_segment(tmp_path: Path) -> None:
    store, batch = tmp_path / "store", tmp_path / "batch.ndjson"
    engine = LocalEngine(store, policy=SegmentPolicy(max_bytes=1024))
    ingest_batch(engine, lines(0, 10).splitlines(), "before")  # fills and seals segment 1
    engine.close()
    batch.write_bytes(lines(10, 20))
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(store), str(batch), "4", "1024"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "storage full while creating segment 00000002.seg" in done.stdout
    assert sorted(p.name for p in (store / "segments").iterdir()) == ["00000001.seg"]
    reindex(store)
    engine = LocalEngine(store)
    try:
        outcomes = ingest_batch(engine, batch.read_bytes().splitlines(), "retry")
        assert {o.status.value for o in outcomes} == {"accepted"}
        report = engine.verify()
        assert report.ok and report.events == 20, report.problems
    finally:
        engine.close()


def test_workers_of_a_killed_parallel_ingest_stop_and_a_rerun_completes_it(
    tmp_path: Path,
) -> None:
    store, data = tmp_path / "store", tmp_path / "big.ndjson"
    data.write_bytes(lines(0, 60_000))
    parent = subprocess.Popen(
        [*PIK, "--store", str(store), "ingest", str(data), "--json", "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    segments = store / "segments"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (segments.exists() and any(segments.iterdir())):
        time.sleep(0.05)
    time.sleep(0.3)  # the workers are committing batches
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # Each worker notices its parent is gone after the batch it is writing, and stops.
    last, still = -1, 0
    while time.monotonic() < deadline and still < 10:
        size = sum(p.stat().st_size for p in segments.iterdir())
        still = still + 1 if size == last else 0
        last = size
        time.sleep(0.1)
    assert still >= 10, "the workers went on writing after their parent died"
    engine = LocalEngine(store)
    try:
        stored = engine.counts()["events"]
        assert 0 < stored < 60_000, "killed part-way"
        assert engine.verify().ok
    finally:
        engine.close()
    again = subprocess.run(
        [*PIK, "--store", str(store), "ingest", str(data), "--json", "--jobs", "2"],
        capture_output=True,
        timeout=120,
    )
    report = json.loads(again.stdout)
    assert (report["accepted"], report["duplicate"]) == (60_000 - stored, stored)
    assert check_store(store, set()) == 60_000


def test_a_writer_waiting_for_the_store_says_why(tmp_path: Path) -> None:
    store, data = tmp_path / "store", tmp_path / "some.ndjson"
    data.write_bytes(lines(0, 10))
    LocalEngine(store).close()
    with Layout(store).write_lock():  # as a reindex holds it
        child = subprocess.Popen(
            [*PIK, "--store", str(store), "ingest", str(data), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stderr is not None
        said = []  # read while the lock is held: however slowly the child starts, it waits
        while not said or "waiting for another process" not in said[-1]:
            said.append(child.stderr.readline())
            assert said[-1], f"it ended without saying why it waited: {said}"
        assert "waiting for another process to release the store" in said[-1]
        assert child.poll() is None, "it waits for the lock"
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and json.loads(out)["accepted"] == 10
