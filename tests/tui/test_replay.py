"""The replay screen (`R`), driven by keys against a real store and its real ledger: a
preview sends nothing, a send needs the explicit yes, and every step is in the ledger
that `pik replay` reads."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pilot_wait import until
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from pik.domain import replay as model
from pik.domain.instants import parse_instant
from pik.domain.replay import Plan, Selection
from pik.engines.local import LocalEngine
from pik.engines.local.ledger import LocalReplayLedger
from pik.engines.local.replay import LocalReplayBackend
from pik.services.replay_control import LedgerControl
from pik_tui.app import PikApp
from pik_tui.backend import LocalBackend
from pik_tui.replaying import ReplayDesk
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
        assert app.focused is screen.query_one("#replay-entities", Input)  # typing goes on

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
        assert screen.check_action("preview", ()) is None  # greyed in the footer
        await pilot.press("escape")  # refused: this process is sending it
        await pilot.press("ctrl+q")  # so is quitting
        await pilot.pause()
        assert app.screen is screen and app.is_running
        await pilot.press("question_mark", "ctrl+q")  # from the help over it too
        await pilot.pause()
        assert app.is_running
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("f8", "f8", "f8")  # asked once
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
    saved = ledger(store)
    try:
        asked = [r for r in saved.audit_log(0, 100) if r.action == model.CANCEL_REQUESTED]
    finally:
        saved.close()
    assert len(asked) == 1


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


class GatedReplays(LocalBackend):
    """A local store whose first preview waits for ``gate``: a slow plan, as on a big
    slice or a stack, to edit the form under."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.planned = 0

    def replays(self) -> ReplayDesk:
        desk = super().replays()
        control = desk.control
        first_plan = control.plan

        def plan(selection: Selection) -> Plan:
            self.planned += 1
            if self.planned == 1:
                assert self.gate.wait(10)
            return first_plan(selection)

        control.plan = plan  # type: ignore[method-assign]
        return desk


@pytest.fixture
def gated(store: Path) -> Iterator[PikApp]:
    engine = LocalEngine(store, create=False, read_only=True)
    backend = GatedReplays(engine, "gated")
    yield PikApp(backend, now_us=lambda: parse_instant("2025-06-02T12:05:00Z"))
    backend.close()


async def held_preview(
    pilot: Pilot[None], settle: Settle, app: PikApp, target: str
) -> tuple[ReplayScreen, GatedReplays]:
    """The replay screen with a preview of customer-0001 asked for and held at the gate,
    and the form then changed to customer-0002."""
    backend = app.backend
    assert isinstance(backend, GatedReplays)
    await pilot.press("R")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, ReplayScreen)
    await type_into(pilot, "target", target)
    await pilot.press("f5")
    await until(pilot, lambda: backend.planned == 1)
    await type_into(pilot, "entities", "customer-0002")
    return screen, backend


def test_a_plan_that_arrives_after_the_form_changed_cannot_be_sent(
    gated: PikApp, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        target = f"file:{tmp_path / 'out.ndjson'}"
        screen, backend = await held_preview(pilot, settle, gated, target)
        backend.gate.set()
        await settle(pilot)
        assert screen.plan is not None and screen.plan.selection.entity_ids == ("customer-0001",)
        assert screen.stale and screen.query_one("#replay-send", Button).disabled
        assert "changed while planning" in status(gated)

    drive(gated, scenario)


def test_an_earlier_preview_answered_late_does_not_replace_the_latest(
    gated: PikApp, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        target = f"file:{tmp_path / 'out.ndjson'}"
        screen, backend = await held_preview(pilot, settle, gated, target)
        await pilot.press("f5")  # customer-0002, answered at once
        await until(pilot, lambda: screen.plan is not None)
        backend.gate.set()
        await settle(pilot)
        await asyncio.sleep(0.2)
        await settle(pilot)
        assert screen.plan is not None
        assert screen.plan.selection.entity_ids == ("customer-0002",)
        assert not screen.stale and not screen.query_one("#replay-send", Button).disabled

    drive(gated, scenario)


def test_a_plan_confirmed_elsewhere_is_refused_and_cannot_be_offered_again(
    app: PikApp, store: Path, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    async def scenario(pilot: Pilot[None]) -> None:
        screen = await open_and_preview(pilot, settle, f"file:{tmp_path / 'out.ndjson'}")
        plan = screen.plan
        assert plan is not None
        other = LocalReplayBackend.open(store, who="someone-else")
        try:
            LedgerControl(other).confirm(plan.plan_id, 10)  # another operator, first
        finally:
            other.close()
        await pilot.press("f6")
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert "[plan_already_confirmed]" in status(app)
        assert "Preview again to send" in status(app)
        assert screen.query_one("#replay-send", Button).disabled
        assert not screen.sending_here

    drive(app, scenario)


def test_a_target_failing_mid_send_leaves_the_run_open_and_says_how_to_go_on(
    app: PikApp, store: Path, tmp_path: Path, drive: Drive, settle: Settle
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()

    async def scenario(pilot: Pilot[None]) -> None:
        screen = await open_and_preview(pilot, settle, f"file:{folder / 'out.ndjson'}")
        folder.rmdir()  # between the preview and the send
        await pilot.press("f6")
        await settle(pilot)
        await pilot.press("tab", "enter")
        await until(pilot, lambda: not screen.sending)
        await settle(pilot)
        said = status(app)
        assert "a file could not be read or written" in said
        assert " replay resume " in said and " replay cancel " in said
        assert screen.query_one("#replay-cancel", Button).disabled  # nothing sends it here
        assert screen.query_one("#replay-send", Button).disabled

    drive(app, scenario)
    saved = ledger(store)
    try:
        (run,) = saved.runs(10)
    finally:
        saved.close()
    assert run.status == model.RUNNING and run.sent == 0  # resumable


class SlowToOpen(LocalBackend):
    """A local store whose replay ledger takes until ``gate`` to open; counts closings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.asked = threading.Event()
        self.closed: list[str] = []

    def replays(self) -> ReplayDesk:
        self.asked.set()
        assert self.gate.wait(10)
        desk = super().replays()
        close = desk._close
        desk._close = lambda: (self.closed.append("closed"), close())[1]  # type: ignore[method-assign]
        return desk


def test_a_replay_screen_left_before_its_ledger_opened_closes_it_once_it_does(
    store: Path, drive: Drive, settle: Settle
) -> None:
    backend = SlowToOpen(LocalEngine(store, create=False, read_only=True), "slow")
    app = PikApp(backend, now_us=lambda: parse_instant("2025-06-02T12:05:00Z"))

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("R")
        await until(pilot, backend.asked.is_set)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ReplayScreen))
        backend.gate.set()
        await settle(pilot)
        await until(pilot, lambda: backend.closed == ["closed"])

    try:
        drive(app, scenario)
    finally:
        backend.close()
