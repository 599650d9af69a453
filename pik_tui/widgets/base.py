"""What every pane shares: a backend, a status line, and failures shown instead of crashes."""

from __future__ import annotations

from typing import ClassVar

from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from pik_tui.backend import Backend, StoreUnavailable
from pik_tui.safe import message, plain


class Pane(Vertical):
    """A pane that reads the store in worker threads.

    A worker that raises ends in ``WorkerState.ERROR`` (workers are started with
    ``exit_on_error=False``); the pane turns that into a notification and a status line.
    """

    FOCUS: ClassVar[str] = ""
    """Selector of the widget that takes focus when the pane's tab is opened."""

    def __init__(self, backend: Backend, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.backend = backend

    def focus_main(self) -> None:
        if self.FOCUS:
            self.query_one(self.FOCUS).focus()

    def status_line(self) -> Static:
        return self.query_one(".status", Static)

    def set_status(self, text: str, style: str = "") -> None:
        self.status_line().update(plain(text, style))

    def shown(self) -> bool:
        """Whether the pane is on the active tab of the screen the user is looking at."""
        if self.app.screen is not self.screen:
            return False
        return all(node.display for node in self.ancestors_with_self if isinstance(node, Widget))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, StoreUnavailable):
            text = message(str(error))
        else:
            text = message(f"{type(error).__name__}: {error}")
        self.set_status(f"failed: {text}", "bold red")
        self.notify(text, title="store error", severity="error", markup=False)
        self.load_failed(str(event.worker.group))

    def load_failed(self, group: str) -> None:
        """Called after a worker of ``group`` failed; panes reset their in-flight state."""
