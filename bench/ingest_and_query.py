"""Benchmark: batched ingest throughput and query latency of the local engine.

    .venv/bin/python bench/ingest_and_query.py            # 1M events, about 2 minutes
    .venv/bin/python bench/ingest_and_query.py --events 200000

Ingests 1 KB events in batches of 1,000 (1,000 entities, event times spread over 90 days,
arriving roughly in time order) into an empty store, grows the store to --events, ingests
again (one producer, two producer processes, and `pik ingest` of an NDJSON file with one
and two processes), then measures timeline pages, event lookups and 1,000-entity x 90-day
coverage.
As the ceiling, the same event rows are inserted straight into SQLite with the same
schema, in the same transactions, in the same run. Results go to stdout (and --out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pik.domain.instants import US_PER_DAY, format_instant, parse_instant
from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch
from pik.services.query import coverage_report, event_detail, timeline_page

ENTITIES = 1_000
DAYS = 90
START = parse_instant("2026-08-01T00:00:00Z")
PAD = "x" * 860


def event_line(n: int, total: int) -> bytes:
    """The n-th of ``total`` events: ~1 KB, time-ordered with an hour of jitter."""
    spread = DAYS * US_PER_DAY
    at = START + n * spread // total + (n * 7919) % 3_600_000_000
    at = min(at, START + spread - 1)
    return json.dumps(
        {
            "source": f"source-{n % 4}",
            "event_type": "bench.tick",
            "entity_id": f"entity-{n % ENTITIES:05d}",
            "event_time": format_instant(at),
            "payload": {"n": n, "pad": PAD},
        },
        separators=(",", ":"),
    ).encode()


def batches(first: int, count: int, size: int, total: int) -> list[list[bytes]]:
    return [[event_line(first + b * size + i, total) for i in range(size)] for b in range(count)]


def ingest_rate(engine: LocalEngine, work: list[list[bytes]]) -> float:
    started = time.perf_counter()
    for batch in work:
        ingest_batch(engine, batch, "bench")
    return sum(len(b) for b in work) / (time.perf_counter() - started)


def sqlite_ceiling(work: list[list[bytes]], directory: Path) -> float:
    """Insert the same event rows into a bare SQLite copy of the schema: the ceiling."""
    db = sqlite3.connect(directory / "ceiling.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(resources.files("pik.engines.local").joinpath("schema.sql").read_text())
    columns = (
        "event_id, content_hash, entity_id, source, event_type, event_time_us, "
        "ingest_time_us, idempotency_key, origin, segment_id, offset, length, sha256, "
        "duplicate_count, conflict_count, last_seen_us, day"
    )
    prepared = []
    for batch in work:
        rows = []
        for raw in batch:
            doc = json.loads(raw)
            digest = hashlib.sha256(raw).digest()
            at = parse_instant(doc["event_time"])
            rows.append(
                (
                    digest[:16],
                    digest[16:],
                    doc["entity_id"],
                    doc["source"],
                    doc["event_type"],
                    at,
                    at,
                    None,
                    "bench",
                    1,
                    0,
                    len(raw),
                    digest,
                    0,
                    0,
                    at,
                    at // US_PER_DAY,
                )
            )
        prepared.append(rows)
    started = time.perf_counter()
    for rows in prepared:
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO events ({columns}) VALUES ({','.join('?' * 17)})", rows)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return sum(len(b) for b in work) / elapsed


def _producer(
    path: str,
    first: int,
    count: int,
    size: int,
    total: int,
    stride: int,
    barrier: Any,
    results: Any,
) -> None:
    engine = LocalEngine(Path(path))
    work = [batches(first + k * stride * size, 1, size, total)[0] for k in range(count)]
    barrier.wait()
    started = time.perf_counter()
    for batch in work:
        ingest_batch(engine, batch, "bench")
    results.put((started, time.perf_counter(), sum(len(b) for b in work)))
    engine.close()


def concurrent_rate(
    path: Path, first: int, count: int, size: int, total: int, producers: int
) -> float:
    """Aggregate events/s of ``producers`` processes ingesting interleaved batches at once."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(producers), context.Queue()
    procs = [
        context.Process(
            target=_producer,
            args=(str(path), first + p * size, count, size, total, producers, barrier, results),
        )
        for p in range(producers)
    ]
    for proc in procs:
        proc.start()
    spans = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return sum(n for _, _, n in spans) / elapsed


def cli_rate(store: Path, data: Path, lines: list[bytes], jobs: int) -> float:
    """Events/s of `pik ingest FILE --jobs N` as a user runs it: process start included."""
    data.write_bytes(b"\n".join(lines) + b"\n")
    command = [sys.executable, "-m", "pik", "--store", str(store), "ingest", str(data)]
    started = time.perf_counter()
    done = subprocess.run([*command, "--json", "--jobs", str(jobs)], capture_output=True)
    elapsed = time.perf_counter() - started
    report = json.loads(done.stdout)
    assert report["accepted"] == len(lines), report
    return len(lines) / elapsed


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
    }


def timed(func: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return samples


def progress(done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(
        f"\r  growing store: {done:>9,}/{total:,} events ({rate:,.0f}/s)",
        end="",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--sample-batches", type=int, default=50)
    parser.add_argument(
        "--cli-events", type=int, default=200_000, help="events per `pik ingest` file"
    )
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: tmp)")
    parser.add_argument("--out", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="pik-bench-", dir=args.dir))
    total, size, sample = args.events, args.batch, args.sample_batches
    cli_batches = args.cli_events // size
    # Event times are spread over the events of every measurement, so the ones measured
    # after the store is grown still arrive in time order within the 90 days.
    span = total + ((sample // 2) * 2 + 2 * cli_batches) * size
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        "events": total,
        "batch": size,
    }
    warm = LocalEngine(work_dir / "warm-up")
    ingest_rate(warm, batches(0, 5, size, span))  # first-call costs out of the measurement
    warm.close()
    engine = LocalEngine(work_dir / "store")
    first = batches(0, sample, size, span)
    results["ceiling_sqlite_rows_per_s"] = round(sqlite_ceiling(first, work_dir))
    results["ingest_empty_events_per_s"] = round(ingest_rate(engine, first))
    print(
        f"empty store: {results['ingest_empty_events_per_s']:,} events/s "
        f"(SQLite ceiling {results['ceiling_sqlite_rows_per_s']:,} rows/s)",
        file=sys.stderr,
    )
    results["ingest_empty_2_producers_events_per_s"] = round(
        concurrent_rate(work_dir / "empty-2", 0, sample // 2, size, span, producers=2)
    )
    print(
        f"two producers, empty store: {results['ingest_empty_2_producers_events_per_s']:,} "
        "events/s",
        file=sys.stderr,
    )
    for jobs in (1, 2):  # the first events again, each time into a new store
        lines = [line for batch in batches(0, cli_batches, size, span) for line in batch]
        rate = cli_rate(work_dir / f"empty-cli-{jobs}", work_dir / "empty.ndjson", lines, jobs)
        results[f"cli_ingest_empty_jobs_{jobs}_events_per_s"] = round(rate)
        print(f"pik ingest --jobs {jobs}, empty store: {rate:,.0f} events/s", file=sys.stderr)
    done, started = sample * size, time.perf_counter()
    while done < total - sample * size:
        step = min(20, (total - sample * size - done) // size) or 1
        for batch in batches(done, step, size, span):
            ingest_batch(engine, batch, "bench")
        done += step * size
        progress(done, total, started)
    print(file=sys.stderr)
    results["grow_events_per_s"] = round(
        (done - sample * size) / max(time.perf_counter() - started, 1e-9)
    )
    last = batches(done, sample, size, span)
    results["ingest_full_events_per_s"] = round(ingest_rate(engine, last))
    results["stored_events"] = engine.counts()["events"]
    engine.close()
    done += sample * size
    results["ingest_full_2_producers_events_per_s"] = round(
        concurrent_rate(work_dir / "store", done, sample // 2, size, span, producers=2)
    )
    print(
        f"two producers at {done:,}: {results['ingest_full_2_producers_events_per_s']:,} events/s",
        file=sys.stderr,
    )
    done += (sample // 2) * 2 * size
    for jobs in (1, 2):
        lines = [line for batch in batches(done, cli_batches, size, span) for line in batch]
        results[f"cli_ingest_full_jobs_{jobs}_events_per_s"] = round(
            cli_rate(work_dir / "store", work_dir / f"cli-{jobs}.ndjson", lines, jobs)
        )
        done += cli_batches * size
        print(
            f"pik ingest --jobs {jobs} at {done:,}: "
            f"{results[f'cli_ingest_full_jobs_{jobs}_events_per_s']:,} events/s",
            file=sys.stderr,
        )
    engine = LocalEngine(work_dir / "store")
    print(
        f"store of {results['stored_events']:,}: {results['ingest_full_events_per_s']:,} events/s",
        file=sys.stderr,
    )

    rng = random.Random(1)

    def one_page() -> None:
        entity = f"entity-{rng.randrange(ENTITIES):05d}"
        start = START + rng.randrange(DAYS - 30) * US_PER_DAY
        page = timeline_page(engine, entity, start, start + 30 * US_PER_DAY, 100)
        assert page.events

    results["timeline_page_100"] = percentiles(timed(one_page, 1_000))

    ids = [
        r.event_id
        for n in range(0, ENTITIES, 10)
        for r in engine.timeline(f"entity-{n:05d}", 0, 2**62, 10)
    ]

    def one_lookup() -> None:
        detail = event_detail(engine, rng.choice(ids))
        assert detail is not None and detail.verified

    results["event_lookup_verified"] = percentiles(timed(one_lookup, 1_000))

    everyone = [f"entity-{n:05d}" for n in range(ENTITIES)]

    def coverage_all() -> None:
        report = coverage_report(engine, START, START + DAYS * US_PER_DAY, "day")
        assert len(report.windows) >= ENTITIES * (DAYS - 1)

    def coverage_listed() -> None:
        coverage_report(engine, START, START + DAYS * US_PER_DAY, "day", everyone)

    results["coverage_1000x90d_all"] = percentiles(timed(coverage_all, 20))
    results["coverage_1000x90d_listed"] = percentiles(timed(coverage_listed, 20))
    engine.close()
    if not args.keep:
        shutil.rmtree(work_dir)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
