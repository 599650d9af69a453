"""Every message the TUI posts: worker results, and what one pane tells the others.

Workers run store calls in threads and post one of the ``*Loaded`` messages to the pane
that started them; each carries the request it answers so a pane can drop stale results.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from pik.domain.records import EntityRecord
from pik.domain.replay import Plan, ReplayRun
from pik.services.query import RatesReport, TimelinePage
from pik_tui.event_view import EventView
from pik_tui.heatmap import HeatRow, Span

# --- worker results ----------------------------------------------------------------------


@dataclass
class EntitiesLoaded(Message, bubble=False):
    prefix: str
    rows: list[EntityRecord]
    truncated: bool


@dataclass
class TimelineLoaded(Message, bubble=False):
    entity_id: str
    cursor: str | None
    page: TimelinePage


@dataclass
class EventLoaded(Message, bubble=False):
    event_id: bytes
    view: EventView | None
    """``None`` when the store has no such event."""


@dataclass
class CoverageLoaded(Message, bubble=False):
    request: tuple[object, ...]
    span: Span
    rows: list[HeatRow]


@dataclass
class RatesLoaded(Message, bubble=False):
    start_us: int
    end_us: int
    report: RatesReport


# --- the replay screen's worker results --------------------------------------------------


@dataclass
class DeskOpened(Message, bubble=False):
    """The replay ledger is open (the desk itself is handed over under the screen's lock)."""


@dataclass
class Planned(Message, bubble=False):
    plan: Plan
    who: str
    request: int
    """Which preview asked for it: only the latest one's plan is shown."""


@dataclass
class RunChanged(Message, bubble=False):
    """Where a run stands: just confirmed, part sent, read back, or ended."""

    run: ReplayRun


@dataclass
class Progressed(Message, bubble=False):
    sent: int
    total: int


@dataclass
class Refused(Message, bubble=False):
    """A replay action did not happen. ``ends_send``: it was the send's (its confirmation,
    or the sending of run ``replay_id`` when one was confirmed)."""

    text: str
    field: str | None = None
    ends_send: bool = False
    replay_id: str | None = None
    request: int | None = None
    """The preview it answers, if it is a preview's."""
    cancel: bool = False
    """It answers a cancel."""
    poll: bool = False
    """It is a failed reading of the run a stack sends."""


# --- between panes (they bubble up to the app) -------------------------------------------


@dataclass
class EntitySelected(Message):
    entity_id: str
    open: bool = False
    """The user chose it (Enter), rather than moved over it: go to its timeline."""


@dataclass
class EntitiesListed(Message):
    entity_ids: list[str]


@dataclass
class EventChosen(Message):
    event_id: bytes
    entity_id: str


@dataclass
class EventShown(Message):
    """The event pane shows an event of ``entity_id`` at ``event_time_us``."""

    event_id: bytes
    entity_id: str
    event_time_us: int


@dataclass
class PageRequested(Message):
    """The timeline table asks its pane for the next (newer) or previous (older) page."""

    forward: bool
