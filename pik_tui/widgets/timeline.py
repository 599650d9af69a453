"""The Timeline tab: one entity's events in event-time order, a page at a time."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from pik.domain.cursor import Cursor
from pik.domain.instants import now_us, parse_query_time
from pik.domain.lag import is_late
from pik.services.query import TimelinePage
from pik_tui import formats
from pik_tui.backend import Backend
from pik_tui.messages import EventChosen, PageRequested, TimelineLoaded
from pik_tui.safe import clip, name_cell, plain
from pik_tui.screens.prompt import Prompt
from pik_tui.widgets.base import Pane
from pik_tui.widgets.table import Table

PAGE_SIZE = 100


class TimelineTable(Table):
    """The events table; page keys fetch the next page from the store instead of scrolling."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "pagedown",
            "page(True)",
            "Newer page",
            id="timeline.page_down",
            show=False,
            tooltip="Load the next page of newer events",
        ),
        Binding(
            "pageup",
            "page(False)",
            "Older page",
            id="timeline.page_up",
            show=False,
            tooltip="Load the previous page of older events",
        ),
    ]

    def action_page(self, forward: bool) -> None:
        self.post_message(PageRequested(forward))


class TimelinePane(Pane):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "n",
            "page(True)",
            "Newer",
            id="timeline.newer",
            tooltip="Load the next page of newer events",
        ),
        Binding(
            "N",
            "page(False)",
            "Older",
            id="timeline.older",
            tooltip="Load the previous page of older events",
        ),
        Binding(
            "t",
            "jump",
            "Jump to time",
            id="timeline.jump",
            tooltip="Show the events from a time on (2026-11-27T10:00Z, a date, -6h); "
            "paging goes on both ways from there",
        ),
    ]

    FOCUS = "#timeline-table"

    def __init__(self, backend: Backend, *, id: str | None = None) -> None:
        super().__init__(backend, id=id)
        self.entity_id: str | None = None
        self.page: TimelinePage | None = None
        self._pending: tuple[str, str | None] | None = None
        self._forward = False
        self._newest = False
        """The request asks for the newest page again, from its end (n past the end)."""
        self._jumped_to: int | None = None
        """The request is a jump to this time (t)."""
        self._shown_cursor: str | None = None
        """The cursor the page on screen was read with (None: the newest page)."""

    def compose(self) -> ComposeResult:
        yield Static(classes="status", id="timeline-status")
        yield TimelineTable(cursor_type="row", id="timeline-table")

    @property
    def table(self) -> TimelineTable:
        return self.query_one(TimelineTable)

    def on_mount(self) -> None:
        # The signals an investigation reads first (lag, later arrivals) beside the time:
        # on an 80-column terminal they stay in view and the names scroll instead.
        for name, key in (
            ("event time (UTC)", "time"),
            ("lag", "lag"),
            ("dups", "dups"),
            ("conflicts", "conflicts"),
            ("source", "source"),
            ("type", "type"),
        ):
            self.table.add_column(name, key=key)
        self.set_status("choose an entity on the left")

    def show_entity(self, entity_id: str, again: bool = False, at_us: int | None = None) -> None:
        """Show the newest page of ``entity_id`` (``again``: even when it is on screen), or
        with ``at_us`` its events from that time on."""
        if entity_id == self.entity_id and self.page is not None and not again and at_us is None:
            return
        self.entity_id = entity_id
        self.page = None
        if at_us is not None:
            self.jump_to(at_us)
            return
        self._request(None, forward=False)

    def _request(
        self, cursor: str | None, forward: bool, newest: bool = False, jump: int | None = None
    ) -> None:
        assert self.entity_id is not None
        self._pending = (self.entity_id, cursor)
        self._forward = forward
        self._newest = newest
        self._jumped_to = jump
        self.set_status(f"loading {clip(self.entity_id, 40)}…")
        self._load(self.entity_id, cursor)

    def action_page(self, forward: bool) -> None:
        if self.page is None:
            return
        token = self.page.next if forward else self.page.prev
        if token is None and forward:
            # The newest page when it was read: events may have come since.
            self._request(None, forward=False, newest=True)
            return
        if token is None:
            self.notify("no older events", timeout=2)
            return
        self._request(token, forward)

    def action_jump(self) -> None:
        if self.entity_id is None:
            self.notify("choose an entity first", timeout=2)
            return
        now = getattr(self.app, "now_us", now_us)

        def read(text: str) -> int:
            return parse_query_time(text, now())

        self.app.push_screen(
            Prompt(
                f"Show {clip(self.entity_id, 40)}'s events from (UTC), then Enter",
                "2026-11-27T10:00:00Z, 2026-11-27, -6h, now-2d",
                read,
            ),
            self.jump_to,
        )

    def jump_to(self, at_us: int | None) -> None:
        """Show the page of events from ``at_us`` on (the earliest at or after it)."""
        if at_us is None or self.entity_id is None:
            return
        start = Cursor.starting_at(at_us).encode(self.entity_id)
        self._request(start, forward=True, jump=at_us)

    def reload(self) -> None:
        """Read the page on screen again (the store is being written meanwhile)."""
        if self.entity_id is not None and self._pending is None:
            self._request(self._shown_cursor, self._forward)

    def on_page_requested(self, message: PageRequested) -> None:
        message.stop()
        self.action_page(message.forward)

    @work(thread=True, exclusive=True, exit_on_error=False, group="timeline")
    def _load(self, entity_id: str, cursor: str | None) -> None:
        page = self.backend.timeline(entity_id, cursor, PAGE_SIZE)
        if not get_current_worker().is_cancelled:
            self.post_message(TimelineLoaded(entity_id, cursor, page))

    def on_timeline_loaded(self, message: TimelineLoaded) -> None:
        if (message.entity_id, message.cursor) != self._pending:
            return
        self._pending = None
        page = message.page
        if not page.events and self._jumped_to is not None:
            self.notify(
                f"no events at or after {formats.instant(self._jumped_to)}: press n for the newest",
                timeout=3,
            )
            self._describe()
            return
        if not page.events and message.cursor is not None:
            self.notify(f"no {'newer' if self._forward else 'older'} events", timeout=2)
            self._describe()
            return
        if self._newest and self.page is not None and self._same(page, self.page):
            self.notify("no newer events yet", timeout=2)
        self.page, self._shown_cursor = page, message.cursor
        table = self.table
        late_after_us = self.backend.late_after_us
        with self.app.batch_update():
            table.clear()
            for record in page.events:
                late = is_late(record.ingest_time_us - record.event_time_us, late_after_us)
                table.add_row(
                    plain(formats.instant(record.event_time_us)),
                    # One mark, not a word: the table must not outgrow an 80-column pane.
                    plain(
                        formats.lag(record.lag_ms) + ("!" if late else ""),
                        "bold yellow" if late else "",
                    ),
                    plain(str(record.duplicate_count) if record.duplicate_count else "-"),
                    plain(str(record.conflict_count) if record.conflict_count else "-"),
                    name_cell(record.source, 24),
                    name_cell(record.event_type, 28),
                    key=record.event_id.hex(),
                )
        if page.events:
            row = 0 if self._forward else len(page.events) - 1
            table.move_cursor(row=row, animate=False)
            # Once more when laid out: a horizontal scrollbar that wider rows bring takes a
            # line, and would hide the row the cursor was scrolled to.
            self.call_after_refresh(table.move_cursor, row=row, animate=False)
        self._describe()

    @staticmethod
    def _same(one: TimelinePage, other: TimelinePage) -> bool:
        return [e.event_id for e in one.events] == [e.event_id for e in other.events]

    def load_failed(self, group: str) -> None:
        if group != "timeline":
            return
        self._pending = None
        if self.page is None:
            # The rows on screen are the last entity's; under this one's name they would lie.
            self.table.clear()

    def _describe(self) -> None:
        if self.entity_id is None or self.page is None:
            return
        count = len(self.page.events)
        if not count:
            self.set_status(f"{clip(self.entity_id, 40)}: no events")
            return
        moves = [
            text
            for text, token in (("N/pgup older", self.page.prev), ("n/pgdn newer", self.page.next))
            if token
        ]
        self.set_status(
            f"{clip(self.entity_id, 40)} · {count} event{'s' if count != 1 else ''}"
            f" on this page · enter opens · {' · '.join(moves) or 'all shown'}"
        )

    @on(DataTable.RowSelected, "#timeline-table")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        # While another entity's page loads, its predecessor's rows are not this entity's.
        if self.page is None:
            return
        if self.entity_id is not None and event.row_key.value is not None:
            self.post_message(EventChosen(bytes.fromhex(event.row_key.value), self.entity_id))
