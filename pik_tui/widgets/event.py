"""The Event tab: one stored event, re-verified now, with its duplicate attempts and payload."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual.worker import get_current_worker

from pik_tui.backend import Backend
from pik_tui.event_view import EventView, build_event_view
from pik_tui.messages import EventLoaded, EventShown
from pik_tui.widgets.base import Pane

NAME_WIDTH = 16


class EventPane(Pane):
    FOCUS = "#event-scroll"

    def __init__(self, backend: Backend, *, id: str | None = None) -> None:
        super().__init__(backend, id=id)
        self.view: EventView | None = None
        self._pending: bytes | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="status", id="event-status")
        with VerticalScroll(id="event-scroll"):
            yield Static(id="event-fields")
            yield Static(id="event-attempts")
            yield Static(id="event-payload")

    def on_mount(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget the event shown: it belongs to an entity that is no longer selected."""
        self._pending, self.view = None, None
        for part in ("#event-fields", "#event-attempts", "#event-payload"):
            self.query_one(part, Static).update("")
        self.set_status(
            "press enter on a timeline row to open an event, or e to open one by its id"
        )

    def show_event(self, event_id: bytes) -> None:
        self._pending = event_id
        self.set_status(f"loading event {event_id.hex()}…")
        self._load(event_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="event")
    def _load(self, event_id: bytes) -> None:
        detail = self.backend.event(event_id)
        command = self.backend.command
        view = None if detail is None else build_event_view(detail, command=command)
        if not get_current_worker().is_cancelled:
            self.post_message(EventLoaded(event_id, view))

    def on_event_loaded(self, message: EventLoaded) -> None:
        if message.event_id != self._pending:
            return
        self._pending = None
        view = message.view
        if view is None:
            self.set_status(f"no event {message.event_id.hex()} in this store", "bold red")
            return
        self.view = view
        style = "bold green" if view.verified else "bold white on red"
        self.set_status(f"event {view.event_id.hex()} · {view.verdict}", style)
        self.query_one("#event-fields", Static).update(_fields(view))
        self.query_one("#event-attempts", Static).update(_attempts(view))
        payload = Text("payload\n", style="bold", end="")
        payload.append(view.payload)
        self.query_one("#event-payload", Static).update(payload)
        self.query_one("#event-scroll", VerticalScroll).scroll_home(animate=False)
        self.post_message(EventShown(view.event_id, view.entity_id, view.event_time_us))


def _fields(view: EventView) -> Text:
    text = Text(end="")
    for name, value in view.fields:
        text.append(name.ljust(NAME_WIDTH), style="bold")
        if name == "verified":
            text.append(value, style="bold green" if view.verified else "bold white on red")
        else:
            text.append(value)
        text.append("\n")
    text.rstrip()
    return text


def _attempts(view: EventView) -> Text:
    text = Text("later arrivals\n", style="bold", end="")
    if not view.attempts:
        text.append("none: this event arrived once\n", style="dim")
    for line in view.attempts:
        text.append("  " + line + "\n")
    text.rstrip()
    return text
