"""The SQLite index of the local engine: writes for one batch in one transaction, and reads."""

from __future__ import annotations

import functools
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from itertools import chain, repeat
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pik.domain.envelope import could_begin_entity
from pik.domain.instants import US_PER_DAY, US_PER_HOUR
from pik.domain.lag import LAG_LABELS
from pik.domain.records import (
    AttemptSummary,
    EntityRecord,
    EventRecord,
    RateRecord,
    WindowCount,
)
from pik.domain.tally import Tally
from pik.engines.local.disk import index_write, sqlite_code
from pik.engines.local.layout import fsync_path
from pik.engines.local.rows import (
    EVENT_COLUMNS,
    ROW_COLUMNS,
    Attempt,
    EventValues,
    SegmentRow,
    event_record,
)
from pik.faults import crash_point
from pik.storage_errors import StoreUnavailableError

SCHEMA_VERSION = "4"
P = ParamSpec("P")
R = TypeVar("R")
_CHUNK = 500
_ROWS_PER_STATEMENT = 100
_LAG_COLUMNS = [f"lag_{i}" for i in range(len(LAG_LABELS))]
_HOUR_COLUMNS = [f"h{i}" for i in range(24)]
_WINDOW_ORDER = operator.itemgetter(1, 0)


def _write_rows(
    db: sqlite3.Connection, head: str, width: int, tail: str, rows: Sequence[Sequence[Any]]
) -> None:
    """``head (row), (row), ... tail`` for every row, several rows to a statement.

    The same as one statement per row: rows are applied in order, so a later row sees an
    earlier one's upsert. Binding a hundred rows at once halves SQLite's cost per row. A
    statement binds at most 999 values (the oldest SQLite limit), and each table has two
    statement shapes, so both stay in the statement cache.
    """
    one = "(" + ",".join("?" * width) + ")"
    per = min(_ROWS_PER_STATEMENT, 999 // width)
    whole = len(rows) - len(rows) % per
    if whole:
        sql = head + ",".join([one] * per) + tail
        for start in range(0, whole, per):
            db.execute(sql, list(chain.from_iterable(rows[start : start + per])))
    if whole < len(rows):
        db.executemany(head + one + tail, rows[whole:])


class IndexCorruptError(StoreUnavailableError):
    """The index cannot be trusted; it is never served. ``pik reindex`` rebuilds it."""

    code = "index_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after_s=60)


def _connect(path: Path, read_only: bool, create: bool) -> sqlite3.Connection:
    if read_only:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        connection = sqlite3.connect(
            uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA cache_size=-65536")
        return connection
    # Only a creation makes the file: opening an existing index never leaves an empty one
    # behind (a reindex would take it for the live index of a running process).
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
    connection = sqlite3.connect(
        uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    # The raw segments are fsync'd before the index is written and the index is rebuilt
    # from them after a crash, so the index may trade the per-commit WAL sync for speed.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA cache_size=-65536")
    connection.execute("PRAGMA temp_store=MEMORY")
    # Checkpoint the WAL every ~80 MB instead of every 4 MB: pages that every batch touches
    # (counters, coverage) are then copied back once per checkpoint, not once per batch.
    connection.execute("PRAGMA wal_autocheckpoint=20000")
    return connection


@contextmanager
def _undamaged(path: Path) -> Iterator[None]:
    """A damaged page met by a read or a write (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``) is the
    index's damage, answered like an index that cannot be opened: never served, rebuilt."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if sqlite_code(exc) not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise
        raise IndexCorruptError(
            f"the index at {path} is damaged ({exc}); rebuild it from raw with "
            f"`pik --store {path.parent} reindex`"
        ) from exc


def _serialised(method: Callable[P, R]) -> Callable[P, R]:
    """Run a method under the index's lock: one connection, used by one thread at a time."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        index = args[0]
        with index._lock, _undamaged(index.path):  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return run


class SqliteIndex:
    """One SQLite connection; every method holds the lock while it uses it."""

    def __init__(self, path: Path, store_id: str, create: bool, read_only: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._db = _connect(path, read_only, create)
            if create and not read_only:
                self._db.executescript(
                    resources.files("pik.engines.local").joinpath("schema.sql").read_text()
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('store_id', ?)",
                    (SCHEMA_VERSION, store_id),
                )
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            if sqlite_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise StoreUnavailableError(
                    f"the index at {path} is busy ({exc}): another process holds it, "
                    "perhaps a `pik reindex`; try again when it is done",
                    retry_after_s=30,
                ) from exc
            if sqlite_code(exc) in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
                # Not damage: SQLite writes the index's -shm and -wal files even to read it.
                raise StoreUnavailableError(
                    f"the index at {path} cannot be opened ({exc}): reading it needs write"
                    " access to the store directory and its files; run as the store's owner"
                ) from exc
            raise IndexCorruptError(
                f"the index at {path} cannot be read ({exc}); rebuild it from raw with "
                f"`pik --store {path.parent} reindex`"
            ) from exc
        if meta.get("store_id") != store_id or meta.get("schema_version") != SCHEMA_VERSION:
            raise IndexCorruptError(
                f"the index at {path} does not belong to this store or has another schema; "
                f"rebuild it from raw with `pik --store {path.parent} reindex`"
            )

    @_serialised
    def close(self) -> None:
        self._db.close()

    @_serialised
    def build_without_wal(self) -> None:
        """For an index being built in a file nobody else opens: every commit lands in the
        file itself (a full disk fails the commit, not a checkpoint at close that SQLite
        cannot report), and nothing is synced until :meth:`finish_build`."""
        self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.execute("PRAGMA synchronous=OFF")

    @_serialised
    def finish_build(self) -> None:
        """Close a built index with its bytes on disk."""
        self._db.close()
        fsync_path(self.path)

    # --- writer side (called only under the store's write lock) -------------------------

    @_serialised
    def segments(self) -> list[SegmentRow]:
        rows = self._db.execute(
            "SELECT segment_id, created_us, committed_end, sealed_us, sha256, torn_bytes "
            "FROM segments ORDER BY segment_id"
        )
        return [SegmentRow(*row) for row in rows]

    @_serialised
    def add_segment(self, segment_id: int, created_us: int, committed_end: int) -> None:
        with index_write(str(self.path)):
            self._db.execute(
                "INSERT INTO segments (segment_id, created_us, committed_end) VALUES (?, ?, ?)",
                (segment_id, created_us, committed_end),
            )

    @_serialised
    def seal_segment(self, segment_id: int, sealed_us: int, sha256: str, torn: int) -> None:
        with index_write(str(self.path)):
            self._db.execute(
                "UPDATE segments SET sealed_us = ?, sha256 = ?, torn_bytes = ? "
                "WHERE segment_id = ?",
                (sealed_us, sha256, torn, segment_id),
            )

    @_serialised
    def known(self, event_ids: Sequence[bytes]) -> dict[bytes, bytes]:
        """Content hashes of the ids among ``event_ids`` that are already stored."""
        found: dict[bytes, bytes] = {}
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    f"SELECT event_id, content_hash FROM events WHERE event_id IN ({marks})",
                    chunk,
                )
            )
        return found

    @_serialised
    def apply(
        self,
        events: Sequence[EventValues],
        attempts: Sequence[Attempt],
        tally: Tally,
        segment_id: int,
        committed_end: int,
    ) -> None:
        """Index one committed batch: all of it or none of it."""
        db = self._db
        with index_write(str(self.path)):
            db.execute("BEGIN IMMEDIATE")
            try:
                _write_rows(db, f"INSERT INTO events ({ROW_COLUMNS}) VALUES ", 17, "", events)
                self._apply_attempts(attempts)
                self._apply_tally(tally)
                crash_point("in_index_transaction")
                db.execute(
                    "UPDATE segments SET committed_end = ? WHERE segment_id = ?",
                    (committed_end, segment_id),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (a full disk)
                    db.execute("ROLLBACK")
                raise

    def _apply_attempts(self, attempts: Sequence[Attempt]) -> None:
        db = self._db
        for attempt in attempts:
            column = "duplicate_count" if attempt.kind == "duplicate" else "conflict_count"
            db.execute(
                f"UPDATE events SET {column} = {column} + 1, "
                "last_seen_us = max(last_seen_us, ?) WHERE event_id = ?",
                (attempt.ingest_time_us, attempt.event_id),
            )
            db.execute(
                "INSERT INTO attempts VALUES (?, ?, ?, 1, ?, ?) "
                "ON CONFLICT DO UPDATE SET count = count + 1, "
                "first_seen_us = min(first_seen_us, excluded.first_seen_us), "
                "last_seen_us = max(last_seen_us, excluded.last_seen_us)",
                (
                    attempt.event_id,
                    attempt.kind,
                    attempt.origin,
                    attempt.ingest_time_us,
                    attempt.ingest_time_us,
                ),
            )

    def _apply_tally(self, tally: Tally) -> None:
        db = self._db
        lag_set = ", ".join(f"{c} = {c} + excluded.{c}" for c in _LAG_COLUMNS)
        db.executemany(
            f"INSERT INTO rates (minute_us, source, accepted, duplicate, rejected, late, conflict, "
            f"{', '.join(_LAG_COLUMNS)}) VALUES ({','.join('?' * (7 + len(_LAG_COLUMNS)))}) "
            "ON CONFLICT DO UPDATE SET accepted = accepted + excluded.accepted, "
            "duplicate = duplicate + excluded.duplicate, rejected = rejected + excluded.rejected, "
            f"late = late + excluded.late, conflict = conflict + excluded.conflict, {lag_set}",
            (
                (minute, source, r.accepted, r.duplicate, r.rejected, r.late, r.conflict, *r.lag)
                for (minute, source), r in tally.rates.items()
            ),
        )
        db.executemany(
            "INSERT INTO rejections VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET count = count + excluded.count",
            ((m, s, code, n) for (m, s, code), n in tally.rejections.items()),
        )
        # Hour windows go into their day's row, one statement per hour of the day; day
        # windows of the tally are the sums of its hour windows, so only the all-sources
        # day counts are taken from them.
        days: dict[tuple[int, str], int] = {}
        hours: dict[int, list[tuple[int, str, str, int, int]]] = {}
        for (entity, source, granularity, window), n in tally.coverage.items():
            if granularity == "day":
                days[window, entity] = days.get((window, entity), 0) + n
                continue
            day = window - window % US_PER_DAY
            hour = (window - day) // US_PER_HOUR
            row = (day, entity, source, n, n)
            if hour in hours:
                hours[hour].append(row)
            else:
                hours[hour] = [row]
        for hour, rows in sorted(hours.items()):
            rows.sort()
            _write_rows(
                db,
                f"INSERT INTO coverage (day_start_us, entity_id, source, count, h{hour}) VALUES ",
                5,
                f" ON CONFLICT DO UPDATE SET count = count + excluded.count, "
                f"h{hour} = h{hour} + excluded.h{hour}",
                rows,
            )
        _write_rows(
            db,
            "INSERT INTO coverage_all_sources VALUES ",
            3,
            " ON CONFLICT DO UPDATE SET count = count + excluded.count",
            sorted((w, e, n) for (w, e), n in days.items()),
        )
        _write_rows(
            db,
            "INSERT INTO entities VALUES ",
            5,
            " ON CONFLICT DO UPDATE SET "
            "first_event_us = min(first_event_us, excluded.first_event_us), "
            "last_event_us = max(last_event_us, excluded.last_event_us), "
            "count = count + excluded.count",
            sorted(
                (entity, source, row.first_event_us, row.last_event_us, row.count)
                for (entity, source), row in tally.entities.items()
            ),
        )

    # --- reader side ---------------------------------------------------------------------

    @_serialised
    def event(self, event_id: bytes) -> EventRecord | None:
        row = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return event_record(row) if row else None

    @_serialised
    def attempts(self, event_id: bytes) -> list[AttemptSummary]:
        return [
            AttemptSummary(*row)
            for row in self._db.execute(
                "SELECT kind, origin, count, first_seen_us, last_seen_us FROM attempts "
                "WHERE event_id = ? ORDER BY first_seen_us",
                (event_id,),
            )
        ]

    @_serialised
    def timeline(
        self,
        entity_id: str,
        start_us: int,
        end_us: int,
        limit: int,
        after: tuple[int, bytes] | None = None,
        before: tuple[int, bytes] | None = None,
    ) -> list[EventRecord]:
        """Events of one entity with ``start <= event_time < end``, in (time, id) order.

        ``after`` pages forward from a position, ``before`` pages backward; either way the
        rows come back in ascending order.
        """
        span = self._db.execute(
            "SELECT min(first_event_us), max(last_event_us) FROM entities WHERE entity_id = ?",
            (entity_id,),
        ).fetchone()
        if span[0] is None:
            return []
        # The timeline index is partitioned by day of event time (see schema.sql): walk the
        # days of the entity's life inside the range, nearest first, until the page is full.
        low, high = max(start_us, span[0]), min(end_us, span[1] + 1)
        if after is not None:
            low = max(low, after[0])
        if before is not None:
            high = min(high, before[0] + 1)
        if low >= high:
            return []
        backward = before is not None and after is None
        days = range(low // US_PER_DAY, (high - 1) // US_PER_DAY + 1)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE day = ? AND entity_id = ? "
            "AND event_time_us >= ? AND event_time_us < ?"
        )
        bounds: list[Any] = [start_us, end_us]
        if after is not None:
            sql += " AND (event_time_us, event_id) > (?, ?)"
            bounds.extend(after)
        if before is not None:
            sql += " AND (event_time_us, event_id) < (?, ?)"
            bounds.extend(before)
        order = "DESC" if backward else "ASC"
        sql += f" ORDER BY event_time_us {order}, event_id {order} LIMIT ?"
        rows: list[EventRecord] = []
        for day in reversed(days) if backward else days:
            found = self._db.execute(sql, [day, entity_id, *bounds, limit - len(rows)])
            rows.extend(map(event_record, found))
            if len(rows) >= limit:
                break
        return rows[::-1] if backward else rows

    @_serialised
    def coverage(
        self,
        granularity: str,
        start_us: int,
        end_us: int,
        entity_ids: Sequence[str] | None,
        source: str | None,
    ) -> list[WindowCount]:
        """Non-empty windows in key order: by window, then entity."""
        hourly = granularity != "day"
        table = "coverage_all_sources" if source is None and not hourly else "coverage"
        # An hour's row is its day's: read every day the range touches.
        params: list[Any] = [start_us - start_us % US_PER_DAY if hourly else start_us, end_us]
        where = "WHERE day_start_us >= ? AND day_start_us < ?"
        if source is not None:
            where += " AND source = ?"
            params.append(source)
        wanted = None if entity_ids is None else sorted(set(entity_ids))
        if wanted is not None and len(wanted) <= _CHUNK:
            where += f" AND entity_id IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        if not hourly:
            # Rows come in key order (time-major, no sort), and the C-level map builds the
            # tuples without a Python call per row: 90,000 windows in well under 100 ms.
            rows = self._db.execute(
                f"SELECT entity_id, day_start_us, count FROM {table} {where}", params
            )
            windows = list(map(tuple.__new__, repeat(WindowCount), rows))
        else:
            if source is None:
                # An entity's sources are adjacent in key order: the sum streams.
                sums = ", ".join(f"sum({c})" for c in _HOUR_COLUMNS)
                sql = (
                    f"SELECT entity_id, day_start_us, {sums} FROM {table} {where} "
                    "GROUP BY day_start_us, entity_id ORDER BY day_start_us, entity_id"
                )
            else:
                columns = ", ".join(_HOUR_COLUMNS)
                sql = f"SELECT entity_id, day_start_us, {columns} FROM {table} {where}"
            windows = [
                WindowCount(entity, window, n)
                for entity, day, *counts in self._db.execute(sql, params)
                for window, n in zip(range(day, day + US_PER_DAY, US_PER_HOUR), counts, strict=True)
                if n and start_us <= window < end_us
            ]
            windows.sort(key=_WINDOW_ORDER)
        if wanted is not None and len(wanted) > _CHUNK:
            keep = set(wanted)
            windows = [w for w in windows if w.entity_id in keep]
        return windows

    @_serialised
    def rates(self, start_us: int, end_us: int, source: str | None) -> list[RateRecord]:
        sql = (
            "SELECT minute_us, source, accepted, duplicate, rejected, late, conflict, "
            f"{', '.join(_LAG_COLUMNS)} FROM rates WHERE minute_us >= ? AND minute_us < ?"
        )
        params: list[Any] = [start_us, end_us]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        rows = self._db.execute(sql + " ORDER BY minute_us, source", params)
        return [
            RateRecord(minute, src, accepted, dup, rejected, late, conflict, tuple(lag))
            for minute, src, accepted, dup, rejected, late, conflict, *lag in rows
        ]

    @_serialised
    def rejection_reasons(
        self, start_us: int, end_us: int, source: str | None
    ) -> list[tuple[str, str, int]]:
        """(source, code, count) over a range of ingest minutes."""
        sql = (
            "SELECT source, code, sum(count) FROM rejections WHERE minute_us >= ? AND minute_us < ?"
        )
        params: list[Any] = [start_us, end_us]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        sql += " GROUP BY source, code ORDER BY sum(count) DESC, source, code"
        return list(self._db.execute(sql, params))

    @_serialised
    def entities(
        self, prefix: str, source: str | None, limit: int, after: str | None
    ) -> list[EntityRecord]:
        """Entities by id, optionally under a prefix and for one source; paged by id."""
        if not could_begin_entity(prefix):
            return []  # and the prefix's successor below is a character that exists
        sql = (
            "SELECT entity_id, group_concat(source, ' '), min(first_event_us), "
            "max(last_event_us), sum(count) FROM entities WHERE entity_id >= ?"
        )
        params: list[Any] = [prefix]
        if after is not None:
            sql += " AND entity_id > ?"
            params.append(after)
        if prefix:
            sql += " AND entity_id < ?"
            params.append(prefix[:-1] + chr(ord(prefix[-1]) + 1))
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        sql += " GROUP BY entity_id ORDER BY entity_id LIMIT ?"
        params.append(limit)
        return [
            EntityRecord(entity, tuple(sorted(sources.split(" "))), first, last, count)
            for entity, sources, first, last, count in self._db.execute(sql, params)
        ]

    @contextmanager
    def one_snapshot(self) -> Iterator[None]:
        """Answer every read inside from one snapshot of the index, so reads that must
        agree (segment ends, event locations) do while writers go on committing."""
        with self._lock, _undamaged(self.path):
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    def event_locations(self) -> Iterator[tuple[bytes, int, int, int, bytes]]:
        """(event_id, segment_id, offset, length, sha256) for every event, in segment order.

        The lock is held until the iteration ends: other threads wait, this one may still
        call the index (the lock is re-entrant).
        """
        with self._lock, _undamaged(self.path):
            yield from self._db.execute(
                "SELECT event_id, segment_id, offset, length, sha256 FROM events "
                "ORDER BY segment_id, offset"
            )

    @_serialised
    def counts(self) -> dict[str, int]:
        events = self._db.execute("SELECT count(*) FROM events").fetchone()[0]
        entities = self._db.execute("SELECT count(DISTINCT entity_id) FROM entities").fetchone()[0]
        totals = self._db.execute(
            "SELECT coalesce(sum(accepted), 0), coalesce(sum(duplicate), 0), "
            "coalesce(sum(rejected), 0), coalesce(sum(late), 0) FROM rates"
        ).fetchone()
        return {
            "events": events,
            "entities": entities,
            "accepted": totals[0],
            "duplicate": totals[1],
            "rejected": totals[2],
            "late": totals[3],
        }

    @_serialised
    def integrity_problems(self) -> list[str]:
        rows = [row[0] for row in self._db.execute("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows
