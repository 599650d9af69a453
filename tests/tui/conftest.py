"""Fixtures for the TUI: real demo stores built at a fixed time, and an app on a frozen clock.

The demo is written with ``demo_lines(end_us=DEMO_END)``; the engine's ingest clock is held
at ``INGESTED`` while it is written, so event times, ingest times, lags and rates minutes
are the same on every run and snapshots do not drift.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from pik.demo import demo_lines
from pik.domain.instants import US_PER_MINUTE, parse_instant
from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch, ingest_ndjson
from pik_tui.app import PikApp
from pik_tui.backend import LocalBackend

DEMO_END = parse_instant("2025-06-02T12:00:00Z")
INGESTED = DEMO_END + US_PER_MINUTE
NOW = DEMO_END + 5 * US_PER_MINUTE
SIZE = (120, 40)

Scenario = Callable[[Pilot[None]], Awaitable[None]]
Drive = Callable[..., None]
MakeApp = Callable[..., PikApp]


def write_store(path: Path, ndjson: Sequence[bytes] = (), batch: Sequence[bytes] = ()) -> Path:
    """A real store at ``path``: ``ndjson`` lines and one ``batch``, ingested at ``INGESTED``."""
    engine = LocalEngine(path, create=True, clock=lambda: INGESTED)
    try:
        if ndjson:
            ingest_ndjson(engine, io.BytesIO(b"\n".join(ndjson) + b"\n"), origin="demo")
        if batch:
            ingest_batch(engine, list(batch), "test")
    finally:
        engine.close()
    return path


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("tui") / "demo", list(demo_lines(end_us=DEMO_END)))


@pytest.fixture
def make_app() -> Iterator[MakeApp]:
    """Open a store and wrap it in an app on the frozen clock; closes every store it opened."""
    opened: list[LocalBackend] = []

    def build(path: Path, read_only: bool = False, rates_interval: float = 3600.0) -> PikApp:
        backend = LocalBackend.open(path, label=path.name)
        opened.append(backend)
        return PikApp(
            backend, now_us=lambda: NOW, read_only=read_only, rates_interval=rates_interval
        )

    yield build
    for backend in opened:
        backend.close()


@pytest.fixture
def demo_app(make_app: MakeApp, demo_path: Path) -> PikApp:
    return make_app(demo_path)


async def settle(pilot: Pilot[None]) -> None:
    """Wait until no worker runs and every message they posted has been handled.

    Cursors do not blink here, or a focused input would never look the same twice.
    """
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for screen in pilot.app.screen_stack:
            for field in screen.query(Input):
                field.cursor_blink = False
        if not any(worker.is_running for worker in pilot.app.workers):
            await pilot.pause()
            if not any(worker.is_running for worker in pilot.app.workers):
                return
    raise AssertionError("workers kept running")


def drive(app: PikApp, scenario: Scenario, notifications: bool = False) -> None:
    """Run ``scenario`` against ``app`` at the test size, starting once the first loads settled.

    (The lock file has no async test plugin, so each test drives its own event loop.)
    """

    async def run() -> None:
        async with app.run_test(size=SIZE, notifications=notifications) as pilot:
            await settle(pilot)
            await scenario(pilot)

    asyncio.run(run())


@pytest.fixture(name="drive")
def drive_fixture() -> Drive:
    return drive


@pytest.fixture(name="settle")
def settle_fixture() -> Scenario:
    return settle


@pytest.fixture(name="write_store", scope="session")
def write_store_fixture() -> Callable[..., Path]:
    return write_store
