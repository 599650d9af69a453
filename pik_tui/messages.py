"""Every message the TUI posts: worker results, and what one pane tells the others.

Workers run store calls in threads and post one of the ``*Loaded`` messages to the pane
that started them; each carries the request it answers so a pane can drop stale results.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from pik.domain.records import EntityRecord
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
    """The event pane shows an event of ``entity_id``."""

    event_id: bytes
    entity_id: str


@dataclass
class PageRequested(Message):
    """The timeline table asks its pane for the next (newer) or previous (older) page."""

    forward: bool
