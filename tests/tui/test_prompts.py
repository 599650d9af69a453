"""The one-line questions: `e` opens an event by its id from anywhere (the timeline
follows its entity); `t` shows a timeline from a time on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.text import Text
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import Input, Static

from pik.domain.instants import US_PER_DAY, format_instant, parse_instant
from pik.domain.limits import DEFAULT_LIMITS
from pik_tui.app import PikApp
from pik_tui.screens.prompt import Prompt
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.timeline import TimelinePane

INGESTED = parse_instant("2025-06-02T12:01:00Z")
"""The ingest clock of conftest's ``write_store``."""
Settle = Callable[[Pilot[None]], Awaitable[None]]
Drive = Callable[..., None]


def text_of(app: PikApp, selector: str) -> str:
    content = app.screen.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


async def answer(pilot: Pilot[None], settle: Settle, key: str, typed: str) -> None:
    await pilot.press(key)
    await settle(pilot)
    assert isinstance(pilot.app.screen, Prompt)
    pilot.app.screen.query_one("#prompt-answer", Input).value = typed
    await pilot.press("enter")
    await settle(pilot)


def test_an_event_of_another_entity_opens_by_its_id_and_the_timeline_follows(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        timeline = demo_app.query_one(TimelinePane)
        await pilot.press("down", "down")
        await settle(pilot)
        assert timeline.page is not None and timeline.entity_id == "customer-0003"
        wanted = timeline.page.events[0]
        await pilot.press("up", "up")
        await settle(pilot)
        assert timeline.entity_id == "customer-0001"

        await answer(pilot, settle, "e", f"  {wanted.event_id.hex().upper()} ")
        pane = demo_app.query_one(EventPane)
        assert pane.view is not None and pane.view.event_id == wanted.event_id
        assert demo_app.tabs.active == "tab-event"
        assert (demo_app.entity_id, timeline.entity_id) == ("customer-0003", "customer-0003")
        await settle(pilot)
        page = timeline.page
        assert page is not None and page.events[0].event_id == wanted.event_id  # its page
        assert "customer-0003" in text_of(demo_app, "#crumbs")

    drive(demo_app, scenario)


def test_a_malformed_id_is_named_in_the_prompt_and_an_unknown_one_in_the_pane(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await answer(pilot, settle, "e", "not-an-id")
        assert isinstance(demo_app.screen, Prompt)  # stays, saying why
        assert "32 hexadecimal characters" in text_of(demo_app, "#prompt-status")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(demo_app.screen, Prompt)
        assert demo_app.tabs.active == "tab-timeline"

        await answer(pilot, settle, "e", "0" * 32)
        assert "no event " + "0" * 32 + " in this store" in text_of(demo_app, "#event-status")
        assert demo_app.entity_id == "customer-0001"

    drive(demo_app, scenario)


def test_t_shows_the_timeline_from_a_time_on_and_pages_both_ways_from_there(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        timeline = demo_app.query_one(TimelinePane)
        newest = timeline.page
        assert newest is not None and newest.prev is not None
        middle = newest.events[len(newest.events) // 2]
        at = format_instant(middle.event_time_us)

        await answer(pilot, settle, "t", "  " + at)
        page = timeline.page
        assert page is not None and page.events[0].event_time_us >= middle.event_time_us
        assert page.events[0].event_id == middle.event_id or (
            page.events[0].event_time_us == middle.event_time_us
        )
        assert timeline.table.cursor_row == 0
        assert page.prev is not None
        await pilot.press("N")
        await settle(pilot)
        older = timeline.page
        assert older is not None and older.events[-1].event_time_us < middle.event_time_us

    drive(demo_app, scenario)


def test_t_past_the_last_event_says_so_and_a_bad_time_is_named(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        timeline = demo_app.query_one(TimelinePane)
        before = timeline.page
        await answer(pilot, settle, "t", "the day before")
        assert isinstance(demo_app.screen, Prompt)
        assert "a date like 2026-01-31" in text_of(demo_app, "#prompt-status")
        await pilot.press("escape")
        await settle(pilot)

        await answer(pilot, settle, "t", "9999-01-01")
        assert timeline.page is before
        assert any("no events at or after 9999-01-01" in n.message for n in demo_app._notifications)

    drive(demo_app, scenario, notifications=True)


def marks(timeline: TimelinePane) -> list[bool]:
    column = [
        timeline.table.get_cell_at(Coordinate(row, 1)) for row in range(timeline.table.row_count)
    ]
    return [isinstance(cell, Text) and cell.plain.endswith("!") for cell in column]


def test_events_later_than_the_late_threshold_are_marked_late(
    make_app: Callable[..., PikApp],
    write_store: Callable[..., Path],
    make_event: Callable[..., bytes],
    tmp_path: Path,
    drive: Drive,
) -> None:
    threshold = DEFAULT_LIMITS.late_after_us
    lags = [0, threshold, threshold + 1, 2 * US_PER_DAY]  # late: the last two
    lines = [
        make_event(entity_id="lags", event_time=format_instant(INGESTED - lag), payload={"n": n})
        for n, lag in enumerate(lags)
    ]
    app = make_app(write_store(tmp_path / "store", batch=lines))

    async def scenario(pilot: Pilot[None]) -> None:
        timeline = app.query_one(TimelinePane)
        assert timeline.page is not None and len(timeline.page.events) == 4
        # Oldest first: lags 2 days, threshold + 1 µs, threshold, 0.
        assert marks(timeline) == [True, True, False, False]

    drive(app, scenario)
