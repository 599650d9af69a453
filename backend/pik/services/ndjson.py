"""Reading NDJSON with bounded memory: a line longer than the event limit is never held whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pik.domain.strictjson import WHITESPACE

CHUNK = 1 << 16


class TooLong:
    """Stands in for a line that was longer than the limit; only its size is kept."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class LineReader(Protocol):
    """What NDJSON is read from: a binary file, standard input, or a range of a file."""

    def readline(self, size: int = -1, /) -> bytes: ...


def read_lines(stream: LineReader, max_bytes: int) -> Iterator[tuple[int, bytes | TooLong]]:
    """Yield ``(line_number, bytes)`` for each non-blank line, without its line ending."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 2)
        if not line:
            return
        number += 1
        if not line.endswith(b"\n") and len(line) >= max_bytes + 2:
            size = len(line)
            while True:
                rest = stream.readline(CHUNK)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, TooLong(size)
            continue
        line = line.rstrip(b"\r\n")
        if line.strip(WHITESPACE):
            yield number, line
