"""A one-line question (an event id for `e`, a time for the timeline's `t`): the answer is
read as it is submitted, and a mistake is said in the prompt, which stays open."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from pik_tui.safe import message, plain

T = TypeVar("T")


class Prompt(ModalScreen[T | None], Generic[T]):
    """Dismissed with ``read(answer)``, or ``None`` on esc; ``read`` raises ValueError
    with the reason an answer cannot be taken."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="prompt.close", tooltip="Answer nothing"),
    ]

    def __init__(self, question: str, placeholder: str, read: Callable[[str], T]) -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.read = read

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(plain(self.question))
            yield Input(placeholder=self.placeholder, id="prompt-answer")
            yield Static(classes="status", id="prompt-status")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            answer = self.read(event.value)
        except ValueError as exc:
            self.query_one("#prompt-status", Static).update(plain(message(str(exc)), "bold red"))
            return
        self.dismiss(answer)

    def action_close(self) -> None:
        self.dismiss(None)
