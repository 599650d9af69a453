"""How long pik-tui's event loop stalls while it opens a very large event (docs/benchmarks.md).

Each case is one event in a store of its own: a small one (the baseline, measured in the
same run), one at the store's default size limit (256 KiB, many keys), and two past every
default limit, stored with raised limits: a 4 MB payload and 1,000 levels of nesting. For
each, the app runs headless at 120x40; the entity's timeline is opened, then the event,
while a probe task asks the event loop for a 5 ms sleep over and over. The longest
overshoot is the longest time the UI could not answer a key.

    .venv/bin/python bench/tui_big_event.py --out bench/results/tui-big-event.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pik.domain.limits import Limits
from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch
from pik_tui.app import PikApp
from pik_tui.backend import LocalBackend
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.timeline import TimelinePane

TARGET_MS = 200
PROBE_S = 0.005
RAISED = Limits(max_event_bytes=16 * 1024 * 1024, max_depth=254)


class Deep:
    """A payload of ``levels`` nested arrays, written out directly (``json`` recurses)."""

    def __init__(self, levels: int) -> None:
        self.text = "[" * levels + '{"leaf":"[/bold]"}' + "]" * levels


CASES: dict[str, Any] = {
    "small (baseline)": {"amount": 1},
    "256 KiB, 8,000 keys (the default limit)": {f"key-{n:05d}": "v" * 20 for n in range(8_000)},
    "4 MB string": {"blob": "x" * 4_000_000},
    "250 levels of nesting (the deepest storable)": Deep(250),
}


def _store(root: Path, payload: Any) -> Path:
    event = {
        "source": "bench",
        "event_type": "big",
        "entity_id": "big-1",
        "event_time": "2026-11-01T10:00:00Z",
        "payload": payload,
    }
    if isinstance(payload, Deep):
        event["payload"] = "PAYLOAD"
        raw = json.dumps(event, separators=(",", ":")).replace('"PAYLOAD"', payload.text).encode()
    else:
        raw = json.dumps(event, separators=(",", ":")).encode()
    engine = LocalEngine(root, limits=RAISED)
    try:
        (outcome,) = ingest_batch(engine, [raw], "bench")
        assert outcome.status.value == "accepted", outcome
    finally:
        engine.close()
    return root


async def _settled(app: PikApp) -> None:
    for _ in range(200):
        await app.workers.wait_for_complete()
        await asyncio.sleep(0.01)
        if not any(worker.is_running for worker in app.workers):
            return
    raise RuntimeError("workers kept running")


async def _open_event(path: Path) -> dict[str, Any]:
    backend = LocalBackend.open(path, label=path.name)
    app = PikApp(backend, rates_interval=3600.0)
    overshoots: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            start = loop.time()
            await asyncio.sleep(PROBE_S)
            overshoots.append(loop.time() - start - PROBE_S)

    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await _settled(app)
            task = asyncio.create_task(probe())
            began = time.perf_counter()
            await pilot.press("enter")  # the entity's timeline
            await _settled(app)
            app.query_one(TimelinePane).table.move_cursor(row=0)
            await pilot.press("enter")  # the event
            await _settled(app)
            pane = app.query_one(EventPane)
            await pilot.pause()
            shown = time.perf_counter() - began
            stop.set()
            await task
            assert pane.view is not None, "the event did not open"
            return {
                "max_stall_ms": round(max(overshoots) * 1000, 1),
                "p99_stall_ms": round(sorted(overshoots)[int(len(overshoots) * 0.99)] * 1000, 1),
                "open_s": round(shown, 3),
                "payload_chars_shown": len(pane.view.payload),
                "app_running": app.is_running,
            }
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}",
        "target_max_stall_ms": TARGET_MS,
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, payload) in enumerate(CASES.items()):
            path = _store(Path(tmp) / f"store{n}", payload)
            case = asyncio.run(_open_event(path))
            case["segment_bytes"] = sum(f.stat().st_size for f in (path / "segments").iterdir())
            results["cases"][name] = case
            print(f"{name:45} {json.dumps(case)}", flush=True)
    worst = max(c["max_stall_ms"] for c in results["cases"].values())
    results["met"] = worst <= TARGET_MS
    verdict = "met" if results["met"] else "NOT met"
    print(f"longest stall {worst} ms against {TARGET_MS} ms: {verdict}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0 if results["met"] else 1)


if __name__ == "__main__":
    main()
