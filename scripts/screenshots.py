"""Render pik-tui screenshots (SVG) of the demo for the docs, on a frozen clock.

.venv/bin/python scripts/screenshots.py            # writes docs/images/tui-*.svg
.venv/bin/python scripts/screenshots.py --stack NAME [--ingest-demo]
                                                   # docs/images/tui-stack.svg, on a stack

With --stack the screenshot is of a deployed stack (found by name, as `pik-tui --stack`
does; AWS_ENDPOINT_URL may point at a moto server); --ingest-demo first sends the demo's
events to it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tempfile
from pathlib import Path

from textual.widgets import Input

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
    # "fill:FIELD=VALUE" types into a field of the replay form.
    ("tui-replay.svg", [*["down"] * 6, "R", "fill:target=processor:hour", "f5"]),
]
AUDITED_AS = "oncall"
"""The OS user the replay screenshot's plan names (not whoever renders it)."""


async def shoot(store: Path) -> None:
    for name, keys in SHOTS:
        backend = LocalBackend.open(store, label="demo")
        app = PikApp(backend, now_us=lambda: END + 5 * US_PER_MINUTE)
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause(0.5)
                for key in keys:
                    if key.startswith("fill:"):
                        field, value = key.removeprefix("fill:").split("=", 1)
                        app.screen.query_one(f"#replay-{field}", Input).value = value
                    else:
                        await pilot.press(key)
                    await pilot.pause(0.3)
                await pilot.pause(0.5)
                app.save_screenshot(filename=name, path=str(OUT))
        finally:
            backend.close()
        print("wrote", OUT / name)


async def shoot_stack(stack: str) -> None:
    from pik_tui.aws_backend import AwsBackend

    backend = AwsBackend.open(stack)
    app = PikApp(backend, now_us=lambda: END + 5 * US_PER_MINUTE)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(10.0)  # every entity's first and last event: many reads
            for key in ["down"] * 6:
                await pilot.press(key)
                await pilot.pause(1.0)
            await pilot.pause(3.0)
            app.save_screenshot(filename="tui-stack.svg", path=str(OUT))
    finally:
        backend.close()
    print("wrote", OUT / "tui-stack.svg")


def ingest_demo_into(stack: str) -> None:
    from pik.engines.aws import AwsEngine
    from pik.engines.aws.discovery import discover

    engine = AwsEngine(discover(stack), clock=lambda: END + US_PER_MINUTE)
    lines = b"\n".join(demo_lines(end_us=END)) + b"\n"
    ingest_ndjson(engine, io.BytesIO(lines), origin="demo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="screenshot a deployed stack instead of the demo")
    parser.add_argument("--ingest-demo", action="store_true", help="send the demo to it first")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.stack:
        if args.ingest_demo:
            ingest_demo_into(args.stack)
        asyncio.run(shoot_stack(args.stack))
        return
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "demo"
        engine = LocalEngine(store, clock=lambda: END + US_PER_MINUTE)
        try:
            lines = b"\n".join(demo_lines(end_us=END)) + b"\n"
            ingest_ndjson(engine, io.BytesIO(lines), origin="demo")
        finally:
            engine.close()
        OUT.mkdir(parents=True, exist_ok=True)
        os.environ["LOGNAME"] = AUDITED_AS  # the first name getpass.getuser() reads
        asyncio.run(shoot(store))


if __name__ == "__main__":
    main()
