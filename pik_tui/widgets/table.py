"""The data table every pane uses, drawn right on a busy machine."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class Table(DataTable[object]):
    """A ``DataTable`` that never shows rows drawn before their columns were measured,
    nor a scrollbar thumb away from the rows it scrolls.

    ``DataTable`` measures new rows when it is next idle. A screen refresh that comes
    first (a busy machine) draws them at the old column widths, and those lines are reused
    after the measuring because nothing in their cache key changed: the rows stay clipped
    until the next cursor move. And Textual moves a scrollbar's thumb only while the
    scrollbar is shown, so a page scrolled to its last row before the layout showed the
    scrollbar kept its thumb at the top.
    """

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        self._update_count += 1  # every cached line is keyed by it: none drawn before survive
        self.refresh()

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        if shown:
            self.vertical_scrollbar.position = self.scroll_y
