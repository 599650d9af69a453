"""The replay screen (`R`), driven by keys against a real store and its real ledger: a
preview sends nothing, a send needs the explicit yes, and every step is in the ledger
that `pik replay` reads."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from pik.domain import replay as model
from pik.engines.local.ledger import LocalReplayLedger
from pik_tui.app import PikApp
from pik_tui.screens.confirm import ConfirmSend
from pik_tui.screens.replay import ReplayScreen
from pik_tui.widgets.timeline import TimelinePane

Settle = Callable[[Pilot[None]], Awaitable[None]]
Drive = Callable[..., None]
MakeApp = Callable[..., PikApp]


@pytest.fixture
def store(demo_path: Path, tmp_path: Path) -> Path:
    """A store of its own: a replay writes the ledger beside the events."""
    return Path(shutil.copytree(demo_path, tmp_path / "store"))


@pytest.fixture
def app(make_app: MakeApp, store: Path) -> PikApp:
    return make_app(store)


def status(app: PikApp) -> str:
    content = app.screen.query_one("#replay-status", Static).content
    return content.plain if isinstance(content, Text) else str(content)


async def type_into(pilot: Pilot[None], key: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#replay-{key}", Input)
    field.value = text
    await pilot.pause()


async def open_and_preview(pilot: Pilot[None], settle: Settle, target: str) -> ReplayScreen:
    await pilot.press("R")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReplayScreen)
    await type_into(pilot, "target", target)
    await pilot.press("f5")
    await settle(pilot)
    return screen


def ledger(store: Path) -> LocalReplayLedger:
    return LocalReplayLedger(store)


def test_the_preview_plans_the_timeline_page_on_screen_and_sends_nothing(
    app: PikApp, store: Path, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    out = tmp_path / "out.ndjson"

    async def scenario(pilot: Pilot[None]) -> None:
        page = app.query_one(TimelinePane).page
        assert page is not None
        screen = await open_and_preview(pilot, settle, f"file:{out}")
        assert screen.query_one("#replay-entities", Input).value == "customer-0001"
        plan = screen.plan
        assert plan is not None
        assert plan.events == len(page.events)
        assert plan.selection.entity_ids == ("customer-0001",)
        assert plan.first_event_us == page.events[0].event_time_us
        assert plan.last_event_us == page.events[-1].event_time_us
        assert f"plan {plan.plan_id}: {plan.events:,} event(s)" in status(app)
        assert not screen.query_one("#replay-send", Button).disabled
        saved = ledger(store)
        try:
            assert saved.plan(plan.plan_id) == plan
            assert saved.runs(10) == []
        finally:
            saved.close()

    drive(app, scenario)
    assert not out.exists()


def test_a_send_needs_the_yes_and_then_sends_the_plan_audited(
    app: PikApp, store: Path, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    out = tmp_path / "out.ndjson"

    async def scenario(pilot: Pilot[None]) -> None:
        screen = await open_and_preview(pilot, settle, f"file:{out}")
        plan = screen.plan
        assert plan is not None

        await pilot.press("f6")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmSend)
        await pilot.press("enter")  # the focus starts on "No"
        await settle(pilot)
        assert app.screen is screen
        assert "not confirmed: nothing was sent" in status(app)
        assert not out.exists()

        await pilot.press("f6")
        await settle(pilot)
        await pilot.press("tab", "enter")  # to "Send", then press it
        for _ in range(100):
            await settle(pilot)
            if screen.run is not None and screen.run.status != model.RUNNING:
                break
            await asyncio.sleep(0.05)
        run = screen.run
        assert run is not None and run.status == model.COMPLETED
        assert run.sent == run.total == plan.events
        assert f"replay {run.replay_id} completed: sent {plan.events:,}" in status(app)
        assert screen.query_one("#replay-send", Button).disabled  # a plan runs once

        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ReplayScreen)

    drive(app, scenario)
    lines = out.read_bytes().splitlines()
    messages = [json.loads(line) for line in lines]
    assert len(messages) > 0
    assert {m["replay_id"] for m in messages} == {messages[0]["replay_id"]}
    saved = ledger(store)
    try:
        (run,) = saved.runs(10)
        assert run.status == model.COMPLETED and run.sent == len(messages)
        actions = [r.action for r in saved.audit_log(0, 100)]
    finally:
        saved.close()
    assert actions[:2] == [model.PLANNED, model.CONFIRMED]
    assert actions[-1] == model.COMPLETED


def test_a_mistake_in_the_form_is_named_and_nothing_is_planned(
    app: PikApp, store: Path, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("R")
        await settle(pilot)
        screen = app.screen
        await type_into(pilot, "target", "file:out.ndjson")
        await type_into(pilot, "start", "yesterday-ish")
        await pilot.press("f5")
        await settle(pilot)
        assert status(app).startswith("From: ")
        assert app.focused is screen.query_one("#replay-start", Input)

        await type_into(pilot, "start", "-1d")
        await type_into(pilot, "target", "http://example.com/hook")
        await pilot.press("f5")
        await settle(pilot)
        assert "[invalid_selection]" in status(app)
        assert "file:PATH" in status(app)
        assert app.focused is screen.query_one("#replay-target", Input)
        assert isinstance(screen, ReplayScreen) and screen.plan is None

    drive(app, scenario)
    assert not (store / "ledger.sqlite").exists() or ledger_plans(store) == 0


def ledger_plans(store: Path) -> int:
    saved = ledger(store)
    try:
        return sum(1 for r in saved.audit_log(0, 100) if r.action == model.PLANNED)
    finally:
        saved.close()


def test_changing_the_slice_after_the_preview_holds_the_send_back(
    app: PikApp, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        screen = await open_and_preview(pilot, settle, f"file:{tmp_path / 'out.ndjson'}")
        send = screen.query_one("#replay-send", Button)
        assert not send.disabled
        await type_into(pilot, "rate", "50")  # chosen at confirmation: the plan holds
        assert not send.disabled
        await type_into(pilot, "types", "order.created")
        assert send.disabled and screen.stale
        assert "preview again" in status(app)
        await pilot.press("f6")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmSend)
        await pilot.press("f5")
        await settle(pilot)
        assert not send.disabled and not screen.stale
        assert screen.plan is not None
        assert screen.plan.selection.event_types == ("order.created",)

    drive(app, scenario)


def test_a_slow_send_can_be_cancelled_and_the_screen_stays_while_it_is_sent(
    app: PikApp, store: Path, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        screen = await open_and_preview(pilot, settle, f"file:{tmp_path / 'out.ndjson'}")
        await type_into(pilot, "rate", "2")
        await pilot.press("f6")
        await settle(pilot)
        await pilot.press("tab", "enter")
        for _ in range(100):
            await pilot.pause()
            if screen.run is not None and screen.run.sent > 0:
                break
            await asyncio.sleep(0.05)
        assert screen.sending_here
        await pilot.press("escape")  # refused: this process is sending it
        await pilot.press("ctrl+q")  # so is quitting
        await pilot.pause()
        assert app.screen is screen and app.is_running
        await pilot.press("f8")
        for _ in range(100):
            await pilot.pause()
            if screen.run is not None and screen.run.status != model.RUNNING:
                break
            await asyncio.sleep(0.05)
        run = screen.run
        assert run is not None and run.status == model.CANCELLED
        assert 0 < run.sent < run.total
        assert f"replay {run.replay_id} cancelled" in status(app)
        assert not screen.sending_here

    drive(app, scenario)


def test_a_read_only_tui_offers_no_replay(make_app: MakeApp, store: Path, drive: Drive) -> None:
    app = make_app(store, read_only=True)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("R")
        await pilot.pause()
        assert not isinstance(app.screen, ReplayScreen)
        assert any("--read-only" in n.message for n in app._notifications)

    drive(app, scenario, notifications=True)
    assert not (store / "ledger.sqlite").exists()


def test_the_browsing_keys_rest_while_the_replay_screen_is_up(
    app: PikApp, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("R")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#replay-preview", Button).focus()
        await pilot.press("3", "r", "slash")
        await settle(pilot)
        assert app.screen is screen
        assert app.tabs.active == "tab-timeline"

    drive(app, scenario)
