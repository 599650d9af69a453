"""The local replay ledger: plans, runs and audit records in their own SQLite file.

    STORE/
      ledger.sqlite (-wal, -shm)   created by the first replay plan

The ledger lives beside the index, never in it. The index is derived from raw and
`pik reindex` throws it away and rebuilds it; the ledger records decisions (who confirmed
what, how far a run got) that exist nowhere else.

Every write is one IMMEDIATE transaction, committed with ``synchronous=FULL`` (the WAL is
fsync'd before the call returns): an audit record is on disk before the first message it
permits is sent. Several processes share the file; a writer waits for another's lock (busy
timeout) instead of failing. A write the disk refuses raises ``StoreUnavailableError`` (or
``StoreFullError``), so a replay fails closed.

The file is created when something is first written, so reading the ledger of a store that
never replayed (or that sits on read-only media) writes nothing.
"""

from __future__ import annotations

import errno
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pik.domain import replay
from pik.domain.replay import AuditRecord, Plan, ReplayRun
from pik.engines.local.disk import is_sqlite_full
from pik.engines.local.layout import LEDGER_NAME
from pik.storage_errors import StoreFullError, StoreUnavailableError

FORMAT = "pik-ledger/1"
BUSY_TIMEOUT_S = 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (
    plan_id     TEXT PRIMARY KEY,
    created_us  INTEGER NOT NULL,
    document    TEXT NOT NULL,
    replay_id   TEXT            -- the run that confirmed the plan, NULL until then
);
CREATE TABLE IF NOT EXISTS runs (
    replay_id        TEXT PRIMARY KEY,
    plan_id          TEXT NOT NULL UNIQUE,
    target           TEXT NOT NULL,
    status           TEXT NOT NULL,
    total            INTEGER NOT NULL,
    sent             INTEGER NOT NULL,
    rate             INTEGER NOT NULL,
    confirmed_by     TEXT NOT NULL,
    started_us       INTEGER NOT NULL,
    updated_us       INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    detail           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_us);
CREATE TABLE IF NOT EXISTS audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us    INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_us, seq);
"""
_RUN_COLUMNS = (
    "replay_id, plan_id, target, status, total, sent, rate, confirmed_by, started_us, "
    "updated_us, cancel_requested, detail"
)

P = ParamSpec("P")
R = TypeVar("R")


class LedgerFullError(StoreFullError):
    """The disk (or a file-size limit) refused a ledger write; nothing of it was kept."""


def _encode(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _run(row: tuple[Any, ...]) -> ReplayRun:
    return ReplayRun(
        replay_id=row[0],
        plan_id=row[1],
        target=row[2],
        status=row[3],
        total=row[4],
        sent=row[5],
        rate=row[6],
        confirmed_by=row[7],
        started_us=row[8],
        updated_us=row[9],
        cancel_requested=bool(row[10]),
        detail=row[11],
    )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One IMMEDIATE transaction (the write lock taken up front): committed whole, or
    rolled back whole."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # The failure that got us here is the one to report, not a failed rollback.
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """One thread at a time on the connection; SQLite failures become storage errors."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        ledger = args[0]
        assert isinstance(ledger, LocalReplayLedger)
        with ledger._lock:
            try:
                return method(*args, **kwargs)
            except sqlite3.Error as exc:
                raise ledger._unavailable(exc) from exc

    return run


class LocalReplayLedger:
    """A :class:`~pik.ports.ReplayLedger` in ``ledger.sqlite`` inside a store directory."""

    def __init__(self, store_dir: Path) -> None:
        self.path = Path(store_dir) / LEDGER_NAME
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    # --- connection ----------------------------------------------------------------------

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; ``None`` when reading a ledger that was never written."""
        if self._db is not None:
            return self._db
        if not create and not self.path.exists():
            return None
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._check_format(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _check_format(self, db: sqlite3.Connection) -> None:
        has_meta = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            with _transaction(db):
                for statement in _SCHEMA.split(";"):  # no ';' inside a statement
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
        row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None or row[0] != FORMAT:
            raise StoreUnavailableError(
                f"the replay ledger {self.path} has format {row[0] if row else None!r}, "
                f"not {FORMAT}; it was written by another version of pik",
                retry_after_s=60,
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connection(create=True)
        assert db is not None
        with _transaction(db):
            yield db

    def _unavailable(self, exc: sqlite3.Error) -> Exception:
        if is_sqlite_full(exc):
            return LedgerFullError(
                errno.ENOSPC,
                f"the replay ledger {self.path} cannot grow ({exc}): make room on its disk",
            )
        return StoreUnavailableError(
            f"the replay ledger {self.path} cannot be used ({exc}); check that it, its -wal "
            "and -shm files and its directory are writable and the disk is healthy, then try "
            "again"
        )

    @_guarded
    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    # --- plans ---------------------------------------------------------------------------

    @_guarded
    def save_plan(self, plan: Plan, audit: AuditRecord) -> None:
        with self._write() as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO plans (plan_id, created_us, document) VALUES (?, ?, ?)",
                (plan.plan_id, plan.created_us, _encode(plan.to_document())),
            ).rowcount
            if inserted:
                self._insert_audit(db, audit)

    @_guarded
    def plan(self, plan_id: str) -> Plan | None:
        db = self._connection(create=False)
        if db is None:
            return None
        row = db.execute("SELECT document FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        return None if row is None else Plan.from_document(json.loads(row[0]))

    @_guarded
    def confirm(self, plan_id: str, run: ReplayRun, audit: AuditRecord) -> None:
        with self._write() as db:
            claimed = db.execute(
                "UPDATE plans SET replay_id = ? WHERE plan_id = ? AND replay_id IS NULL",
                (run.replay_id, plan_id),
            ).rowcount
            if not claimed:
                known = db.execute("SELECT 1 FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
                if not known:
                    raise replay.plan_not_found(plan_id)
                raise replay.plan_already_confirmed(plan_id)
            db.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.replay_id,
                    run.plan_id,
                    run.target,
                    run.status,
                    run.total,
                    run.sent,
                    run.rate,
                    run.confirmed_by,
                    run.started_us,
                    run.updated_us,
                    int(run.cancel_requested),
                    run.detail,
                ),
            )
            self._insert_audit(db, audit)

    # --- runs ----------------------------------------------------------------------------

    @_guarded
    def run(self, replay_id: str) -> ReplayRun | None:
        db = self._connection(create=False)
        if db is None:
            return None
        row = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE replay_id = ?", (replay_id,)
        ).fetchone()
        return None if row is None else _run(row)

    @_guarded
    def runs(self, limit: int) -> list[ReplayRun]:
        db = self._connection(create=False)
        if db is None:
            return []
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_us DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [_run(row) for row in rows]

    @_guarded
    def advance(self, replay_id: str, sent: int, now_us: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET sent = max(sent, ?), updated_us = max(updated_us, ?) "
                "WHERE replay_id = ?",
                (sent, now_us, replay_id),
            )

    @_guarded
    def finish(self, replay_id: str, status: str, now_us: int, audit: AuditRecord) -> None:
        with self._write() as db:
            ended = db.execute(
                "UPDATE runs SET status = ?, updated_us = ?, detail = ? "
                "WHERE replay_id = ? AND status = ?",
                (
                    status,
                    now_us,
                    "" if audit.outcome == "ok" else audit.outcome,
                    replay_id,
                    replay.RUNNING,
                ),
            ).rowcount
            if ended:
                self._insert_audit(db, audit)

    @_guarded
    def request_cancel(self, replay_id: str, audit: AuditRecord) -> bool:
        with self._write() as db:
            asked = db.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE replay_id = ? AND status = ?",
                (replay_id, replay.RUNNING),
            ).rowcount
            if asked:
                self._insert_audit(db, audit)
            return bool(asked)

    @_guarded
    def set_rate(self, replay_id: str, rate: int) -> bool:
        with self._write() as db:
            return bool(
                db.execute(
                    "UPDATE runs SET rate = ? WHERE replay_id = ? AND status = ?",
                    (rate, replay_id, replay.RUNNING),
                ).rowcount
            )

    # --- audit ---------------------------------------------------------------------------

    @_guarded
    def audit(self, record: AuditRecord) -> None:
        with self._write() as db:
            self._insert_audit(db, record)

    @staticmethod
    def _insert_audit(db: sqlite3.Connection, record: AuditRecord) -> None:
        db.execute(
            "INSERT INTO audit (at_us, document) VALUES (?, ?)",
            (record.at_us, _encode(record.to_document())),
        )

    @_guarded
    def audit_log(self, since_us: int, limit: int) -> list[AuditRecord]:
        db = self._connection(create=False)
        if db is None:
            return []
        rows = db.execute(
            "SELECT document FROM audit WHERE at_us >= ? ORDER BY at_us, seq LIMIT ?",
            (since_us, limit),
        )
        return [AuditRecord.from_document(json.loads(row[0])) for row in rows]
