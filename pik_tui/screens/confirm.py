"""The one question before a replay is sent. "No" has the focus: Enter alone sends nothing."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmSend(ModalScreen[bool]):
    """Asks to send a plan; dismissed with ``True`` only by the Send button."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,n",
            "answer(False)",
            "Don't send",
            id="confirm.no",
            tooltip="Close the question; nothing is sent",
        ),
    ]

    def __init__(self, question: Text, send_label: str) -> None:
        super().__init__()
        self.question = question
        self.send_label = send_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("No, send nothing", id="confirm-no", variant="primary")
                yield Button(self.send_label, id="confirm-send", variant="error")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def action_answer(self, send: bool) -> None:
        self.dismiss(send)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#confirm-send")
    def _send(self) -> None:
        self.dismiss(True)
