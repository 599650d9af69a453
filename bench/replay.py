"""Replay and processor throughput on the local engine (results: docs/benchmarks.md).

Builds a store of ``--events`` 1 KB events over 1,000 entities and 90 days (the workload of
bench/ingest_and_query.py), then measures, for a slice of ``--entities`` entities:

* planning: the dry-run over the whole 90 days (timeline pages, digest, summary);
* sending into an NDJSON file at the highest rate a run allows (``MAX_RATE`` events/s),
  against the rate the pacing allows: how close a run gets to what was asked;
* sending into the processor (``processor:day:/n``): windows recomputed per second.

    .venv/bin/python bench/replay.py --events 200000 --entities 100
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ingest_and_query import DAYS, START, batches

from pik.domain import replay
from pik.domain.instants import US_PER_DAY
from pik.domain.replay import Selection
from pik.domain.versions import processor_target
from pik.engines.local import LocalEngine
from pik.engines.local.replay import LocalReplayBackend
from pik.engines.local.versions import LocalVersionStore
from pik.services.ingest import ingest_batch
from pik.services.replay import confirm_replay, plan_replay


def build(store: Path, events: int) -> None:
    engine = LocalEngine(store)
    try:
        for batch in batches(0, events // 1_000, 1_000, events):
            ingest_batch(engine, batch, "bench")
    finally:
        engine.close()


def run_once(store: Path, entities: list[str], target: str) -> dict[str, float]:
    backend = LocalReplayBackend.open(store, who="bench")
    try:
        selection = Selection.build(
            entities, START, START + DAYS * US_PER_DAY, backend.check_target(target)
        )
        began = time.perf_counter()
        plan = plan_replay(backend.store, backend.ledger, selection, "bench")
        planned = time.perf_counter() - began
        run = confirm_replay(backend.store, backend.ledger, plan.plan_id, "bench", replay.MAX_RATE)
        began = time.perf_counter()
        done = backend.start(run)
        sent = time.perf_counter() - began
    finally:
        backend.close()
    assert done.status == replay.COMPLETED and done.sent == plan.events
    return {
        "events": plan.events,
        "plan_s": round(planned, 3),
        "send_s": round(sent, 3),
        "events_per_s": round(plan.events / sent),
        "paced_at": replay.MAX_RATE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=100)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pik-bench-replay-"))
    try:
        store = work / "store"
        build(store, arguments.events)
        entities = [f"entity-{i:05d}" for i in range(arguments.entities)]
        results = {
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "store_events": arguments.events,
            "file": run_once(store, entities, f"file:{work / 'replay.ndjson'}"),
            "processor": run_once(store, entities, "processor:day:/n"),
        }
        spec = processor_target("processor:day:/n")
        assert spec is not None
        versions = LocalVersionStore(store)
        try:
            windows = sum(
                len(versions.windows(spec.spec_id, e, 0, START + (DAYS + 1) * US_PER_DAY))
                for e in entities
            )
        finally:
            versions.close()
        results["processor"]["windows"] = windows
        results["processor"]["windows_per_s"] = round(windows / results["processor"]["send_s"])
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
