"""The local engine: durable, group-committed ingest into segments + SQLite, and its reads."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pik import frames
from pik.domain.arrivals import CONFLICT, Arrival, classify
from pik.domain.envelope import event_id_hex
from pik.domain.instants import US_PER_HOUR, now_us
from pik.domain.limits import DEFAULT_LIMITS, Limits
from pik.domain.outcome import Outcome, Status
from pik.domain.records import (
    AttemptSummary,
    EntityRecord,
    EventRecord,
    RateRecord,
    VerifyReport,
    WindowCount,
)
from pik.domain.tally import GRANULARITIES
from pik.engines.local import recovery, segments
from pik.engines.local.batch import IndexBatch
from pik.engines.local.index import IndexCorruptError, SqliteIndex
from pik.engines.local.layout import Layout, StoreError
from pik.engines.local.prepare import (
    PreparedBatch,
    combine,
    new_events_only,
    prepare,
    rejection_frame,
)
from pik.engines.local.rebuild import is_blank
from pik.engines.local.rows import SegmentRow, placed
from pik.faults import crash_point
from pik.ports import Progress
from pik.storage_errors import StoreUnavailableError

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SegmentPolicy:
    max_bytes: int = 64 * 1024 * 1024
    """A segment is sealed once it holds this much."""
    max_age_us: int = US_PER_HOUR
    """...or once it has been open this long (checked when the next batch arrives)."""


class _Ticket:
    __slots__ = ("arrivals", "done", "error", "outcomes", "prepared")

    def __init__(self, arrivals: Sequence[Arrival], prepared: PreparedBatch) -> None:
        self.arrivals = arrivals
        self.prepared = prepared
        self.outcomes: list[Outcome] = []
        self.error: BaseException | None = None
        self.done = False


class LocalEngine:
    """An :class:`~pik.ports.EventStore` on one machine's disk."""

    def __init__(
        self,
        root: Path,
        *,
        create: bool = True,
        read_only: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        policy: SegmentPolicy = SegmentPolicy(),
        clock: Callable[[], int] = now_us,
        on_lock_wait: Callable[[], None] | None = None,
    ) -> None:
        """Open the store at ``root``.

        ``create`` makes a new store when there is none; ``read_only`` opens an existing one
        without writing anything (for queries, and read-only media); ``clock`` is the
        ingest clock, in microseconds since the epoch; ``on_lock_wait`` is told when a
        write has to wait for another process (a reindex, say) to release the store.
        """
        self.layout = Layout(Path(root))
        self.limits = limits
        self.policy = policy
        self.read_only = read_only
        self._clock = clock
        self._on_lock_wait = on_lock_wait
        self.store_id = self.layout.open_or_create(create and not read_only)
        if not self.layout.index.exists() and self.layout.segment_ids():
            raise IndexCorruptError(
                f"the index of {self.layout.root} is missing; rebuild it from raw with "
                f"`pik --store {self.layout.root} reindex`"
            )
        if read_only:
            self._index = SqliteIndex(self.layout.index, self.store_id, False, read_only=True)
        elif self.layout.index.exists():
            try:
                self._index = SqliteIndex(self.layout.index, self.store_id, create=False)
            except IndexCorruptError:
                # Perhaps another process is creating it this moment: look again once it
                # is done (it holds the write lock while it does).
                with self.layout.write_lock(on_lock_wait):
                    self._index = SqliteIndex(
                        self.layout.index, self.store_id, create=is_blank(self.layout.index)
                    )
        else:
            with self.layout.write_lock(on_lock_wait):  # one process creates the schema
                self._index = SqliteIndex(self.layout.index, self.store_id, create=True)
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        # A power cut may have taken the index's last commits (synchronous=NORMAL) or a
        # crash its last batch: re-derive them from the fsync'd raw now, not at the next
        # write, so nothing acknowledged is missing from answers in between.
        try:
            self.reconcile()
        except BaseException:
            self._index.close()
            raise
        self._hold = self.layout.hold_open()

    def close(self) -> None:
        self._index.close()
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None

    # --- ingest --------------------------------------------------------------------------

    def commit(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        """Store and index a batch; concurrent callers in this process share one fsync."""
        if self.read_only:
            raise StoreError("this store was opened read-only; nothing can be ingested")
        if not arrivals:
            return []
        self.limits.check_batch(len(arrivals))
        # Built outside every lock, so it overlaps another batch's commit.
        ticket = _Ticket(arrivals, prepare(arrivals, self._clock(), self.limits.late_after_us))
        with self._queue_lock:
            self._queue.append(ticket)
        with self._commit_lock:
            if not ticket.done:
                with self._queue_lock:
                    tickets, self._queue = self._queue, []
                self._commit_group(tickets)
        if ticket.error is not None:
            raise ticket.error
        return ticket.outcomes

    def _commit_group(self, tickets: list[_Ticket]) -> None:
        try:
            with self.layout.write_lock(self._on_lock_wait):
                outcomes = self._commit_prepared(combine([t.prepared for t in tickets]))
        except BaseException as exc:
            for ticket in tickets:
                ticket.error, ticket.done = exc, True
            return
        start = 0
        for ticket in tickets:
            ticket.outcomes = outcomes[start : start + len(ticket.arrivals)]
            start += len(ticket.arrivals)
            ticket.done = True

    def _commit_prepared(self, prepared: PreparedBatch) -> list[Outcome]:
        ingest_us = prepared.ingest_us
        segment_id, end = self._writable_segment(ingest_us)
        events = [a.event for a in prepared.arrivals if a.event is not None]
        known = self._index.known([e.event_id for e in events])
        if not new_events_only(events, known):
            return self._commit_locked(prepared.arrivals, ingest_us, segment_id, end, known)
        index = prepared.index
        index.segment_id = segment_id
        index.rows = [placed(row, segment_id, end) for row in index.rows]
        buffer = prepared.buffer
        buffer += frames.batch_end_frame(ingest_us)
        self._write(segment_id, end, bytes(buffer), index, ingest_us)
        return prepared.outcomes

    def _write(
        self, segment_id: int, end: int, data: bytes, index: IndexBatch, ingest_us: int
    ) -> None:
        """Raw first, then the index, then (by returning) the acknowledgement."""
        crash_point("before_append")
        new_end = end + len(data)
        try:
            segments.append(self.layout.segment(segment_id), data, end)
            crash_point("after_raw_fsync")
            self._index.apply(index.rows, index.attempts, index.tally, segment_id, new_end)
        except Exception as exc:
            if not self._take_back(segment_id, end):
                raise StoreUnavailableError(
                    f"{exc}; the batch's bytes could not be taken back, so its events may "
                    "be stored: send it again to settle which (a stored event answers "
                    "duplicate)",
                    retry_after_s=30,
                ) from exc
            raise
        crash_point("after_index_commit")
        if new_end >= self.policy.max_bytes:
            # The batch is committed: a failure to seal now must not report it as failed.
            # The next write finds the segment full and seals it then.
            try:
                self._seal(segment_id, new_end, 0, ingest_us)
            except (OSError, sqlite3.Error, StoreUnavailableError):
                _log.warning("segment %08d full but not sealed yet", segment_id, exc_info=True)

    def _take_back(self, segment_id: int, end: int) -> bool:
        """Cut a failed write's bytes off its segment, so the error it answers holds: left,
        the next write's recovery would index events their sender was told failed. Only
        while the index still ends the segment at ``end``; whether it was cut."""
        path = self.layout.segment(segment_id)
        try:
            if segments.size(path) == end:
                return True  # nothing reached the file
            ends = {row.segment_id: row.committed_end for row in self._index.segments()}
            if ends.get(segment_id) != end:
                return False
            segments.take_back(path, end)
        except (OSError, sqlite3.Error, StoreUnavailableError):
            _log.warning("the bytes of a failed write stay in segment %08d", segment_id)
            return False
        return True

    def _commit_locked(
        self,
        arrivals: Sequence[Arrival],
        ingest_us: int,
        segment_id: int,
        end: int,
        known: dict[bytes, bytes],
    ) -> list[Outcome]:
        """The full path: some events are duplicates or conflicts of stored ones."""
        classified = classify(arrivals, known)
        status: dict[int, str] = {}
        for name in ("new", "duplicates", "conflicts"):
            status.update(dict.fromkeys(getattr(classified, name), name))

        batch = IndexBatch(segment_id, self.limits.late_after_us)
        buffer = bytearray()
        outcomes: list[Outcome] = []
        for position, arrival in enumerate(arrivals):
            event = arrival.event
            if event is None:
                assert arrival.rejection is not None
                rejection = arrival.rejection
                buffer += rejection_frame(arrival, ingest_us)
                batch.rejection(arrival.source, rejection.code, ingest_us)
                outcomes.append(Outcome(Status.REJECTED, rejection=rejection))
                continue
            kind = status[position]
            lag_ms = (ingest_us - event.event_time_us) // 1000
            if kind == "new":
                frame, raw_at = frames.event_frame(ingest_us, arrival.origin, event.raw)
                batch.event(event, arrival.origin, ingest_us, end + len(buffer) + raw_at)
                buffer += frame
                outcomes.append(Outcome(Status.ACCEPTED, event.event_id, lag_ms))
                continue
            record = {
                "event_id": event_id_hex(event.event_id),
                "source": event.source,
                "origin": arrival.origin,
            }
            if kind == "duplicates":
                buffer += frames.record_frame(frames.DUPLICATE, ingest_us, record)
                batch.duplicate(event.event_id, event.source, arrival.origin, ingest_us)
                outcomes.append(Outcome(Status.DUPLICATE, event.event_id, lag_ms))
            else:
                buffer += frames.record_frame(frames.CONFLICT, ingest_us, record)
                batch.conflict(event.event_id, event.source, arrival.origin, ingest_us)
                outcomes.append(Outcome(Status.REJECTED, event.event_id, lag_ms, CONFLICT))

        buffer += frames.batch_end_frame(ingest_us)
        self._write(segment_id, end, bytes(buffer), batch, ingest_us)
        return outcomes

    # --- segments and recovery (under the write lock) ------------------------------------

    def _writable_segment(self, now: int) -> tuple[int, int]:
        """The active segment and its end, after finishing anything a crash left behind."""
        active = self._recover(now)
        if active is not None:
            return active
        known = [r.segment_id for r in self._index.segments()]
        next_id = max(known + self.layout.segment_ids() + [0]) + 1
        end = segments.create_segment(self.layout, next_id)
        self._index.add_segment(next_id, now, end)
        return next_id, end

    def _recover(self, now: int) -> tuple[int, int] | None:
        """Index what a crash left unindexed, seal what must not grow; the active segment."""
        rows = self._adopt_unknown_files(now)
        active: SegmentRow | None = None
        for row in rows:
            if row.sealed_us is not None:
                continue
            if row.committed_end < len(frames.SEGMENT_MAGIC):
                # Open without its magic (an older rebuild of an empty file): no frame may
                # be written into it, or it would never be read back.
                self._seal_foreign(row.segment_id, now)
                continue
            end = self._recover_tail(row, now)
            if end is None or row is not rows[-1]:
                if end is not None:
                    self._seal(row.segment_id, end, 0, now)
                continue
            too_big = end >= self.policy.max_bytes
            too_old = now - row.created_us >= self.policy.max_age_us
            if too_big or (too_old and end > len(frames.SEGMENT_MAGIC)):
                self._seal(row.segment_id, end, 0, now)
                continue
            active = SegmentRow(row.segment_id, row.created_us, end, None, None, 0)
        return None if active is None else (active.segment_id, active.committed_end)

    def _adopt_unknown_files(self, now: int) -> list[SegmentRow]:
        rows = self._index.segments()
        last = rows[-1].segment_id if rows else 0
        for segment_id in self.layout.segment_ids():
            if segment_id <= last:
                continue
            # A crash between creating a segment file and recording it leaves a file the
            # index does not know: adopt it, so whatever it holds is recovered.
            path = self.layout.segment(segment_id)
            head = segments.read_range(path, 0, len(frames.SEGMENT_MAGIC))
            if head == frames.SEGMENT_MAGIC:
                self._index.add_segment(segment_id, now, len(head))
            else:
                self._index.add_segment(segment_id, now, 0)
                self._seal_foreign(segment_id, now)
        return self._index.segments()

    def _recover_tail(self, row: SegmentRow, now: int) -> int | None:
        """Index complete frames past ``committed_end``; seal at a torn tail.

        Returns the segment's end if it can take more frames, ``None`` once it is sealed.
        """
        path = self.layout.segment(row.segment_id)
        size = segments.size(path)
        if size < row.committed_end:
            raise StoreError(
                f"segment {row.segment_id:08d} is shorter than the index records "
                f"({size} < {row.committed_end}); run `pik verify`"
            )
        end, torn = row.committed_end, 0
        if size > row.committed_end:
            data = segments.read_all(path)
            end, torn = recovery.index_frames(
                self._index, row.segment_id, data, row.committed_end, self.limits
            )
        if torn or segments.is_read_only(path):
            self._seal(row.segment_id, end, torn, now)
            return None
        return end

    def _seal_foreign(self, segment_id: int, now: int) -> None:
        """Seal a file this engine did not begin (no magic): kept whole, never written."""
        self._seal(segment_id, 0, segments.size(self.layout.segment(segment_id)), now)

    def _seal(self, segment_id: int, end: int, torn: int, now: int) -> None:
        path = self.layout.segment(segment_id)
        checksum = segments.digest(path, end)
        segments.seal(path)
        self._index.seal_segment(segment_id, now, checksum, torn)

    def reconcile(self) -> None:
        """Index raw records a crash left unindexed (done at every writable open, and
        before every write)."""
        if self.read_only:
            return
        with self._commit_lock, self.layout.write_lock(self._on_lock_wait):
            self._recover(self._clock())

    # --- reads ---------------------------------------------------------------------------

    def event(self, event_id: bytes) -> EventRecord | None:
        return self._index.event(event_id)

    def attempts(self, event_id: bytes) -> list[AttemptSummary]:
        return self._index.attempts(event_id)

    def read_raw(self, record: EventRecord) -> bytes:
        path = self.layout.segment(int(record.segment))
        return segments.read_range(path, record.offset, record.length)

    def read_raw_many(self, records: Sequence[EventRecord]) -> list[bytes]:
        # A local read is a seek and a read of a file in the page cache: nothing to batch.
        return [self.read_raw(record) for record in records]

    def timeline(
        self,
        entity_id: str,
        start_us: int,
        end_us: int,
        limit: int,
        after: tuple[int, bytes] | None = None,
        before: tuple[int, bytes] | None = None,
    ) -> list[EventRecord]:
        if limit <= 0:  # as on AWS: SQLite would read LIMIT -1 as no limit
            return []
        return self._index.timeline(entity_id, start_us, end_us, limit, after, before)

    def coverage(
        self,
        granularity: str,
        start_us: int,
        end_us: int,
        entity_ids: Sequence[str] | None,
        source: str | None,
    ) -> list[WindowCount]:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity is one of {', '.join(GRANULARITIES)}")
        return self._index.coverage(granularity, start_us, end_us, entity_ids, source)

    def rates(self, start_us: int, end_us: int, source: str | None) -> list[RateRecord]:
        return self._index.rates(start_us, end_us, source)

    def rejection_reasons(
        self, start_us: int, end_us: int, source: str | None
    ) -> list[tuple[str, str, int]]:
        return self._index.rejection_reasons(start_us, end_us, source)

    def entities(
        self, prefix: str, source: str | None, limit: int, after: str | None
    ) -> list[EntityRecord]:
        if limit <= 0:
            return []
        return self._index.entities(prefix, source, limit, after)

    def counts(self) -> dict[str, int]:
        return self._index.counts()

    # --- integrity -----------------------------------------------------------------------

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        from pik.engines.local.verify import verify_store

        return verify_store(self.layout, self._index, progress)
