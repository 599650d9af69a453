"""`pik reindex`: a store's index rebuilt from its segment files alone, then swapped in
while other processes keep it open."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pik.domain.limits import DEFAULT_LIMITS, Limits
from pik.engines.local import recovery
from pik.engines.local.disk import index_write, sqlite_code
from pik.engines.local.layout import Layout, StoreError
from pik.ports import Progress


@contextmanager
def _peek(index: Path) -> Iterator[sqlite3.Connection]:
    """A read-only look at an index file, whatever it holds (it never creates one)."""
    db = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        yield db
    finally:
        db.close()


def is_blank(index: Path) -> bool:
    """Whether an index file holds no table yet (a creation was cut short)."""
    try:
        with _peek(index) as db:
            return bool(db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)
    except sqlite3.Error:
        return False


def reindex(
    root: Path, limits: Limits = DEFAULT_LIMITS, progress: Progress | None = None
) -> list[recovery.Damage]:
    """Rebuild a store's index from its segment files alone, then swap it in; returns the
    damage that kept valid frames out of it (their events are not indexed)."""
    layout = Layout(Path(root))
    store_id = layout.open_or_create(create=False)
    with layout.write_lock():
        timestamps = _old_timestamps(layout.index)
        building = layout.root / "index.rebuild.sqlite3"
        files = [(sid, layout.segment(sid)) for sid in layout.segment_ids()]
        try:
            damages = recovery.rebuild(building, store_id, files, limits, timestamps, progress)
            if layout.index.exists() and _copied_into(building, layout.index):
                return damages
            # Nobody can be using an index that is missing or not a database: replace it.
            _remove_database(layout.index)  # its WAL would be replayed into the new one
            building.replace(layout.index)
            return damages
        finally:
            _remove_database(building)


def _old_timestamps(index: Path) -> dict[int, tuple[int, int | None]]:
    """Each segment's (created, sealed) times from the old index, whatever its schema,
    when it can still be read; else nothing (the files' times stand in)."""
    if not index.exists():
        return {}
    try:
        with _peek(index) as old:
            rows = old.execute("SELECT segment_id, created_us, sealed_us FROM segments")
            return {int(r[0]): (int(r[1]), None if r[2] is None else int(r[2])) for r in rows}
    except (sqlite3.Error, TypeError, ValueError):
        return {}


def _copied_into(source: Path, target: Path) -> bool:
    """Copy a rebuilt index over the live one in one transaction.

    Processes that have the store open keep their connections and see the new index at
    their next read: the file they hold is never unlinked from under them, and there is no
    moment without an index for a process that opens the store to find. ``False`` only
    when the live file is no database at all (corrupt or not SQLite), which no process can
    be using; any other failure (a full disk: storage full) is raised, the live index left
    as it was.
    """
    try:
        with index_write(str(target)):
            live = sqlite3.connect(f"{target.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
            try:
                built = sqlite3.connect(source)
                try:
                    built.backup(live)
                finally:
                    built.close()
                # Fold the copied pages back into the file if no reader is in the way; a
                # long reader (a verify) only defers that to the next automatic checkpoint.
                live.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                live.close()
    except sqlite3.DatabaseError as exc:
        if sqlite_code(exc) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return False
        raise StoreError(
            f"reindex could not copy the rebuilt index over {target} ({exc}); the index in "
            "use is unchanged. The copy needs about twice the index's size free on its disk"
        ) from exc
    return True


def _remove_database(path: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal", ""):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
