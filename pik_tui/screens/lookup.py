"""`e`: open an event by its id, as it appears in a log line, an alert or `pik` output."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from pik.domain.envelope import parse_event_id
from pik_tui.safe import plain


class EventLookup(ModalScreen[bytes | None]):
    """Asks for an event id; dismissed with its bytes, or ``None`` on esc."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="lookup.close", tooltip="Open nothing"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="lookup-box"):
            yield Static(plain("Open an event by its id (32 hex digits), then Enter"))
            yield Input(placeholder="e.g. 3f2a… as `pik timeline` prints it", id="lookup-id")
            yield Static(classes="status", id="lookup-status")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            found = parse_event_id(event.value)
        except ValueError as exc:
            self.query_one("#lookup-status", Static).update(plain(str(exc), "bold red"))
            return
        self.dismiss(found)

    def action_close(self) -> None:
        self.dismiss(None)
