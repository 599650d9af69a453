"""Aggregate versions on the local engine: ``versions.sqlite`` beside the index.

Not in the index: ``pik reindex`` rebuilds the index from raw, but a version's history
(when it was computed, which replay caused it) exists nowhere else. A version is one row
under its key, inserted once: a second insert of the same number fails, which is how two
processors computing one window at once never both write version *n*.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from pik.domain.versions import Version
from pik.engines.local.disk import is_sqlite_full
from pik.engines.local.layout import VERSIONS_NAME
from pik.storage_errors import StoreFullError, StoreUnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    spec_id      TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    document     BLOB    NOT NULL,
    PRIMARY KEY (spec_id, entity_id, window_start, version)
) WITHOUT ROWID;
"""


class LocalVersionStore:
    """A :class:`~pik.ports.VersionStore` in one SQLite file of the store directory."""

    def __init__(self, store_dir: Path) -> None:
        self.path = store_dir / VERSIONS_NAME
        self._lock = threading.Lock()
        try:
            # One connection, shared by the threads of a process (TUI workers) under a lock.
            self._db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"the version store cannot be opened: {exc}") from None

    def _documents(self, sql: str, parameters: tuple[object, ...]) -> list[Version]:
        with self._lock:
            rows = self._db.execute(sql, parameters).fetchall()
        return [_version(document) for (document,) in rows]

    def latest(self, spec_id: str, entity_id: str, window_start_us: int) -> Version | None:
        found = self._documents(
            "SELECT document FROM versions WHERE spec_id = ? AND entity_id = ? "
            "AND window_start = ? ORDER BY version DESC LIMIT 1",
            (spec_id, entity_id, window_start_us),
        )
        return found[0] if found else None

    def add(self, version: Version) -> bool:
        row = (
            version.spec.spec_id,
            version.entity_id,
            version.window_start_us,
            version.version,
            orjson.dumps(version.to_document()),
        )
        try:
            with self._lock:
                self._db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError:
            return False
        except sqlite3.OperationalError as exc:
            if is_sqlite_full(exc):
                raise StoreFullError(f"no room for a new version: {exc}") from None
            raise StoreUnavailableError(f"the version store cannot be written: {exc}") from None
        return True

    def history(self, spec_id: str, entity_id: str, window_start_us: int) -> list[Version]:
        return self._documents(
            "SELECT document FROM versions WHERE spec_id = ? AND entity_id = ? "
            "AND window_start = ? ORDER BY version",
            (spec_id, entity_id, window_start_us),
        )

    def windows(self, spec_id: str, entity_id: str, start_us: int, end_us: int) -> list[Version]:
        return self._documents(
            "SELECT document FROM versions AS v WHERE spec_id = ? AND entity_id = ? "
            "AND window_start >= ? AND window_start < ? AND version = ("
            "  SELECT MAX(version) FROM versions WHERE spec_id = v.spec_id "
            "  AND entity_id = v.entity_id AND window_start = v.window_start) "
            "ORDER BY window_start",
            (spec_id, entity_id, start_us, end_us),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _version(document: bytes) -> Version:
    return Version.from_document(orjson.loads(document))
