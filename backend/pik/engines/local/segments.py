"""Append-only segment files: create, append with fsync, read a range, seal."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from pik.engines.local.layout import Layout, fsync_dir
from pik.faults import armed, crash_point
from pik.frames import SEGMENT_MAGIC
from pik.storage_errors import StoreFullError


class StorageFullError(StoreFullError):
    """The disk or the file-size limit refused the write; nothing was acknowledged."""


def create_segment(layout: Layout, segment_id: int) -> int:
    """Create a new segment holding only its magic; returns its length."""
    path = layout.segment(segment_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, SEGMENT_MAGIC, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(layout.segments)
    return len(SEGMENT_MAGIC)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise StorageFullError(exc.errno, f"storage full: {exc.strerror}") from exc
        raise


def append(path: Path, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset`` (the segment's current end) and fsync before returning.

    Bytes before ``offset`` are never touched: the caller has checked that the file ends
    exactly there.
    """
    fd = os.open(path, os.O_WRONLY)
    try:
        if armed("mid_append"):
            _write_all(fd, data[: len(data) // 2], offset)
            os.fsync(fd)
            crash_point("mid_append")
        _write_all(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def size(path: Path) -> int:
    return path.stat().st_size


def read_range(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def read_all(path: Path, length: int | None = None) -> bytes:
    with open(path, "rb") as handle:
        return handle.read() if length is None else handle.read(length)


def digest(path: Path, length: int) -> str:
    """sha256 of the first ``length`` bytes of a segment."""
    hasher = hashlib.sha256()
    remaining = length
    with open(path, "rb") as handle:
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher.hexdigest()


def seal(path: Path) -> None:
    """Make a segment read-only for everyone: no byte of it changes again."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def is_read_only(path: Path) -> bool:
    return not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
