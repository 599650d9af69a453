"""A store written while the TUI is open, keys of a tab pressed from the entity list, and
names long enough to be cut."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from pik.domain.instants import parse_instant
from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch
from pik_tui.app import PikApp
from pik_tui.widgets.entities import EntityPane
from pik_tui.widgets.rates import REASON_LINES
from pik_tui.widgets.timeline import TimelinePane

Drive = Callable[..., None]
Settle = Callable[[Pilot[None]], Awaitable[None]]
MakeApp = Callable[..., PikApp]
WriteStore = Callable[..., Path]
LATER = parse_instant("2025-06-02T12:02:00Z")
"""The ingest clock of what is written while the app is open."""


def event(entity_id: str, minute: int, source: str = "feed") -> bytes:
    return json.dumps(
        {
            "source": source,
            "event_type": "tick",
            "entity_id": entity_id,
            "event_time": f"2025-06-02T11:{minute:02d}:00Z",
            "payload": {"n": minute},
        }
    ).encode()


def write_more(path: Path, events: list[bytes]) -> None:
    engine = LocalEngine(path, clock=lambda: LATER)
    try:
        ingest_batch(engine, events, "later")
    finally:
        engine.close()


def cell_text(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def test_what_is_written_while_open_shows_on_n_and_on_r(
    tmp_path: Path, write_store: WriteStore, make_app: MakeApp, drive: Drive, settle: Settle
) -> None:
    path = write_store(tmp_path / "live", [event("a", m) for m in range(3)])
    app = make_app(path)

    async def scenario(pilot: Pilot[None]) -> None:
        timeline = app.query_one(TimelinePane)
        entities = app.query_one(EntityPane)
        assert timeline.table.row_count == 3
        write_more(path, [event("a", 10), event("a", 11), event("b", 12)])
        await pilot.press("enter", "n")  # past the newest page: the store is asked again
        await settle(pilot)
        assert timeline.table.row_count == 5
        assert timeline.table.cursor_row == 4, "on the newest event"
        assert entities.listed == ["a"]
        await pilot.press("r")
        await settle(pilot)
        assert entities.listed == ["a", "b"]
        assert cell_text(entities.table.get_row_at(0)[0]) == "5"
        await pilot.press("n")
        await settle(pilot)
        assert timeline.table.row_count == 5, "nothing newer: the same page"

    drive(app, scenario)


def test_a_tabs_keys_work_while_the_entity_list_has_focus(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        timeline = demo_app.query_one(TimelinePane)
        entities = demo_app.query_one(EntityPane)
        assert demo_app.focused is entities.table
        newest = timeline.page
        await pilot.press("N")
        await settle(pilot)
        assert demo_app.focused is entities.table, "focus stays on the list"
        assert timeline.page is not None and timeline.page is not newest
        assert newest is not None and timeline.page.events[-1].event_time_us < (
            newest.events[0].event_time_us
        )

    drive(demo_app, scenario)


def test_a_pasted_id_with_spaces_around_it_filters(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("slash")
        field = demo_app.query_one("#entity-filter", Input)
        field.insert_text_at_cursor(" customer-0042 ")
        await settle(pilot)
        assert field.value == "customer-0042"
        assert demo_app.query_one(EntityPane).listed == ["customer-0042"]

    drive(demo_app, scenario)


def test_long_names_keep_their_counts_and_their_ends(
    tmp_path: Path, write_store: WriteStore, make_app: MakeApp, drive: Drive, settle: Settle
) -> None:
    ids = [f"tenant-acme/region:eu-west/customer#000{n}" for n in (1, 2)]
    sources = [f"ingest-pipeline-orders-{r}" for r in ("eu-west-1", "us-east-1")]
    lines = [event(ids[0], m, sources[m % 2]) for m in range(50)]
    lines += [event(ids[1], m) for m in range(2)]
    bad = [b'{"source": "s%d", "nope": 1}' % n for n in range(REASON_LINES + 3)]
    app = make_app(write_store(tmp_path / "long", lines, bad))

    async def scenario(pilot: Pilot[None]) -> None:
        table = app.query_one(EntityPane).table
        shown = [[cell_text(v) for v in table.get_row_at(i)] for i in range(2)]
        assert [row[0] for row in shown] == ["50", "2"], "counts whole"
        assert shown[0][1] != shown[1][1] and shown[0][1].endswith("#0001")
        timeline = app.query_one(TimelinePane)
        await pilot.press("enter")
        await settle(pilot)
        drawn = {cell_text(timeline.table.get_row_at(i)[4]) for i in range(2)}
        assert len(drawn) == 2 and all("…" in s for s in drawn), drawn
        await pilot.press("4")
        await settle(pilot)
        reasons = app.query_one("#rates-reasons", Static).content
        text = reasons.plain if isinstance(reasons, Text) else str(reasons)
        assert "3 more reason(s)" in text

    drive(app, scenario)


def test_the_rates_cursor_stays_on_its_row_when_a_new_minute_arrives(
    tmp_path: Path, write_store: WriteStore, make_app: MakeApp, drive: Drive, settle: Settle
) -> None:
    path = write_store(tmp_path / "rates", [event("a", 1, "feed"), event("a", 2, "other")])
    app = make_app(path)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("4", "down")
        await settle(pilot)
        table = app.query_one("#rates-table", DataTable)
        before = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        write_more(path, [event("b", 3, "feed")])
        await pilot.press("space")
        await settle(pilot)
        assert table.row_count == 3
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key == before

    drive(app, scenario)
