"""The entity list on the left: every entity in the store, narrowed by a prefix filter."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from pik_tui.backend import Backend
from pik_tui.messages import EntitiesListed, EntitiesLoaded, EntitySelected
from pik_tui.safe import name_cell
from pik_tui.widgets.base import Pane
from pik_tui.widgets.table import Table

LIMIT = 500
"""Entities listed at once; a prefix narrows the rest."""
ENTITY_CHARS = r"[\sA-Za-z0-9_.:@+=,/#-]*"
"""What an entity id may hold, so a filter cannot be anything else; white space too, so a
pasted id with a space around it is taken (and the space dropped), not refused whole."""


class EntityPane(Pane):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "clear_filter",
            "Clear filter",
            id="entities.clear_filter",
            tooltip="Clear the filter; on an empty filter, back to the list",
        ),
    ]

    def __init__(self, backend: Backend, *, id: str | None = None) -> None:
        super().__init__(backend, id=id)
        self.prefix = ""
        self.selected: str | None = None
        self.listed: list[str] = []
        self._loaded: EntitiesLoaded | None = None

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="/ filter by prefix",
            restrict=ENTITY_CHARS,
            id="entity-filter",
            compact=True,
        )
        yield Table(cursor_type="row", id="entity-table")
        yield Static(classes="status", id="entity-status")

    @property
    def table(self) -> DataTable[object]:
        return self.query_one("#entity-table", DataTable)

    @property
    def filter(self) -> Input:
        return self.query_one("#entity-filter", Input)

    def on_mount(self) -> None:
        # The count first: a long id is cut to fit (in its middle), a number never is.
        self.table.add_column("events", key="events")
        self.table.add_column("entity", key="entity")
        self.set_status("loading entities…")
        self.load("")

    def focus_filter(self) -> None:
        self.filter.focus()

    def focus_list(self) -> None:
        self.table.focus()

    def action_clear_filter(self) -> None:
        """Esc clears the filter; on an empty filter it goes back to the list."""
        if self.filter.value:
            self.filter.value = ""
        else:
            self.focus_list()

    @on(Input.Changed, "#entity-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        cleaned = "".join(event.value.split())
        if cleaned != event.value:
            self.filter.value = cleaned  # changes it again, with the id alone
            return
        self.prefix = event.value
        self.set_status("filtering…")
        self.load(event.value)

    @on(Input.Submitted, "#entity-filter")
    def _filter_submitted(self) -> None:
        self.focus_list()

    @work(thread=True, exclusive=True, exit_on_error=False, group="entities")
    def load(self, prefix: str) -> None:
        rows = self.backend.entities(prefix, LIMIT + 1)
        if not get_current_worker().is_cancelled:
            self.post_message(EntitiesLoaded(prefix, rows[:LIMIT], len(rows) > LIMIT))

    def on_entities_loaded(self, message: EntitiesLoaded) -> None:
        if message.prefix != self.prefix:
            return
        self._loaded = message
        self._fill(message)
        self._describe(message)

    def on_resize(self) -> None:
        # Ids were cut to the old width: cut them again to the new one.
        if self._loaded is not None:
            self._fill(self._loaded)
            if self.selected in self.listed:
                self.table.move_cursor(row=self.listed.index(self.selected), animate=False)

    def reload(self) -> None:
        """Ask the store again (entities and counts change while it is being written)."""
        self.load(self.prefix)

    def _fill(self, message: EntitiesLoaded) -> None:
        table = self.table
        counts = [str(row.count) for row in message.rows]
        count_width = max([len("events"), *map(len, counts)])
        # Each column has a cell of padding either side; the scrollbar takes its own.
        room = table.scrollable_content_region.width or self.size.width
        id_width = max(8, room - count_width - 2 * 2 - table.styles.scrollbar_size_vertical)
        with self.app.batch_update():
            table.clear()
            for row, count in zip(message.rows, counts, strict=True):
                table.add_row(
                    Text(count, justify="right", end=""),
                    name_cell(row.entity_id, id_width),
                    key=row.entity_id,
                )

    def _describe(self, message: EntitiesLoaded) -> None:
        table = self.table
        self.listed = [row.entity_id for row in message.rows]
        shown = f"{len(self.listed)} entit{'y' if len(self.listed) == 1 else 'ies'}"
        if message.truncated:
            shown = f"first {LIMIT} entities; / narrows"
        elif not self.listed:
            shown = "no entity matches" if self.prefix else "the store is empty"
        self.set_status(shown + (f" · prefix {message.prefix}" if message.prefix else ""))
        self.post_message(EntitiesListed(list(self.listed)))
        if self.selected in self.listed:
            table.move_cursor(row=self.listed.index(self.selected), animate=False)
        elif self.listed:
            table.move_cursor(row=0, animate=False)
            self._select(self.listed[0])

    def _select(self, entity_id: str) -> None:
        if entity_id != self.selected:
            self.selected = entity_id
            self.post_message(EntitySelected(entity_id))

    @on(DataTable.RowHighlighted, "#entity-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(event.row_key.value)

    @on(DataTable.RowSelected, "#entity-table")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.selected = event.row_key.value
            self.post_message(EntitySelected(event.row_key.value, open=True))
