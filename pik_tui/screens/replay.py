"""`R`: replay a slice of the store. Choose it, preview it as a plan (the dry run: the exact
events, counted, measured and broken down; nothing is sent), then send it after one
explicit confirmation, watching its progress, with a way to cancel it.

Everything goes through the same :class:`ReplayControl` as `pik replay`, so plans, runs
and audit records are the ones the command line shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from rich.console import Group
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Footer, Input, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState

from pik import replay_views as views
from pik.domain import replay as model
from pik.domain.replay import Plan, ReplayRun
from pik.textsafe import inert
from pik_tui.backend import Backend, StoreUnavailable
from pik_tui.messages import DeskOpened, Planned, Progressed, Refused, RunChanged
from pik_tui.replay_form import (
    FIELDS,
    PLACEHOLDERS,
    Draft,
    FormError,
    form_field,
    read_rate,
    read_selection,
    worded,
)
from pik_tui.replaying import ReplayDesk, ReplayRefused, newer_reading, open_run_hint
from pik_tui.safe import clip, message, plain
from pik_tui.screens.confirm import ConfirmSend, send_question

POLL_SECONDS = 1.0
"""How often a run the stack sends is read back for its progress."""
POLL_ATTEMPTS = 3
"""Readings in a row that may fail before the screen stops following a run."""


class ReplayScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "leave",
            "Back",
            id="replay.back",
            tooltip="Back to browsing (a replay this process is sending must end first)",
        ),
        Binding(
            "f5",
            "preview",
            "Preview",
            id="replay.preview",
            tooltip="Plan the slice (also Enter in a field): what a send would send; sends nothing",
        ),
        Binding(
            "f6",
            "send",
            "Send…",
            id="replay.send",
            tooltip="Send the previewed plan, after one question",
        ),
        Binding(
            "f8",
            "cancel_run",
            "Cancel replay",
            id="replay.cancel",
            tooltip="Ask the replay being sent to stop before its next batch",
        ),
    ]

    def __init__(self, backend: Backend, draft: Draft, now_us: Callable[[], int]) -> None:
        super().__init__()
        self.backend = backend
        self.draft = draft
        self.now_us = now_us
        self.desk: ReplayDesk | None = None
        self.plan: Plan | None = None
        self.who = ""
        self.stale = False
        """The form changed after the plan on screen was made."""
        self._planned: dict[str, str] = {}
        """The form as it was when the latest preview was asked for."""
        self._asked = 0
        """How many previews were asked for: a late answer to an earlier one is dropped."""
        self._poll_timer: Timer | None = None
        self._poll_failures = 0
        self._cancelling = False
        self._handover = threading.Lock()
        self._opened: ReplayDesk | None = None
        self._left = False
        """The screen was left: a desk opened after that is closed at once."""
        self.run: ReplayRun | None = None
        self.sending = False
        """This process is sending ``run`` (a local store) or watching the stack send it."""

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(plain("Replay: choose a slice, preview it, then send it"), id="replay-title")
        values = {
            "entities": self.draft.entities,
            "start": self.draft.start,
            "end": self.draft.end,
            "sources": "",
            "types": "",
            "target": self.draft.target,
            "rate": self.draft.rate,
        }
        with Grid(id="replay-form"):
            for key, label in FIELDS.items():
                yield Label(label, classes="replay-label")
                yield Input(
                    values[key],
                    placeholder=PLACEHOLDERS.get(key, ""),
                    id=f"replay-{key}",
                    classes="replay-field",
                    compact=True,
                )
        # Compact, so that on a small terminal the plan below still has room.
        with Horizontal(id="replay-buttons"):
            yield Button("Preview (dry run)", id="replay-preview", variant="primary", compact=True)
            yield Button("Send…", id="replay-send", variant="warning", disabled=True, compact=True)
            yield Button(
                "Cancel replay", id="replay-cancel", variant="error", disabled=True, compact=True
            )
        yield Static(classes="status", id="replay-status")
        yield ProgressBar(total=None, show_eta=False, id="replay-progress")
        with VerticalScroll(id="replay-plan-scroll"):
            yield Static(id="replay-plan")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#replay-progress").display = False
        self.field("entities" if not self.draft.entities else "target").focus()
        self.say("opening the replay ledger…")
        self._open()

    def field(self, key: str) -> Input:
        return self.query_one(f"#replay-{key}", Input)

    def values(self) -> dict[str, str]:
        return {key: self.field(key).value for key in FIELDS}

    def say(self, text: str, style: str = "") -> None:
        # Whatever a status line quotes (ids and details a stack's API returned, the
        # targets and names typed in) is shown inert.
        self.query_one("#replay-status", Static).update(plain(inert(text, limit=600), style))

    def _buttons(self) -> None:
        ready = self.desk is not None and not self.sending
        self.query_one("#replay-preview", Button).disabled = not ready
        plan = self.plan
        sendable = ready and plan is not None and plan.events > 0 and not self.stale
        self.query_one("#replay-send", Button).disabled = not sendable
        run = self.run
        cancellable = (
            run is not None
            and run.status == model.RUNNING
            and not run.cancel_requested
            and not self._cancelling
        )
        self.query_one("#replay-cancel", Button).disabled = not cancellable
        for key in FIELDS:
            self.field(key).disabled = self.sending
        self.refresh_bindings()

    # --- opening and closing the ledger ---------------------------------------------------

    @work(thread=True, exit_on_error=False, group="replay-open")
    def _open(self) -> None:
        desk = self.backend.replays()
        # Handed over under the lock: a screen left meanwhile never sees the message, so
        # it is the one that closes what it was given, or this thread when it came after.
        with self._handover:
            if self._left:
                desk.close()
                return
            self._opened = desk
        self.post_message(DeskOpened())

    def on_desk_opened(self) -> None:
        with self._handover:
            desk = self._opened
        if desk is None:
            return
        self.desk = desk
        target = self.field("target")
        target.placeholder = desk.targets
        if not target.value:
            target.value = desk.target  # the stack's own queue; locally none
        hint = f"targets here: {desk.targets}"
        self.say(f"{hint}. Enter or F5 previews the slice; nothing is sent without a yes.")
        self._buttons()

    def on_unmount(self) -> None:
        self._stop_polling()
        with self._handover:
            self._left = True
            desk, self._opened, self.desk = self._opened, None, None
        if desk is not None:
            desk.close()  # once the calls in flight end

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        event.stop()
        error = event.worker.error
        text = (
            str(error)
            if isinstance(error, (StoreUnavailable, ReplayRefused))
            else f"{type(error).__name__}: {error}"
        )
        # Whatever the failed worker was doing is over: the screen must stay usable.
        group = event.worker.group
        if group in ("replay-send", "replay-poll"):
            self.sending = False
            self._stop_polling()
        elif group == "replay-cancel":
            self._cancelling = False
        self.say(f"failed: {message(text)}", "bold red")
        self.notify(message(text), title="replay", severity="error", markup=False)
        self._buttons()

    # --- preview --------------------------------------------------------------------------

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_preview()

    @on(Button.Pressed, "#replay-preview")
    def action_preview(self) -> None:
        if self.desk is None or self.sending:
            return
        try:
            selection = read_selection(self.values(), self.now_us())
        except FormError as exc:
            self._wrong(exc.field, str(exc))
            return
        self.say("planning: reading the slice's events (nothing is sent)…")
        self._planned = self.values()
        self._asked += 1
        self._plan(self.desk, selection, self._asked)

    def _wrong(self, key: str, text: str) -> None:
        self.say(text, "bold red")
        self.field(key).focus()

    @work(thread=True, exclusive=True, exit_on_error=False, group="replay-plan")
    def _plan(self, desk: ReplayDesk, selection: model.Selection, request: int) -> None:
        try:
            plan = desk.call(lambda control: control.plan(selection))
            who = desk.call(lambda control: control.who)
        except ReplayRefused as exc:
            self.post_message(Refused(str(exc), exc.field, request=request))
            return
        self.post_message(Planned(plan, who, request))

    def _slice_changed(self) -> bool:
        """Whether the form now describes another slice than the latest preview's (the
        rate is chosen at confirmation, so it is not part of the slice)."""
        now = self.values()
        return any(now[key] != self._planned.get(key) for key in FIELDS if key != "rate")

    def on_planned(self, message: Planned) -> None:
        if message.request != self._asked:
            return  # an earlier preview, answered after a later one was asked for
        self.plan, self.who = message.plan, message.who
        self.stale = self._slice_changed()
        plan = message.plan
        self.query_one("#replay-plan", Static).update(Group(*views.plan_views(plan)))
        if self.stale:
            self.say("the form changed while planning: preview again (Enter or F5)", "yellow")
        elif plan.events:
            self.say(
                f"plan {plan.plan_id}: {plan.events:,} event(s), {views.size(plan.bytes)}; "
                "nothing sent. Check it, then Send… (F6).",
                "bold",
            )
        else:
            self.say("the selection holds no events: there is nothing to replay", "yellow")
        self._buttons()

    def on_refused(self, refused: Refused) -> None:
        if refused.request is not None and refused.request != self._asked:
            return  # an earlier preview's refusal
        if refused.cancel:
            self._cancelling = False
            if self.run is not None and self.run.status != model.RUNNING:
                return  # it ended before the cancel arrived: what is shown says how
        if refused.poll:
            self._poll_failed(refused.text)
            return
        text = worded(message(refused.text, limit=400))
        if refused.ends_send:
            text = self._send_stopped(text, refused.replay_id)
        self.say(text, "bold red")
        if refused.field is not None:
            self.field(form_field(refused.field)).focus()
        elif refused.ends_send:
            self.field("entities").focus()
        self._buttons()

    def _send_stopped(self, text: str, replay_id: str | None) -> str:
        """A send that ended without its run ending: what to do next."""
        self.sending = False
        # The plan shown cannot be sent again as it is (refused, or its run is open).
        self.plan = None
        if replay_id is None:
            self.query_one("#replay-progress").display = False
            return text + ". Preview again to send."
        if self.desk is not None and self.desk.sends_here:
            self.run = None  # open, but nothing sends it now: nothing here to cancel
        self._stop_polling()
        return text + ". " + open_run_hint(self.desk, replay_id)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        # The rate is chosen at confirmation; every other field changes the slice.
        if self.plan is None or self.stale or event.input.id == "replay-rate":
            return
        key = (event.input.id or "").removeprefix("replay-")
        if event.value == self._planned.get(key):
            return
        self.stale = True
        self.say("the form changed since the preview: preview again (Enter or F5)", "yellow")
        self._buttons()

    # --- send -----------------------------------------------------------------------------

    @on(Button.Pressed, "#replay-send")
    def action_send(self) -> None:
        plan, desk = self.plan, self.desk
        if plan is None or desk is None or self.stale or self.sending or not plan.events:
            return
        try:
            rate = read_rate(self.field("rate").value)
        except FormError as exc:
            self._wrong(exc.field, str(exc))
            return
        question = send_question(plan, rate, self.who)

        def answered(send: bool | None) -> None:
            if send:
                self._start(desk, plan, rate)
            else:
                self.say("not confirmed: nothing was sent")

        self.app.push_screen(ConfirmSend(question, f"Send {plan.events:,}"), answered)

    def _start(self, desk: ReplayDesk, plan: Plan, rate: int) -> None:
        self.sending = True
        progress = self.query_one("#replay-progress", ProgressBar)
        progress.update(total=plan.events, progress=0)
        progress.display = True
        self.say("confirming…")
        self._buttons()
        self._send(desk, plan.plan_id, rate)

    @work(thread=True, exclusive=True, exit_on_error=False, group="replay-send")
    def _send(self, desk: ReplayDesk, plan_id: str, rate: int) -> None:
        try:
            run = desk.call(lambda control: control.confirm(plan_id, rate))
        except ReplayRefused as exc:
            self.post_message(Refused(str(exc), exc.field, ends_send=True))
            return
        self.post_message(RunChanged(run))
        if not desk.sends_here:
            return  # the stack's function sends it; the screen follows it by polling

        def advance(sent: int, total: int) -> None:
            self.post_message(Progressed(sent, total))

        try:
            ended = desk.call(lambda control: control.start(run, advance))
        except ReplayRefused as exc:
            self.post_message(Refused(str(exc), ends_send=True, replay_id=run.replay_id))
            return
        self.post_message(RunChanged(ended))

    def on_progressed(self, message: Progressed) -> None:
        self.query_one("#replay-progress", ProgressBar).update(
            total=message.total, progress=message.sent
        )
        if self.run is not None and self.run.status == model.RUNNING:
            self.run = replace(self.run, sent=message.sent)
            self.say(
                f"replay {clip(self.run.replay_id, 40)}: sent {message.sent:,} of {message.total:,}"
                + (" (cancel requested)" if self.run.cancel_requested else "")
            )

    def on_run_changed(self, message: RunChanged) -> None:
        run = newer_reading(self.run, message.run)
        if run is None:
            return
        self._cancelling = False
        self._poll_failures = 0
        self.run = run
        self.query_one("#replay-progress", ProgressBar).update(total=run.total, progress=run.sent)
        if run.status == model.RUNNING:
            self.say(
                f"replay {clip(run.replay_id, 40)} running: sent {run.sent:,} of {run.total:,} to "
                f"{clip(run.target, 60)}" + (" (cancel requested)" if run.cancel_requested else "")
            )
            if self.sending and self.desk and not self.desk.sends_here:
                self._poll_soon()
        else:
            self.sending = False
            self._stop_polling()
            self._ended(run)
            self._buttons()
            self.field("entities").focus()
            return
        self._buttons()

    def _ended(self, run: ReplayRun) -> None:
        self.query_one("#replay-plan", Static).update(Group(views.run_table(run)))
        words = f"replay {clip(run.replay_id, 40)} {run.status}: sent {run.sent:,} of {run.total:,}"
        if run.detail:
            words += f" ({clip(run.detail, 200)})"
        style = "bold green" if run.status == model.COMPLETED else "bold red"
        self.say(words, style)
        # A plan runs once: another send needs a fresh preview.
        self.plan = None

    def _poll_failed(self, text: str) -> None:
        """A reading of the run the stack sends failed: try again a few times (a network
        blip), then stop following it and say how to."""
        self._poll_failures += 1
        if self._poll_failures < POLL_ATTEMPTS and self.run is not None:
            self.say(f"{message(text)}; trying again", "yellow")
            self._poll_soon()
            return
        replay_id = self.run.replay_id if self.run else None
        self.say(self._send_stopped(message(text, limit=400), replay_id), "bold red")
        self._buttons()

    def _poll_soon(self) -> None:
        """Read the run the stack sends again in a moment; one reading at a time."""
        if self._poll_timer is None:
            self._poll_timer = self.set_timer(POLL_SECONDS, self._poll)

    def _stop_polling(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None

    def _poll(self) -> None:
        self._poll_timer = None
        if self.run is None or self.desk is None or not self.is_attached:
            return
        self._read_run(self.desk, self.run.replay_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="replay-poll")
    def _read_run(self, desk: ReplayDesk, replay_id: str) -> None:
        try:
            run = desk.call(lambda control: control.run(replay_id))
        except ReplayRefused as exc:
            self.post_message(Refused(f"reading replay {replay_id}: {exc}", poll=True))
            return
        if run is not None:
            self.post_message(RunChanged(run))

    # --- cancel and leave -----------------------------------------------------------------

    @on(Button.Pressed, "#replay-cancel")
    def action_cancel_run(self) -> None:
        run, desk = self.run, self.desk
        if run is None or desk is None or run.status != model.RUNNING:
            return
        if run.cancel_requested or self._cancelling:
            self.notify("a cancel is already asked for", timeout=2)
            return
        self._cancelling = True
        self.say(f"asking replay {run.replay_id} to stop…")
        self._buttons()
        self._cancel(desk, run.replay_id)

    @work(thread=True, exit_on_error=False, group="replay-cancel")
    def _cancel(self, desk: ReplayDesk, replay_id: str) -> None:
        try:
            run = desk.call(lambda control: control.cancel(replay_id))
        except ReplayRefused as exc:
            self.post_message(Refused(str(exc), cancel=True))
            return
        self.post_message(RunChanged(run))

    @property
    def sending_here(self) -> bool:
        """This process is sending a run: leaving would stop it half way."""
        return self.sending and self.desk is not None and self.desk.sends_here

    def action_leave(self) -> None:
        if self.sending_here:
            running = f"replay {self.run.replay_id}" if self.run else "a replay"
            self.notify(
                f"{running} is being sent from here: wait for it, or cancel it (F8) first",
                title="replay",
                severity="warning",
                markup=False,
            )
            return
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The footer shows what can be done now (greyed: what cannot, for the moment).
        if action == "send":
            return not self.query_one("#replay-send", Button).disabled
        if action == "cancel_run":
            return not self.query_one("#replay-cancel", Button).disabled
        if action == "preview":
            return None if self.query_one("#replay-preview", Button).disabled else True
        return True
