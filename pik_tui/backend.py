"""The TUI's one door to a store.

Panes talk to a :class:`Backend`; only this module (and ``aws_backend`` for a deployed
stack) knows which engine is behind it. Every method blocks, so panes call them from
worker threads, never from the UI thread. The local engine shares one SQLite connection
between threads, so its calls are serialised.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from pik.demo import build_demo
from pik.domain.instants import END_OF_TIME_US
from pik.domain.records import EntityRecord
from pik.engines.local import LocalEngine
from pik.engines.local.index import IndexCorruptError
from pik.engines.local.layout import StoreError
from pik.engines.local.replay import LocalReplayBackend
from pik.paths import default_store, demo_store
from pik.ports import EventStore
from pik.services import query
from pik.services.query import CoverageReport, EventDetail, RatesReport, TimelinePage
from pik.services.replay_control import LedgerControl
from pik.storage_errors import StoreUnavailableError
from pik_tui.replaying import LOCAL_TARGETS, ReplayDesk

T = TypeVar("T")

"""A cursor that pages backward from the end of time: the newest page of a timeline."""
MAX_PAGE = query.MAX_PAGE


class StoreUnavailable(Exception):
    """The store cannot be opened or read; the message says what to do next."""


class Backend(Protocol):
    """What the panes need from a store. Every method may block."""

    label: str
    """How the store is named in the header."""
    command: str
    """The `pik` command line that reads the same store, for hints to name."""
    late_after_us: int

    def entities(self, prefix: str, limit: int) -> list[EntityRecord]: ...

    def timeline(self, entity_id: str, cursor: str | None, limit: int) -> TimelinePage:
        """A page of events; ``cursor=None`` gives the newest page."""
        ...

    def event(self, event_id: bytes) -> EventDetail | None: ...

    def coverage(
        self, entity_ids: Sequence[str], start_us: int, end_us: int, granularity: str
    ) -> CoverageReport: ...

    def rates(self, start_us: int, end_us: int) -> RatesReport: ...

    def replays(self) -> ReplayDesk:
        """A new control over this store's replays, for one replay screen; the caller
        closes it. Raises :class:`StoreUnavailable` with what to do."""
        ...

    def close(self) -> None: ...


class ServiceBackend(ABC):
    """A :class:`Backend` made of the query services over an ``EventStore``: subclasses
    say how a call reaches their store (``_call``), so what the panes get is the same on
    every engine."""

    label: str
    late_after_us: int

    @abstractmethod
    def _call(self, read: Callable[[EventStore], T]) -> T:
        """Run ``read`` on the store; failures become :class:`StoreUnavailable`."""

    @abstractmethod
    def close(self) -> None: ...

    def entities(self, prefix: str, limit: int) -> list[EntityRecord]:
        return self._call(lambda e: query.list_entities(e, prefix, None, limit))

    def timeline(self, entity_id: str, cursor: str | None, limit: int) -> TimelinePage:
        return self._call(
            lambda e: query.timeline_page(
                e, entity_id, 0, END_OF_TIME_US, limit, cursor, latest=cursor is None
            )
        )

    def event(self, event_id: bytes) -> EventDetail | None:
        return self._call(lambda e: query.event_detail(e, event_id))

    def coverage(
        self, entity_ids: Sequence[str], start_us: int, end_us: int, granularity: str
    ) -> CoverageReport:
        ids = list(entity_ids)
        if not ids:
            return CoverageReport(granularity, [], [])
        return self._call(lambda e: query.coverage_report(e, start_us, end_us, granularity, ids))

    def rates(self, start_us: int, end_us: int) -> RatesReport:
        return self._call(lambda e: query.rates_report(e, start_us, end_us))


class LocalBackend(ServiceBackend):
    """A :class:`Backend` over a store on this machine's disk."""

    def __init__(self, engine: LocalEngine, label: str, command: str = "pik") -> None:
        self._engine: LocalEngine | None = engine
        self._lock = threading.Lock()
        self.label = label
        self.command = command
        self.late_after_us = engine.limits.late_after_us
        self._root = engine.layout.root

    @classmethod
    def open(cls, path: Path, label: str | None = None) -> LocalBackend:
        """Open an existing store; raises :class:`StoreUnavailable` with what to do."""
        try:
            engine = LocalEngine(path, create=False, read_only=True)
        except (StoreError, IndexCorruptError) as exc:
            raise StoreUnavailable(str(exc)) from None
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"the store at {path} cannot be opened: {exc}") from None
        command = f"pik --store {shlex.quote(str(path))}"
        return cls(engine, str(path) if label is None else label, command)

    def _call(self, read: Callable[[LocalEngine], T]) -> T:
        with self._lock:
            if self._engine is None:
                raise StoreUnavailable("the store is closed")
            try:
                return read(self._engine)
            except IndexCorruptError as exc:
                raise StoreUnavailable(str(exc)) from None
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(
                    f"the index cannot be read ({exc}); rebuild it with `pik reindex`"
                ) from None

    def replays(self) -> ReplayDesk:
        """The ledger beside the store, on an engine of its own (the replay screen's
        sending must not wait on the panes' reads, nor they on it)."""
        try:
            local = LocalReplayBackend.open(self._root)
        except (StoreError, IndexCorruptError, StoreUnavailableError) as exc:
            raise StoreUnavailable(str(exc)) from None
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"the store at {self._root} cannot be opened: {exc}") from None
        return ReplayDesk(
            LedgerControl(local),
            target="",
            targets=LOCAL_TARGETS,
            command=f"{self.command} replay",
            sends_here=True,
            close=local.close,
        )

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


def default_store_path() -> Path:
    """``$PIK_STORE``, else the same default as the `pik` command line."""
    configured = os.environ.get("PIK_STORE")
    return Path(configured) if configured else default_store()


def default_demo_path() -> Path:
    return demo_store()


def prepare_demo(path: Path) -> bool:
    """Build the demo store at ``path`` unless it exists; returns whether it was built."""
    try:
        return build_demo(path)
    except (StoreError, IndexCorruptError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from None
