"""`?`: every key of every pane, generated from the panes' bindings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

Section = tuple[str, Sequence[BindingType]]

BASICS = (
    ("↑ ↓", "move in a list or table"),
    ("enter", "open: an entity's timeline, an event's detail"),
    ("tab / shift+tab", "move between the entity list and the tabs"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q,question_mark",
            "close",
            "Close help",
            id="help.close",
            tooltip="Close this help",
        ),
    ]

    def __init__(self, sections: Iterable[Section]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(self.render_help(), id="help-text")

    def render_help(self) -> Text:
        text = Text(end="")
        text.append("pik-tui keys", style="bold underline")
        text.append("   (esc, q or ? closes)\n\n", style="dim")
        for keys, what in BASICS:
            text.append(f"  {keys:<18}", style="bold")
            text.append(what + "\n")
        for title, bindings in [*self.sections, ("This help", self.BINDINGS)]:
            text.append(f"\n{title}\n", style="bold")
            for binding in bindings:
                if not isinstance(binding, Binding):
                    continue
                keys = " ".join(
                    self.app.get_key_display(Binding(key, binding.action))
                    for key in binding.key.split(",")
                )
                text.append(f"  {keys:<18}", style="bold")
                text.append(binding.description)
                if binding.tooltip:
                    text.append(f": {binding.tooltip}", style="dim")
                text.append("\n")
        return text

    def action_close(self) -> None:
        self.dismiss(None)
