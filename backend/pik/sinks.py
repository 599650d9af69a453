"""Where a replay's messages go when the target is a file, on any engine.

A target is written ``file:PATH``. The path is the operator's own argument, never built from
event data; it is made absolute when the plan is made, so a run resumed from another
directory appends to the same file.

The file is NDJSON, one message a line, only ever appended to. A batch is written under an
exclusive lock on the file and fsync'd before ``send`` returns, so two runs sending to one
file never interleave inside a line. A send cut short (a crash, a full disk) can leave a
partial last line; the next send ends it with a newline before writing, so that fragment is
one line a consumer cannot parse and skips, and the message it began is sent again whole.
"""

from __future__ import annotations

import fcntl
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from pik.domain.replay import ReplayError, invalid
from pik.engines.local.layout import fsync_dir
from pik.faults import armed, crash_point

FILE_SCHEME = "file:"
MID_SEND = "replay_mid_send"
"""Crash point: half a batch written to the file, nothing fsync'd or recorded yet."""
AFTER_SEND = "replay_after_send"
"""Crash point: a batch durable in the file, its progress not yet in the ledger."""


def _refuse(message: str) -> ReplayError:
    return invalid("target", message)


def file_target(target: str, cwd: Path | None = None) -> str:
    """``target`` (``file:PATH``) with PATH made absolute against ``cwd`` (default: the
    working directory), or a 422 naming ``target`` and what to write instead."""
    if not isinstance(target, str) or not target.startswith(FILE_SCHEME):
        raise _refuse("write the target as file:PATH (for example file:./replay.ndjson)")
    text = target[len(FILE_SCHEME) :]
    if text.startswith("//"):  # file:///abs/path, the URL spelling of an absolute path
        if not text.startswith("///"):
            raise _refuse("a file target names a local path: file:/abs/path or file:rel/path")
        text = text[2:]
    if not text:
        raise _refuse("the target's path is empty; write file:PATH")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        raise _refuse("the target's path holds a control or format character")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    if path.name in ("", ".", ".."):
        raise _refuse(f"{path} names a directory; the target must be a file inside one")
    parent = path.parent.resolve()
    if not parent.is_dir():
        raise _refuse(f"the directory {parent} does not exist; create it or choose another path")
    final = parent / path.name
    if final.is_dir():
        raise _refuse(f"{final} is a directory; name a file inside it, e.g. {final}/replay.ndjson")
    if final.exists() and not final.is_file():
        raise _refuse(f"{final} is not a regular file; name a file to append to")
    if final.is_symlink() and not final.exists():
        # Appending through it would create a file wherever it points, or fail at the send.
        raise _refuse(f"{final} is a symbolic link to nothing; name an existing file or a new path")
    return FILE_SCHEME + str(final)


def target_path(target: str) -> Path:
    """The file of a target as a plan records it (after :func:`file_target`)."""
    path = Path(target[len(FILE_SCHEME) :]) if target.startswith(FILE_SCHEME) else None
    if path is None or not path.is_absolute():
        raise _refuse(f"{target!r} is not a file target this engine recorded")
    return path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FileSink:
    """A :class:`~pik.ports.ReplaySink` appending NDJSON lines to one file."""

    max_batch = 100

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._closed = False

    def _open(self) -> int:
        """The file, opened (and created) at the first send: a run refused before it sends
        anything leaves no file behind."""
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                # The file may be new: its directory entry must be as durable as its lines.
                os.fsync(fd)
                fsync_dir(self.path.parent)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def send(self, messages: Sequence[bytes]) -> None:
        if self._closed:
            raise ValueError("the sink is closed")
        if not messages:
            return
        if any(b"\n" in m for m in messages):
            raise ValueError("a message must fit on one line")
        data = b"".join(m + b"\n" for m in messages)
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                _write_all(fd, b"\n")  # close the fragment a cut-short send left
            if armed(MID_SEND):
                _write_all(fd, data[: len(data) // 2])
                crash_point(MID_SEND)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        crash_point(AFTER_SEND)

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
