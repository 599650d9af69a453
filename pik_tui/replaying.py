"""The replay screen's door to a store's replays: the same :class:`ReplayControl` the
`pik replay` commands use, on a local store (the ledger beside it, runs sent by this
process) or on a stack (its IAM-authorised API, runs sent by the stack's function).

Every failure a person can act on comes out as :class:`ReplayRefused` with the message
to show; anything else is a bug and is raised as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from pik.domain.replay import RUNNING, ReplayError, ReplayRun
from pik.services.replay_control import ReplayControl
from pik.storage_errors import StoreFullError, StoreUnavailableError

T = TypeVar("T")

LOCAL_TARGETS = "file:PATH (NDJSON appended to a file) or processor:hour / processor:day"
STACK_TARGETS = "queue (the stack's ReplayQueue) or sqs:<queue ARN> of a queue the stack lists"


class ReplayRefused(Exception):
    """A replay action did not happen; the message says why and what to do, and
    ``field`` names the selection's field at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReplayDesk:
    """One replay screen's control, with what the screen should say about targets.

    ``sends_here``: a confirmed run is sent by this process (a local store), so the
    screen must stay while it is sent; on a stack the stack's function sends it.

    Calls run in worker threads; :meth:`close` may come from the UI thread while one is
    in flight, so the control is closed by whichever of them ends last, and no call
    starts after it.
    """

    def __init__(
        self,
        control: ReplayControl,
        *,
        target: str,
        targets: str,
        command: str,
        sends_here: bool,
        close: Callable[[], None],
        explain: Callable[[BaseException], str | None] | None = None,
    ) -> None:
        self.control = control
        self.target = target
        self.targets = targets
        self.command = command
        self.sends_here = sends_here
        self._close = close
        self._explain = explain
        self._lock = threading.Lock()
        self._calls = 0
        self._closing = False

    def call(self, action: Callable[[ReplayControl], T]) -> T:
        """Run ``action`` on the control; refusals and outages become ReplayRefused."""
        with self._lock:
            if self._closing:
                raise ReplayRefused("the replay screen was closed; open it again with R")
            self._calls += 1
        try:
            return self._call(action)
        finally:
            with self._lock:
                self._calls -= 1
                last = self._closing and self._calls == 0
            if last:
                self._close()

    def _call(self, action: Callable[[ReplayControl], T]) -> T:
        try:
            return action(self.control)
        except ReplayError as exc:
            raise ReplayRefused(f"{exc} [{exc.code}]", exc.field) from None
        except StoreFullError as exc:
            raise ReplayRefused(f"{exc} [storage_full]") from None
        except StoreUnavailableError as exc:
            raise ReplayRefused(f"{exc} [{exc.code}]") from None
        except OSError as exc:
            # The target's file, or one of the store's own (its locks): the error names it.
            raise ReplayRefused(f"a file could not be read or written ({exc})") from None
        except Exception as exc:
            text = self._explain(exc) if self._explain else None
            if text is None:
                raise
            raise ReplayRefused(text) from None

    def close(self) -> None:
        """Close the control now, or when the call in flight ends."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            idle = self._calls == 0
        if idle:
            self._close()


def newer_reading(shown: ReplayRun | None, reading: ReplayRun) -> ReplayRun | None:
    """``reading`` of a run if it moves the one on screen forward, else ``None``: a poll
    and a cancel may be answered out of order, and an ended run stays ended."""
    if shown is None or shown.replay_id != reading.replay_id:
        return reading
    if shown.status != RUNNING or reading.updated_us < shown.updated_us:
        return None
    if shown.cancel_requested and not reading.cancel_requested:
        reading = replace(reading, cancel_requested=True)  # asked once stays asked
    return replace(reading, sent=max(reading.sent, shown.sent))


def open_run_hint(desk: ReplayDesk | None, replay_id: str) -> str:
    """What to do about a run left open: resume or cancel it where this process sent it
    (its progress is kept, as after Ctrl-C in `pik replay run`); else follow it."""
    command = desk.command if desk is not None else "pik replay"
    if desk is not None and desk.sends_here:
        return (
            f"Replay {replay_id} is open with its progress kept: once fixed, go on with: "
            f"{command} resume {replay_id}, or stop it: {command} cancel {replay_id}"
        )
    return f"Follow it with: {command} status {replay_id}"
