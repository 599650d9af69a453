"""The Rates tab: ingest counters per minute per source, refreshed live unless paused.

Refreshes never overlap: the timer is one-shot and re-armed only after the previous fetch
finished (or failed). Nothing is fetched while the tab is hidden or a dialog is open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import get_current_worker

from pik.domain.instants import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE
from pik_tui import formats
from pik_tui.backend import Backend
from pik_tui.messages import RatesLoaded
from pik_tui.safe import clip, clip_middle, name_cell, plain
from pik_tui.widgets.base import Pane
from pik_tui.widgets.table import Table

WINDOWS = (
    ("1h", US_PER_HOUR),
    ("6h", 6 * US_PER_HOUR),
    ("24h", US_PER_DAY),
    ("7d", 7 * US_PER_DAY),
)
REASON_LINES = 5
"""Reasons listed, the most frequent first; the pane says how many more there are."""
COLUMNS = (
    "minute (UTC)",
    "source",
    "accepted",
    "duplicate",
    "rejected",
    "late",
    "conflict",
    "lag p50",
)


class RatesPane(Pane):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "p",
            "toggle_pause",
            "Pause",
            id="rates.pause",
            tooltip="Pause or resume the live refresh",
        ),
        Binding(
            "space",
            "refresh_now",
            "Refresh",
            id="rates.refresh",
            tooltip="Refresh now, paused or not",
        ),
        Binding(
            "w",
            "cycle_window",
            "Window",
            id="rates.window",
            tooltip="Cycle the window: 1h, 6h, 24h, 7d",
        ),
    ]

    FOCUS = "#rates-table"

    def __init__(
        self,
        backend: Backend,
        now_us: Callable[[], int],
        interval: float = 5.0,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(backend, id=id)
        self.now_us = now_us
        self.interval = interval
        self.paused = False
        self.window = 0
        self.fetching = False
        self.fetches = 0
        self._again = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="rates-bar"):
            yield Static(id="rates-badge")
            yield Static(classes="status", id="rates-status")
        yield Table(cursor_type="row", id="rates-table")
        yield Static(id="rates-reasons")

    @property
    def table(self) -> DataTable[object]:
        return self.query_one("#rates-table", DataTable)

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.table.add_column(name, key=name)
        self._badge()
        self.set_status("rates load when this tab is shown")
        self._arm()

    def activate(self) -> None:
        """The tab was just shown: fetch now rather than wait for the timer."""
        self._fetch()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self.paused:
            self._timer = self.set_timer(self.interval, self._tick, name="rates-refresh")

    def _tick(self) -> None:
        self._timer = None
        if self.shown():
            self._fetch()
        else:
            self._arm()

    def _fetch(self) -> None:
        if self.fetching:
            self._again = True  # one more fetch once this one is done
            return
        self.fetching = True
        label, width = WINDOWS[self.window]
        end = self.now_us() // US_PER_MINUTE * US_PER_MINUTE + US_PER_MINUTE
        self.set_status(f"fetching the last {label}…")
        self._load(end - width, end)

    @work(thread=True, exclusive=True, exit_on_error=False, group="rates")
    def _load(self, start_us: int, end_us: int) -> None:
        report = self.backend.rates(start_us, end_us)
        if not get_current_worker().is_cancelled:
            self.post_message(RatesLoaded(start_us, end_us, report))

    def load_failed(self, group: str) -> None:
        self.fetching = False
        self._arm()

    def on_rates_loaded(self, message: RatesLoaded) -> None:
        self.fetching = False
        self.fetches += 1
        self._show_rates(message)
        if self._again:
            self._again = False
            self._fetch()
        else:
            self._arm()

    def _show_rates(self, message: RatesLoaded) -> None:
        table = self.table
        row_at = table.cursor_row
        # The row under the cursor, by what it is: new minutes arrive at the top.
        under = None
        if table.row_count:
            under = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        rows = message.report.rows
        with self.app.batch_update():
            table.clear()
            for row in reversed(rows):
                table.add_row(
                    plain(formats.minute(row.minute_us)),
                    name_cell(row.source, 24),
                    *(plain(str(n)) for n in (row.accepted, row.duplicate, row.rejected)),
                    plain(str(row.late)),
                    plain(str(row.conflict)),
                    plain(formats.median_bucket(row.lag)),
                    key=f"{row.minute_us} {row.source}",
                )
            if rows:
                with contextlib.suppress(RowDoesNotExist):  # its minute left the window
                    row_at = table.get_row_index(under) if under else row_at
                table.move_cursor(row=min(row_at, len(rows) - 1), animate=False)
        label = WINDOWS[self.window][0]
        late = self.backend.late_after_us // 1_000_000
        # The time first: it says how fresh the rows are, and a narrow pane cuts the end.
        self.set_status(
            f"at {formats.instant(self.now_us())[11:19]}Z · last {label} of ingest"
            f" · {len(rows)} rows · late = lag over {late}s"
        )
        reasons = Text("rejections by reason\n", style="bold", end="")
        found = sorted(message.report.reasons, key=lambda r: -r[2])
        if not found:
            reasons.append("none in this window", style="dim")
        for source, code, count in found[:REASON_LINES]:
            reasons.append("  " + clip_middle(source, 24).ljust(12))
            reasons.append(f"{count:>7} x ")
            reasons.append(clip(code, 40) + "\n")
        if len(found) > REASON_LINES:
            rest = found[REASON_LINES:]
            reasons.append(
                f"  … {len(rest)} more reason(s), {sum(r[2] for r in rest)} rejection(s): "
                "`pik rates --json` lists every one",
                style="dim",
            )
        self.query_one("#rates-reasons", Static).update(reasons)

    def _badge(self) -> None:
        badge = self.query_one("#rates-badge", Static)
        badge.set_class(self.paused, "-paused")
        if self.paused:
            badge.update(plain(" PAUSED "))
        else:
            badge.update(plain(f" LIVE {self.interval:g}s "))

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._badge()
        if self.paused:
            self._arm()  # stops the timer; nothing re-arms it until resumed
        else:
            self._fetch()

    def action_refresh_now(self) -> None:
        self._fetch()

    def action_cycle_window(self) -> None:
        self.window = (self.window + 1) % len(WINDOWS)
        self._fetch()
