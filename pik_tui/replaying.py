"""The replay screen's door to a store's replays: the same :class:`ReplayControl` the
`pik replay` commands use, on a local store (the ledger beside it, runs sent by this
process) or on a stack (its IAM-authorised API, runs sent by the stack's function).

Every failure a person can act on comes out as :class:`ReplayRefused` with the message
to show; anything else is a bug and is raised as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pik.domain.replay import ReplayError
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

    def call(self, action: Callable[[ReplayControl], T]) -> T:
        """Run ``action`` on the control; refusals and outages become ReplayRefused."""
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
        self._close()
