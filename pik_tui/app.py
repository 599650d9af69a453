"""`pik-tui`: browse a store by keyboard: entities, timelines, events, coverage and rates."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, TabbedContent, TabPane

from pik.demo import LiveFeed
from pik.domain.envelope import parse_event_id
from pik.domain.instants import now_us as clock
from pik.textsafe import inert
from pik_tui.aws_backend import AwsBackend
from pik_tui.backend import (
    Backend,
    LocalBackend,
    StoreUnavailable,
    default_demo_path,
    default_store_path,
    prepare_demo,
)
from pik_tui.messages import EntitiesListed, EntitySelected, EventChosen, EventShown
from pik_tui.replay_form import draft_for
from pik_tui.screens.help import HelpScreen, Section
from pik_tui.screens.prompt import Prompt
from pik_tui.screens.replay import ReplayScreen
from pik_tui.widgets.base import Pane
from pik_tui.widgets.coverage import CoveragePane
from pik_tui.widgets.entities import EntityPane
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.header import Crumbs
from pik_tui.widgets.rates import RatesPane
from pik_tui.widgets.timeline import TimelinePane, TimelineTable

TABS = {
    "tab-timeline": "Timeline",
    "tab-event": "Event",
    "tab-coverage": "Coverage",
    "tab-rates": "Rates",
}


class PikApp(App[None]):
    """The main screen: entities on the left, four tabs on the right."""

    CSS_PATH = "app.tcss"
    # Below 80 columns the entity list narrows, so the tabs keep room for a timestamp.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]  # noqa: RUF012 (as App declares it)
    TITLE = "pik-tui"
    KEYS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave pik-tui"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Show every key"),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="app.filter",
            tooltip="Filter the entity list by id prefix",
        ),
        Binding(
            "escape",
            "go_back",
            "Back",
            id="app.back",
            show=False,
            tooltip="From an event back to its timeline, else to the entity list",
        ),
        Binding(
            "1",
            "tab('tab-timeline')",
            "Timeline tab",
            id="app.tab_timeline",
            show=False,
            tooltip="Show the selected entity's events",
        ),
        Binding(
            "2",
            "tab('tab-event')",
            "Event tab",
            id="app.tab_event",
            show=False,
            tooltip="Show the event opened last in the selected entity's timeline",
        ),
        Binding(
            "3",
            "tab('tab-coverage')",
            "Coverage tab",
            id="app.tab_coverage",
            show=False,
            tooltip="Show events per hour or day, with gaps",
        ),
        Binding(
            "4",
            "tab('tab-rates')",
            "Rates tab",
            id="app.tab_rates",
            show=False,
            tooltip="Show ingest counters per minute",
        ),
        Binding(
            "r",
            "reload",
            "Reload",
            id="app.reload",
            tooltip="Read the store again: the entity list, this timeline page, the coverage map",
        ),
        Binding(
            "e",
            "lookup",
            "Event id",
            id="app.lookup",
            tooltip="Open an event by its id (from a log line, an alert, `pik` output); the "
            "timeline follows its entity",
        ),
        Binding(
            "R",
            "replay",
            "Replay",
            id="app.replay",
            tooltip="Replay the selected entity's events (the timeline page's span): preview "
            "the plan, confirm, send",
        ),
    ]
    MAIN_SCREEN_ACTIONS = frozenset(
        {"filter", "go_back", "tab", "tab_key", "reload", "replay", "lookup"}
    )
    """Actions of the browsing panes: off over another screen (help, replay)."""
    # The open tab's keys work from the entity list too: arrowing through entities while
    # watching a tab is the natural way to work.
    BINDINGS: ClassVar[list[BindingType]] = [
        *KEYS,
        *(
            Binding(
                b.key,
                f"tab_key({b.key!r})",
                b.description,
                show=False,
                id=f"app.{b.id}",
                tooltip=f"{b.tooltip} (pressed where its tab has no focus)",
            )
            for pane in (TimelinePane, CoveragePane, RatesPane)
            for b in pane.BINDINGS
            if isinstance(b, Binding)
        ),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        now_us: Callable[[], int] = clock,
        read_only: bool = False,
        rates_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.now_us = now_us
        self.read_only = read_only
        self.rates_interval = rates_interval
        self.entity_id: str | None = None
        self.event_id: bytes | None = None

    def compose(self) -> ComposeResult:
        yield Crumbs(id="crumbs")
        with Horizontal(id="main"):
            yield EntityPane(self.backend, id="entities")
            with TabbedContent(id="tabs"):
                with TabPane(TABS["tab-timeline"], id="tab-timeline"):
                    yield TimelinePane(self.backend, id="timeline")
                with TabPane(TABS["tab-event"], id="tab-event"):
                    yield EventPane(self.backend, id="event")
                with TabPane(TABS["tab-coverage"], id="tab-coverage"):
                    yield CoveragePane(self.backend, self.now_us, id="coverage")
                with TabPane(TABS["tab-rates"], id="tab-rates"):
                    yield RatesPane(self.backend, self.now_us, self.rates_interval, id="rates")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(EntityPane).focus_list()
        self._crumbs()

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    def _crumbs(self) -> None:
        tab = TABS.get(self.tabs.active, "")
        self.query_one(Crumbs).show(
            self.backend.label, self.entity_id, self.event_id, tab, self.read_only
        )

    # --- what the panes tell each other ---------------------------------------------------

    def on_entity_selected(self, message: EntitySelected) -> None:
        if message.entity_id != self.entity_id:
            self.entity_id, self.event_id = message.entity_id, None
            self.query_one(EventPane).clear()
        # Enter on the entity on screen reads it again: the store is being written.
        self.query_one(TimelinePane).show_entity(message.entity_id, again=message.open)
        self.query_one(CoveragePane).set_selected(message.entity_id)
        if message.open:
            self.tabs.active = "tab-timeline"
            self._focus_tab()
        self._crumbs()

    def on_entities_listed(self, message: EntitiesListed) -> None:
        self.query_one(CoveragePane).set_entities(message.entity_ids)

    def on_event_chosen(self, message: EventChosen) -> None:
        self.event_id = message.event_id
        self.tabs.active = "tab-event"
        self.query_one(EventPane).show_event(message.event_id)
        self._focus_tab()
        self._crumbs()

    def on_event_shown(self, message: EventShown) -> None:
        """An event opened by its id belongs to another entity: the timeline follows it."""
        if message.entity_id == self.entity_id:
            return
        self.entity_id = message.entity_id
        # Its timeline opens where the event is, not at the newest page.
        self.query_one(TimelinePane).show_entity(message.entity_id, at_us=message.event_time_us)
        self.query_one(CoveragePane).set_selected(message.entity_id)
        self._crumbs()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-coverage":
            self.query_one(CoveragePane).refresh_if_stale()
        elif event.pane.id == "tab-rates":
            self.query_one(RatesPane).activate()
        self._crumbs()

    # --- actions --------------------------------------------------------------------------

    def action_tab(self, tab_id: str) -> None:
        self.tabs.active = tab_id
        self._focus_tab()

    def _focus_tab(self) -> None:
        pane = self.tabs.active_pane
        if pane is not None:
            pane.query_one(Pane).focus_main()

    async def action_tab_key(self, key: str) -> None:
        """A key of the open tab, pressed where the tab does not have focus."""
        pane = self.tabs.active_pane
        if pane is None:
            return
        target = pane.query_one(Pane)
        for binding in target.BINDINGS:
            if isinstance(binding, Binding) and binding.key == key:
                await self.run_action(binding.action, target)
                return

    def action_reload(self) -> None:
        self.query_one(EntityPane).reload()
        self.query_one(TimelinePane).reload()
        self.query_one(CoveragePane).reload()
        self.query_one(RatesPane).action_refresh_now()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The browsing keys act on the main screen's panes: over the replay screen or the
        # help they would act on panes out of sight (and keys typed there are the form's).
        return action not in self.MAIN_SCREEN_ACTIONS or self.screen is self.screen_stack[0]

    def action_replay(self) -> None:
        if self.read_only:
            self.notify(
                "this pik-tui was started with --read-only: it offers no replay. "
                f"Preview one with `{self.backend.command} replay plan`.",
                title="replay",
                severity="warning",
                markup=False,
            )
            return
        page = self.query_one(TimelinePane).page
        events = page.events if page is not None and self.entity_id is not None else []
        draft = draft_for(
            self.entity_id,
            events[0].event_time_us if events else None,
            events[-1].event_time_us if events else None,
        )
        self.push_screen(ReplayScreen(self.backend, draft, self.now_us))

    async def action_quit(self) -> None:
        # Under the help, say, a replay screen may be sending: quitting would cut it off.
        for screen in self.screen_stack:
            if isinstance(screen, ReplayScreen) and screen.sending_here:
                screen.action_leave()  # says why not, and what to do
                return
        await super().action_quit()

    def action_lookup(self) -> None:
        self.push_screen(
            Prompt(
                "Open an event by its id (32 hex digits), then Enter",
                "as `pik timeline` prints it",
                parse_event_id,
            ),
            self._look_up,
        )

    def _look_up(self, event_id: bytes | None) -> None:
        if event_id is None:
            return
        self.event_id = event_id
        self.tabs.active = "tab-event"
        self.query_one(EventPane).show_event(event_id)
        self._focus_tab()
        self._crumbs()

    def action_filter(self) -> None:
        self.query_one(EntityPane).focus_filter()

    def action_go_back(self) -> None:
        """Esc outside the filter: from an event back to its timeline, else to the list."""
        if self.tabs.active == "tab-event":
            self.tabs.active = "tab-timeline"
            self._focus_tab()
        else:
            self.query_one(EntityPane).focus_list()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_sections()))

    def help_sections(self) -> list[Section]:
        return [
            ("Everywhere", self.KEYS),
            ("Entity list", EntityPane.BINDINGS),
            ("Timeline", [*TimelinePane.BINDINGS, *TimelineTable.BINDINGS]),
            ("Coverage", CoveragePane.BINDINGS),
            ("Rates", RatesPane.BINDINGS),
            ("Replay screen (R)", ReplayScreen.BINDINGS),
        ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pik-tui",
        description="Browse a Pipeline Investigation Kit store: entities, timelines, events, "
        "coverage and ingest rates.",
    )
    parser.add_argument(
        "--store",
        type=Path,
        metavar="DIR",
        help="store directory (default: $PIK_STORE, else the same default as `pik`)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="build the demo store if it is absent (at --store, else the `pik demo` default), "
        "open it, and feed it a trickle of live events (not with --read-only)",
    )
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help="browse a deployed AWS stack instead, found by its name in your AWS region "
        "(default: $PIK_STACK unless --store or --demo is given); replays go through its API",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="offer no replay (nothing that writes, not even the replay ledger)",
    )
    args = parser.parse_args(argv)
    if args.stack is not None and not args.stack.strip():
        parser.error("--stack needs a stack's name")
    if args.stack and (args.store or args.demo):
        parser.error("--stack browses a deployed stack; it cannot go with --store or --demo")
    if not (args.stack or args.store or args.demo):
        args.stack = os.environ.get("PIK_STACK") or None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    path: Path = args.store or (default_demo_path() if args.demo else default_store_path())
    try:
        if args.stack:
            backend: Backend = AwsBackend.open(args.stack)
        else:
            if args.demo and prepare_demo(path):
                print(f"pik-tui: built the demo store at {path}", file=sys.stderr)
            backend = LocalBackend.open(path)
    except StoreUnavailable as exc:
        print(f"pik-tui: {inert(str(exc))}", file=sys.stderr)
        return 2
    # The demo comes alive: a trickle of new events, unless the store is to stay untouched.
    feed = LiveFeed(path).start() if args.demo and not args.read_only else None
    try:
        # Reads never write; replays (R) write the ledger only, after a yes.
        PikApp(backend, read_only=args.read_only).run()
    finally:
        if feed is not None:
            feed.stop()
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
