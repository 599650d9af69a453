"""The panes' table draws what it holds even when the screen refreshes at awkward moments."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.app import App, ComposeResult
from textual.pilot import Pilot

from pik_tui.app import PikApp
from pik_tui.widgets.table import Table
from pik_tui.widgets.timeline import TimelinePane

Drive = Callable[..., None]

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


def test_the_scrollbar_shows_the_newest_rows_even_when_it_appears_after_the_scroll(
    demo_app: PikApp, drive: Drive
) -> None:
    """On a busy machine the table scrolls to its last row before its scrollbar is shown."""

    async def scenario(pilot: Pilot[None]) -> None:
        table = demo_app.query_one(TimelinePane).table
        table.scroll_home(animate=False, immediate=True)
        assert table.vertical_scrollbar.position == 0
        table.show_vertical_scrollbar = False
        table.scroll_y = table.max_scroll_y
        table.show_vertical_scrollbar = True
        assert table.scroll_y == table.max_scroll_y > 0
        assert table.vertical_scrollbar.position == table.scroll_y

    drive(demo_app, scenario)
