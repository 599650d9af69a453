"""The Coverage tab: a heatmap of the listed entities' events per hour or per day."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.widgets import Static
from textual.worker import get_current_worker

from pik_tui.backend import Backend
from pik_tui.heatmap import (
    HeatRow,
    Span,
    heat_rows,
    legend,
    render,
    span_ending,
    summary,
    windows_fitting,
)
from pik_tui.messages import CoverageLoaded
from pik_tui.widgets.base import Pane

MAX_ROWS = 100
"""Entities drawn at once; the entity filter narrows the list."""
SHIFT = {"hour": 24, "day": 7}
"""Windows moved by one press of [ or ]."""


class CoveragePane(Pane):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "g",
            "granularity",
            "Hour/day",
            id="coverage.granularity",
            tooltip="Switch between 72 hours and 14 days",
        ),
        Binding(
            "left_square_bracket",
            "shift(1)",
            "Earlier",
            id="coverage.earlier",
            tooltip="Move the map a day (or a week) back",
        ),
        Binding(
            "right_square_bracket",
            "shift(-1)",
            "Later",
            id="coverage.later",
            tooltip="Move the map a day (or a week) forward",
        ),
    ]

    FOCUS = "#coverage-scroll"

    def __init__(
        self, backend: Backend, now_us: Callable[[], int], *, id: str | None = None
    ) -> None:
        super().__init__(backend, id=id)
        self.now_us = now_us
        self.entity_ids: list[str] = []
        self.left_out = False
        self.selected: str | None = None
        self.granularity = "hour"
        self.windows_back = 0
        self.rows: list[HeatRow] = []
        self.span: Span | None = None
        self._loaded: tuple[object, ...] | None = None
        self._pending: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="status", id="coverage-status")
        with ScrollableContainer(id="coverage-scroll"):
            yield Static(id="heatmap")
            yield Static(id="coverage-gaps")

    def on_mount(self) -> None:
        self.set_status("coverage loads when this tab is shown")

    def on_resize(self) -> None:
        # As many windows as fit whole, the newest on the right: a narrower pane shows
        # fewer, never hides "now" past its edge.
        if self.shown():
            self.refresh_if_stale()

    def set_entities(self, entity_ids: list[str]) -> None:
        self.entity_ids = entity_ids[:MAX_ROWS]
        self.left_out = len(entity_ids) > len(self.entity_ids)
        if self.shown():
            self.refresh_if_stale()

    def _left_out(self) -> str:
        if not self.left_out:
            return ""
        return f" (the first {MAX_ROWS} of the list: / narrows it)"

    def set_selected(self, entity_id: str) -> None:
        self.selected = entity_id
        if self.span is not None:
            self.query_one("#heatmap", Static).update(render(self.rows, self.span, self.selected))

    def action_granularity(self) -> None:
        self.granularity = "day" if self.granularity == "hour" else "hour"
        self.windows_back = 0
        self.refresh_if_stale()

    def action_shift(self, direction: int) -> None:
        # Never further than the map shows, so a narrow map skips no window.
        step = SHIFT[self.granularity]
        if self.span is not None and self.span.granularity == self.granularity:
            step = min(step, self.span.count)
        self.windows_back = max(0, self.windows_back + direction * step)
        self.refresh_if_stale()

    def reload(self) -> None:
        """Read the map again, up to now (counts move while the store is written)."""
        self._loaded = None
        if self.shown():
            self.refresh_if_stale()

    def refresh_if_stale(self) -> None:
        """Load the map unless it already shows these entities over this span."""
        scroll = self.query_one("#coverage-scroll")
        # Room kept for the vertical scrollbar a long list of entities brings.
        width = scroll.content_region.width - scroll.styles.scrollbar_size_vertical
        count = windows_fitting(width, self.granularity) if width > 0 else None
        span = span_ending(self.now_us(), self.granularity, self.windows_back, count)
        request = (tuple(self.entity_ids), span)
        if request in (self._loaded, self._pending):
            return
        self._pending = request
        self.set_status(f"loading coverage of {len(self.entity_ids)} entities…")
        self._load(request, list(self.entity_ids), span)

    @work(thread=True, exclusive=True, exit_on_error=False, group="coverage")
    def _load(self, request: tuple[object, ...], entity_ids: list[str], span: Span) -> None:
        report = self.backend.coverage(entity_ids, span.start_us, span.end_us, span.granularity)
        rows = heat_rows(report, entity_ids, span)
        if not get_current_worker().is_cancelled:
            self.post_message(CoverageLoaded(request, span, rows))

    def load_failed(self, group: str) -> None:
        self._pending = None

    def on_coverage_loaded(self, message: CoverageLoaded) -> None:
        if message.request != self._pending:
            return
        self._pending, self._loaded = None, message.request
        self.rows, self.span = message.rows, message.span
        span = message.span
        gaps = sum(len(row.gaps) for row in self.rows)
        self.set_status(
            f"events per {span.granularity} · {span.label(0)} … {span.label(span.count - 1)} UTC"
            f" · {len(self.rows)} entities{self._left_out()} · {gaps} GAP {span.granularity}(s)"
            f" in these {span.count}",
            "bold red" if gaps else "",
        )
        self.query_one("#heatmap", Static).update(render(self.rows, span, self.selected))
        self.query_one("#coverage-gaps", Static).update(
            Text("\n").join([legend(self.rows, span), Text(), summary(self.rows, span)])
        )
