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

from pik import replay_views as views
from pik.domain.instants import format_instant
from pik.domain.replay import Plan, Selection
from pik.textsafe import inert


def send_question(plan: Plan, rate: int, who: str) -> Text:
    """What is asked before a plan is sent: how much, of what, to where, how fast, as whom."""
    selection = plan.selection
    question = Text()
    question.append(f"Send {plan.events:,} event(s)", style="bold")
    question.append(f" ({views.size(plan.bytes)}) of plan {inert(plan.plan_id, limit=64)}\n")
    question.append(_slice(selection) + "\nto ")
    question.append(inert(selection.target, limit=200), style="bold")
    question.append(f"\nat up to {rate:,} events/s ({views.duration(plan.events / rate)})?\n\n")
    question.append(
        f"Audited as {inert(who, limit=200)}. Every message carries the replay id, "
        "so consumers can tell a replay from the original.",
        style="dim",
    )
    return question


def _slice(selection: Selection) -> str:
    """The slice in one line: whose events, of what, when."""
    entities = selection.entity_ids
    whose = inert(entities[0], limit=60) + (
        f" and {len(entities) - 1:,} more" if len(entities) > 1 else ""
    )
    kinds = ", ".join(selection.sources + selection.event_types) or "every source and type"
    return (
        f"of {whose} ({inert(kinds, limit=80)}), event time "
        f"[{format_instant(selection.start_us)}, {format_instant(selection.end_us)})"
    )


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
