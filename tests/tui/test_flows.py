"""Every flow of the main screen, driven by keys against a real demo store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.text import Text
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from pik.domain.instants import US_PER_HOUR, floor_to
from pik_tui.app import PikApp
from pik_tui.event_view import VERIFIED
from pik_tui.heatmap import gap_runs
from pik_tui.screens.help import HelpScreen
from pik_tui.widgets.coverage import CoveragePane
from pik_tui.widgets.entities import EntityPane
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.rates import RatesPane
from pik_tui.widgets.timeline import PAGE_SIZE, TimelinePane

Settle = Callable[[Pilot[None]], Awaitable[None]]
Drive = Callable[..., None]


def text_of(app: App[None], selector: str) -> str:
    content = app.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def keys(table: DataTable[object]) -> list[str]:
    return [str(row.value) for row in table.rows]


def test_the_first_entity_fills_the_timeline_and_moving_selects_the_next(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        entities = demo_app.query_one(EntityPane)
        timeline = demo_app.query_one(TimelinePane)
        assert entities.table.row_count == 60
        assert timeline.entity_id == "customer-0001"
        assert timeline.table.row_count == PAGE_SIZE
        assert timeline.page is not None and timeline.page.next is None  # the newest page
        assert timeline.page.prev is not None
        assert timeline.table.cursor_row == PAGE_SIZE - 1

        await pilot.press("down")
        await settle(pilot)
        assert timeline.entity_id == "customer-0002"
        assert timeline.page is not None
        assert {r.entity_id for r in timeline.page.events} == {"customer-0002"}
        assert "customer-0002" in text_of(demo_app, "#crumbs")

    drive(demo_app, scenario)


def test_pages_move_older_and_newer_by_cursor(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        timeline = demo_app.query_one(TimelinePane)
        newest = keys(timeline.table)
        await pilot.press("enter")  # choose the entity: focus moves to its timeline
        assert demo_app.focused is timeline.table
        await pilot.press("N")
        await settle(pilot)
        older = keys(timeline.table)
        assert older and not set(older) & set(newest)
        assert timeline.page is not None and timeline.page.prev is None  # the oldest events
        await pilot.press("pagedown")
        await settle(pilot)
        assert keys(timeline.table)[0] not in older
        await pilot.press("pageup")
        await settle(pilot)
        assert keys(timeline.table) == older

    drive(demo_app, scenario)


def test_enter_opens_the_event_with_its_verified_flag(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert demo_app.tabs.active == "tab-event"
        event = demo_app.query_one(EventPane)
        assert event.view is not None and event.view.verified
        fields = text_of(demo_app, "#event-fields")
        assert f"verified        {VERIFIED} (" in fields
        assert "customer-0001" in fields
        assert '"currency": "EUR"' in text_of(demo_app, "#event-payload")
        assert "> event " in text_of(demo_app, "#crumbs")
        await pilot.press("escape")
        assert demo_app.tabs.active == "tab-timeline"

    drive(demo_app, scenario)


def test_choosing_another_entity_forgets_the_event_of_the_last_one(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert "customer-0001" in text_of(demo_app, "#event-fields")
        await pilot.press("escape", "escape")  # event -> timeline -> entity list
        await pilot.press("down")
        await settle(pilot)
        await pilot.press("2")
        assert demo_app.query_one(EventPane).view is None
        assert text_of(demo_app, "#event-fields") == ""
        assert "open an event" in text_of(demo_app, "#event-status")
        crumbs = text_of(demo_app, "#crumbs")
        assert "customer-0002" in crumbs and "> event " not in crumbs

    drive(demo_app, scenario)


def test_an_event_with_duplicates_lists_its_attempts(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        timeline = demo_app.query_one(TimelinePane)
        found = None
        for _ in range(20):
            assert timeline.page is not None
            found = next((r for r in timeline.page.events if r.duplicate_count), None)
            if found:
                break
            await pilot.press("down")
            await settle(pilot)
        assert found is not None
        await pilot.press("tab", "tab")  # entity list -> tab bar -> timeline table
        assert demo_app.focused is timeline.table
        timeline.table.move_cursor(row=timeline.table.get_row_index(found.event_id.hex()))
        await pilot.press("enter")
        await settle(pilot)
        attempts = text_of(demo_app, "#event-attempts")
        assert f"duplicate x{found.duplicate_count} via demo" in attempts

    drive(demo_app, scenario)


def test_slash_filters_entities_by_prefix_and_esc_clears(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        entities = demo_app.query_one(EntityPane)
        await pilot.press("slash")
        assert isinstance(demo_app.focused, Input)
        await pilot.press(*"customer-004")
        await settle(pilot)
        assert keys(entities.table) == [f"customer-{n:04d}" for n in range(40, 50)]
        assert demo_app.query_one(TimelinePane).entity_id == "customer-0040"
        await pilot.press("escape")
        await settle(pilot)
        assert entities.filter.value == ""
        assert entities.table.row_count == 60
        assert entities.selected == "customer-0040"  # the selection survives clearing
        await pilot.press("escape")
        assert demo_app.focused is entities.table

    drive(demo_app, scenario)


def test_a_prefix_nothing_matches_says_so(demo_app: PikApp, drive: Drive, settle: Settle) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("slash", *"zzz")
        await settle(pilot)
        assert demo_app.query_one(EntityPane).table.row_count == 0
        assert "no entity matches" in text_of(demo_app, "#entity-status")

    drive(demo_app, scenario)


def test_coverage_marks_the_six_hour_gap_of_customer_0007(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("3")
        await settle(pilot)
        coverage = demo_app.query_one(CoveragePane)
        # As many hours as fit the pane whole at 120 columns, up to the one holding now.
        assert coverage.span is not None and coverage.span.count == 71
        assert coverage.span.end_us == floor_to(demo_app.now_us(), US_PER_HOUR) + US_PER_HOUR
        row = next(r for r in coverage.rows if r.entity_id == "customer-0007")
        assert [length for _, length in gap_runs(row)] == [6]
        assert "GAP customer-0007  6 hour(s)" in text_of(demo_app, "#coverage-gaps")
        heatmap = text_of(demo_app, "#heatmap").splitlines()
        line = next(ln for ln in heatmap if ln.startswith("customer-0007"))
        assert "\u00d7" * 6 in line
        await pilot.press("g")
        await settle(pilot)
        assert coverage.span is not None and coverage.span.granularity == "day"
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert coverage.windows_back == 7

    drive(demo_app, scenario)


async def coverage_tab(pilot: Pilot[None], settle: Settle) -> CoveragePane:
    """The coverage pane, shown and loaded, once the app's first loads have settled."""
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    return pilot.app.query_one(CoveragePane)


def test_on_a_narrow_terminal_the_map_keeps_now_and_says_what_it_leaves_out(
    make_app: Callable[..., PikApp],
    write_store: Callable[..., Path],
    tmp_path: Path,
    settle: Settle,
) -> None:
    many = [
        json.dumps(
            {
                "source": "s",
                "event_type": "t",
                "entity_id": f"e{n:03d}",
                "event_time": "2025-06-02T11:00:00Z",
                "payload": {},
            }
        ).encode()
        for n in range(120)
    ]
    app = make_app(write_store(tmp_path / "many", batch=many))

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            coverage = await coverage_tab(pilot, settle)
            assert coverage.span is not None and 24 <= coverage.span.count < 72
            assert coverage.span.end_us == floor_to(app.now_us(), US_PER_HOUR) + US_PER_HOUR
            scroll = app.query_one("#coverage-scroll")
            assert scroll.max_scroll_x == 0, "the map fits the pane: nothing hides past its edge"
            status = text_of(app, "#coverage-status")
            assert "100 entities (the first 100 of the list: / narrows it)" in status

    asyncio.run(run())


def test_a_map_narrower_than_a_day_moves_back_by_what_it_shows(
    demo_app: PikApp, settle: Settle
) -> None:
    async def run() -> None:
        async with demo_app.run_test(size=(60, 20)) as pilot:
            coverage = await coverage_tab(pilot, settle)
            assert coverage.span is not None and coverage.span.count < 24
            shown = coverage.span.count
            await pilot.press("left_square_bracket")
            await settle(pilot)
            assert coverage.windows_back == shown, "no hour skipped between the two maps"

    asyncio.run(run())


def test_p_pauses_rates_with_a_badge_and_resumes(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("4")
        await settle(pilot)
        rates = demo_app.query_one(RatesPane)
        badge = demo_app.query_one("#rates-badge", Static)
        assert rates.fetches == 1
        assert rates.table.row_count == 3  # three sources, all ingested in one minute
        assert "LIVE" in text_of(demo_app, "#rates-badge")
        await pilot.press("p")
        assert rates.paused and badge.has_class("-paused")
        assert "PAUSED" in text_of(demo_app, "#rates-badge")
        assert rates._timer is None
        await pilot.press("space")  # refreshing now still works while paused
        await settle(pilot)
        assert rates.fetches == 2 and rates._timer is None
        await pilot.press("p")
        await settle(pilot)
        assert not rates.paused and not badge.has_class("-paused")
        assert rates.fetches == 3 and rates._timer is not None
        assert "LIVE" in text_of(demo_app, "#rates-badge")

    drive(demo_app, scenario)


def test_the_rates_timer_rearms_after_each_fetch_and_stops_when_paused_or_hidden(
    make_app: Callable[..., PikApp], demo_path: Path, drive: Drive, settle: Settle
) -> None:
    app = make_app(demo_path, rates_interval=0.05)

    async def scenario(pilot: Pilot[None]) -> None:
        rates = app.query_one(RatesPane)
        await pilot.press("4")
        await pilot.pause(0.6)
        await settle(pilot)
        assert rates.fetches >= 3
        await pilot.press("p")
        await settle(pilot)
        paused_at = rates.fetches
        await pilot.pause(0.3)
        assert rates.fetches == paused_at
        await pilot.press("p", "1")  # resumed, then hidden: the timer ticks, nothing is fetched
        await settle(pilot)
        hidden_from = rates.fetches
        await pilot.pause(0.3)
        await settle(pilot)
        assert rates.fetches == hidden_from

    drive(app, scenario)


def test_help_lists_every_binding_and_closes(demo_app: PikApp, drive: Drive) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        screen = demo_app.screen
        assert isinstance(screen, HelpScreen)
        text = screen.render_help().plain
        for _, bindings in demo_app.help_sections():
            for binding in bindings:
                assert binding.description in text  # type: ignore[union-attr]
        await pilot.press("escape")
        assert not isinstance(demo_app.screen, HelpScreen)

    drive(demo_app, scenario)


def test_q_quits(demo_app: PikApp, drive: Drive) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("q")
        await pilot.pause()
        assert demo_app.return_code == 0

    drive(demo_app, scenario)


def test_a_failing_store_becomes_a_notification_not_a_crash(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        demo_app.backend.close()
        await pilot.press("down")
        await settle(pilot)
        assert demo_app.is_running
        assert "failed: the store is closed" in text_of(demo_app, "#timeline-status")
        # The last entity's rows are gone: under the new one's name they would lie.
        assert demo_app.query_one(TimelinePane).table.row_count == 0
        assert any("the store is closed" in n.message for n in demo_app._notifications)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert demo_app.is_running
        assert demo_app.query_one(RatesPane)._timer is not None  # re-armed after the failure

    drive(demo_app, scenario, notifications=True)


def test_a_narrow_terminal_narrows_the_entity_list(demo_app: PikApp, drive: Drive) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        pane = pilot.app.query_one(EntityPane)
        assert pane.outer_size.width == 30
        await pilot.resize_terminal(60, 30)
        await pilot.pause()
        assert pilot.app.screen.has_class("-narrow")
        assert pane.outer_size.width == 25
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert pane.outer_size.width == 30

    drive(demo_app, scenario)
