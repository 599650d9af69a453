"""What a refused write on the local disk means for the caller.

A full disk (or a file-size or quota limit) means "make room" and becomes a 507; any other
refusal of a raw write means the disk is unwell and becomes a 503. Either way nothing was
acknowledged, so a retry is safe.
"""

from __future__ import annotations

import errno
import os
import resource
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from pik.storage_errors import StoreFullError, StoreUnavailableError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class StorageFullError(StoreFullError):
    """The disk or the file-size limit refused the write; nothing was acknowledged."""


def sqlite_code(exc: sqlite3.Error) -> int:
    """The primary result code of an SQLite error (``SQLITE_FULL``, ``SQLITE_BUSY``, …)."""
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def is_sqlite_full(exc: sqlite3.Error) -> bool:
    return sqlite_code(exc) == sqlite3.SQLITE_FULL


@contextmanager
def raw_write(what: str) -> Iterator[None]:
    """Name an ``OSError`` from writing raw bytes for what the caller should do next."""
    try:
        yield
    except (FileExistsError, StoreFullError):
        raise  # already say what they mean
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise StorageFullError(exc.errno, f"storage full while {what}: {exc.strerror}") from exc
        raise StoreUnavailableError(
            f"the disk refused {what} ({exc.strerror}); nothing was acknowledged. Check the "
            "disk, then run `pik verify`",
            retry_after_s=30,
        ) from exc


# The most one write of SQLite's can add to a file: its largest page and a WAL frame header.
_LARGEST_WRITE = 65536 + 24


def _at_file_size_limit(path: str) -> bool:
    """Whether a file of the index stands at the process's file-size limit: SQLite reports
    the ``EFBIG`` that limit causes as an I/O error, not as ``SQLITE_FULL``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return False
    for suffix in ("", "-wal", "-journal"):
        try:
            if os.stat(path + suffix).st_size + _LARGEST_WRITE > soft:
                return True
        except OSError:
            continue
    return False


@contextmanager
def index_write(path: str) -> Iterator[None]:
    """A full disk under the index is a 507 too, not a busy database."""
    try:
        yield
    except sqlite3.Error as exc:
        full = is_sqlite_full(exc) or (
            sqlite_code(exc) == sqlite3.SQLITE_IOERR and _at_file_size_limit(path)
        )
        if full:
            raise StorageFullError(
                errno.ENOSPC, f"storage full: the index {path} cannot grow ({exc})"
            ) from exc
        raise
