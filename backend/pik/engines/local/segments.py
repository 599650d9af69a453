"""Append-only segment files: create, append with fsync, read a range, seal."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from pik.engines.local.disk import raw_write
from pik.engines.local.layout import Layout, fsync_dir, fsync_path
from pik.faults import armed, crash_point
from pik.frames import SEGMENT_MAGIC

_PENDING = ".seg.new"
# What a filesystem without hard links (FAT, exFAT, some network and FUSE mounts) answers.
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)


def create_segment(layout: Layout, segment_id: int) -> int:
    """Create a new segment holding only its magic; returns its length.

    The segment appears under its name whole or not at all: a crash or a full disk while it
    is made leaves at most a pending file, never a segment without its magic (which a
    rebuild would otherwise take for an empty active segment).
    """
    path = layout.segment(segment_id)
    if path.exists():
        raise FileExistsError(f"segment {path.name} exists and is never overwritten")
    for leftover in layout.segments.glob(f"*{_PENDING}"):
        leftover.unlink()  # a creation a crash interrupted; it never held an event
    pending = path.with_name(f"{segment_id:08d}{_PENDING}")
    try:
        with raw_write(f"creating segment {path.name}"):
            fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                _write_all(fd, SEGMENT_MAGIC, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            _publish(pending, path)
            fsync_dir(layout.segments)
    finally:
        pending.unlink(missing_ok=True)
    return len(SEGMENT_MAGIC)


def _publish(pending: Path, path: Path) -> None:
    """Give the pending file the segment's name, never replacing an existing segment."""
    try:
        os.link(pending, path)  # unlike rename, refuses an existing name by itself
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here (FAT, some network mounts). The caller holds the store's write
        # lock, so no other writer can take the name between this check and the rename.
        if path.exists():
            raise FileExistsError(f"segment {path.name} exists and is never overwritten") from None
        os.rename(pending, path)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def append(path: Path, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset`` (the segment's current end) and fsync before returning.

    Bytes before ``offset`` are never touched: the caller has checked that the file ends
    exactly there.
    """
    with raw_write(f"appending to segment {path.name}"):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            if armed("mid_append"):
                _write_all(fd, data[: len(data) // 2], offset)
                os.fsync(fd)
                crash_point("mid_append")
            _write_all(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)


def take_back(path: Path, end: int) -> None:
    """Cut a segment back to ``end``, where the index ends it: the bytes of a write that
    failed before it was indexed. They were never acknowledged; cut, they cannot be
    recovered later as if the write had succeeded."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)


def size(path: Path) -> int:
    return path.stat().st_size


def _reading(path: Path) -> BinaryIO:
    """A segment opened to read; never through a symbolic link planted in its place."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")


def read_range(path: Path, offset: int, length: int) -> bytes:
    with _reading(path) as handle:
        handle.seek(offset)
        return handle.read(length)


def read_all(path: Path, length: int | None = None) -> bytes:
    with _reading(path) as handle:
        return handle.read() if length is None else handle.read(length)


def digest(path: Path, length: int) -> str:
    """sha256 of the first ``length`` bytes of a segment."""
    hasher = hashlib.sha256()
    remaining = length
    with raw_write(f"reading segment {path.name} to seal it"), _reading(path) as handle:
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher.hexdigest()


def seal(path: Path) -> None:
    """Make a segment read-only for everyone: no byte of it changes again."""
    with raw_write(f"sealing segment {path.name}"):
        fsync_path(path)
        os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def is_read_only(path: Path) -> bool:
    return not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
