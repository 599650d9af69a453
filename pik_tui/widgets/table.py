"""The data table every pane uses, with its scrollbar kept where the rows are."""

from __future__ import annotations

from textual.widgets import DataTable


class Table(DataTable[object]):
    """A ``DataTable`` whose vertical scrollbar always shows the current scroll position.

    Textual moves a scrollbar's thumb only while the scrollbar is shown. A page of rows
    loaded and scrolled to its last row before the layout has decided the table needs a
    scrollbar leaves the thumb at the top while the rows show the bottom, until the next
    scroll. It happens on a busy machine; showing the scrollbar puts the thumb right.
    """

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        if shown:
            self.vertical_scrollbar.position = self.scroll_y
