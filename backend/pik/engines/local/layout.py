"""Where a local store keeps its files, and the store's identity.

    STORE/
      pik.json            store id and format version (written once, atomically)
      index.sqlite3       the index (WAL mode; derived, rebuildable)
      write.lock          advisory lock that serialises writers across processes
      segments/
        00000001.seg      append-only segment files, sealed read-only when full
      ledger.sqlite       replay plans, runs and audit (not derived: never rebuilt)
      versions.sqlite     the processor's aggregate versions (not derived either)
      replay-locks/
        <replay id>.lock  held by the one process sending a run

No name under the store is ever built from input: segment names are integers, and a lock's
name is a replay id the ledger made (32 hexadecimal digits).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pik.domain.numbers import whole_number

FORMAT = "pik-local/1"
LEDGER_NAME = "ledger.sqlite"
VERSIONS_NAME = "versions.sqlite"
REPLAY_LOCKS = "replay-locks"


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do next."""


def fsync_path(path: Path, directory: bool = False) -> None:
    """Put a file's (or a directory's entries') bytes on disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fsync_path(path, directory=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write a small file so that it exists whole or not at all.

    The temporary file is made new (``O_EXCL``): a leftover, or a link planted in its place
    to have another file overwritten, is removed first, never written through.
    """
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)


LOCK_PATIENCE_S = 1.0
"""How long a writer waits for the lock before it says it is waiting."""


def _taken_within(fd: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / "pik.json"
        self.index = root / "index.sqlite3"
        self.lock = root / "write.lock"
        self.segments = root / "segments"
        self.ledger = root / LEDGER_NAME
        self.versions = root / VERSIONS_NAME
        self.replay_locks = root / REPLAY_LOCKS
        self.demo_marker = root / "DEMO"
        """Present in a store of generated demo data only: what `pik demo` may replace."""

    def segment(self, segment_id: int) -> Path:
        return self.segments / f"{segment_id:08d}.seg"

    def segment_ids(self) -> list[int]:
        ids = []
        for entry in self.segments.iterdir():
            stem, dot, suffix = entry.name.partition(".")
            number = whole_number(stem, digits=8) if len(stem) == 8 else None
            if dot and suffix == "seg" and number is not None:
                ids.append(number)
        return sorted(ids)

    def read_identity(self) -> str | None:
        """The store id, or ``None`` when there is no store here yet."""
        if not self.meta.exists():
            return None
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.meta} is unreadable: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise StoreError(f"{self.root} holds format {meta.get('format')!r}, not {FORMAT}")
        return str(meta["store_id"])

    def open_or_create(self, create: bool) -> str:
        """Return the store id, creating the store when allowed and absent.

        Creation happens under the write lock, so processes that open a new store at the
        same moment agree on one identity.
        """
        self._refuse_links()
        store_id = self.read_identity()
        if store_id is not None:
            return store_id
        if not create:
            raise StoreError(f"no store at {self.root}; ingest something first or check --store")
        self._refuse_foreign()  # before the lock file is made: leave a foreign folder as it was
        self.root.mkdir(parents=True, exist_ok=True)
        with self.write_lock():
            store_id = self.read_identity()
            if store_id is not None:
                return store_id
            self._refuse_foreign()
            self.segments.mkdir(exist_ok=True)
            fsync_dir(self.root)
            store_id = uuid.uuid4().hex
            write_atomically(
                self.meta, json.dumps({"format": FORMAT, "store_id": store_id}).encode()
            )
            return store_id

    def _refuse_links(self) -> None:
        """A store holds its own files: a symbolic link among them would have reads show,
        and writes change, whatever it points at."""
        parts = (self.meta, self.index, self.lock, self.segments, self.ledger, self.versions)
        for path in (*parts, self.replay_locks, self.demo_marker):
            if path.is_symlink():
                raise StoreError(
                    f"{path} is a symbolic link; a store holds only its own files and folders "
                    "(remove the link, or choose another --store)"
                )
        if self.segments.is_dir() and any(p.is_symlink() for p in self.segments.iterdir()):
            raise StoreError(
                f"{self.segments} holds a symbolic link; a store holds only its own files "
                "(remove the link, or choose another --store)"
            )

    def _refuse_foreign(self) -> None:
        # What a creation interrupted by a crash may have left is fine; anything else means
        # the directory belongs to something else.
        if not self.root.exists():
            return
        leftovers = {self.lock.name, self.segments.name, self.meta.name + ".tmp"}
        foreign = [p for p in self.root.iterdir() if p.name not in leftovers]
        if foreign or (self.segments.exists() and any(self.segments.iterdir())):
            if self.meta.exists():
                # Another process made the store meanwhile (its identity is written before
                # any other file of it): the caller reads and checks that identity.
                return
            raise StoreError(
                f"{self.root} is not empty and is not a PIK store; choose another --store"
            )

    def hold_open(self) -> int | None:
        """A shared hold on the store's folder, for as long as an engine has the store open:
        what tells ``removal`` the store is in use. Released by ``os.close`` (or the
        kernel, if the process dies); ``None`` where the folder cannot be locked."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            # Held exclusively: a removal is under way, and opening what it deletes fails
            # on its own terms. Elsewhere (no flock on this file system) there is no hold.
            os.close(fd)
            return None
        return fd

    @contextmanager
    def removal(self) -> Iterator[None]:
        """Exclusive hold on the store's folder while its files are deleted; refused while
        any process has the store open (a `pik-tui --demo` browsing it, `pik serve`)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"the store at {self.root} is open in another process (a `pik-tui`, "
                    "`pik serve` or an ingest); quit it, then try again"
                ) from None
            yield
        finally:
            os.close(fd)

    @contextmanager
    def write_lock(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Exclusive across processes; released by the kernel if the holder dies.

        ``on_wait`` is called once when another process has held the lock for a second
        (a reindex can hold it for minutes; a writer, for one batch), so a caller can say
        why it is waiting.
        """
        try:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except PermissionError:
            raise StoreError(
                f"no permission to write to the store at {self.root}; run as its owner"
            ) from None
        try:
            if on_wait is None or not _taken_within(fd, LOCK_PATIENCE_S):
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
