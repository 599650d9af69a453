"""`e`: an event opened by its id, from anywhere, and the timeline following its entity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Input, Static

from pik_tui.app import PikApp
from pik_tui.screens.lookup import EventLookup
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.timeline import TimelinePane

Settle = Callable[[Pilot[None]], Awaitable[None]]
Drive = Callable[..., None]


def text_of(app: PikApp, selector: str) -> str:
    content = app.screen.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


async def look_up(pilot: Pilot[None], settle: Settle, typed: str) -> None:
    await pilot.press("e")
    await settle(pilot)
    assert isinstance(pilot.app.screen, EventLookup)
    pilot.app.screen.query_one("#lookup-id", Input).value = typed
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

        await look_up(pilot, settle, f"  {wanted.event_id.hex().upper()} ")
        pane = demo_app.query_one(EventPane)
        assert pane.view is not None and pane.view.event_id == wanted.event_id
        assert demo_app.tabs.active == "tab-event"
        assert (demo_app.entity_id, timeline.entity_id) == ("customer-0003", "customer-0003")
        assert "customer-0003" in text_of(demo_app, "#crumbs")

    drive(demo_app, scenario)


def test_a_malformed_id_is_named_in_the_prompt_and_an_unknown_one_in_the_pane(
    demo_app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await look_up(pilot, settle, "not-an-id")
        assert isinstance(demo_app.screen, EventLookup)  # stays, saying why
        assert "32 hexadecimal characters" in text_of(demo_app, "#lookup-status")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(demo_app.screen, EventLookup)
        assert demo_app.tabs.active == "tab-timeline"

        await look_up(pilot, settle, "0" * 32)
        assert "no event " + "0" * 32 + " in this store" in text_of(demo_app, "#event-status")
        assert demo_app.entity_id == "customer-0001"

    drive(demo_app, scenario)
