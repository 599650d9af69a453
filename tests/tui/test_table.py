"""The panes' table draws what it holds even when the screen refreshes at awkward moments."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from pik_tui.widgets.table import Table

VALUE = "a value longer than its header"


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield Table()


def test_rows_drawn_before_their_columns_were_measured_are_drawn_again() -> None:
    """On a busy machine a screen refresh can draw new rows before the table has measured
    them; the lines drawn at the old column widths must not stay on the screen."""

    async def run() -> str:
        app = OneTable()
        async with app.run_test(size=(60, 8)) as pilot:
            table = app.query_one(Table)
            table.add_column("a", key="a")
            await pilot.pause()
            table.add_row(VALUE)
            assert VALUE not in table.render_line(1).text  # drawn before it was measured
            await pilot.pause()
            await pilot.pause()
            return app.export_screenshot().replace("&#160;", " ")

    assert VALUE in asyncio.run(run())
