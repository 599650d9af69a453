"""Render pik-tui screenshots (SVG) of the demo for the docs, on a frozen clock.

.venv/bin/python scripts/screenshots.py            # writes docs/images/tui-*.svg
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

from pik.demo import demo_lines
from pik.domain.instants import US_PER_MINUTE, parse_instant
from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_ndjson
from pik_tui.app import PikApp
from pik_tui.backend import LocalBackend

END = parse_instant("2026-11-27T12:00:00Z")
OUT = Path(__file__).resolve().parent.parent / "docs" / "images"
SHOTS = [
    ("tui-timeline.svg", ["down"] * 6),
    ("tui-event.svg", ["enter", "enter"]),
    ("tui-coverage.svg", ["3"]),
    ("tui-rates.svg", ["4"]),
]


async def shoot(store: Path) -> None:
    for name, keys in SHOTS:
        backend = LocalBackend.open(store, label="demo")
        app = PikApp(backend, now_us=lambda: END + 5 * US_PER_MINUTE)
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause(0.5)
                for key in keys:
                    await pilot.press(key)
                    await pilot.pause(0.3)
                await pilot.pause(0.5)
                app.save_screenshot(filename=name, path=str(OUT))
        finally:
            backend.close()
        print("wrote", OUT / name)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "demo"
        engine = LocalEngine(store, clock=lambda: END + US_PER_MINUTE)
        try:
            lines = b"\n".join(demo_lines(end_us=END)) + b"\n"
            ingest_ndjson(engine, io.BytesIO(lines), origin="demo")
        finally:
            engine.close()
        OUT.mkdir(parents=True, exist_ok=True)
        asyncio.run(shoot(store))


if __name__ == "__main__":
    main()
