"""NDJSON reading holds at most one event's worth of bytes, however long a line is."""

from __future__ import annotations

import io

from pik.services.ndjson import TooLong, read_lines


class Endless(io.RawIOBase):
    """A 50 MB line with no newline, then a short one; records the largest read asked for."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.tail = b'\n{"short": 1}\n'
        self.largest_read = 0

    def readline(self, limit: int | None = -1) -> bytes:  # type: ignore[override]
        assert limit is not None and limit > 0, "reads must be bounded"
        self.largest_read = max(self.largest_read, limit)
        if self.remaining:
            n = min(limit, self.remaining)
            self.remaining -= n
            return b"x" * n
        line, _, self.tail = self.tail.partition(b"\n")
        return line + b"\n" if line or self.tail else b""


def test_a_huge_line_is_measured_not_held() -> None:
    stream = Endless(50 * 1024 * 1024)
    lines = list(read_lines(stream, max_bytes=256 * 1024))  # type: ignore[arg-type]
    assert isinstance(lines[0][1], TooLong) and lines[0][1].size > 50 * 1024 * 1024
    assert lines[1] == (2, b'{"short": 1}')
    assert stream.largest_read <= 256 * 1024 + 2


def test_blank_lines_are_skipped_and_numbering_is_kept() -> None:
    data = io.BytesIO(b'{"a":1}\n\n  \r\n{"b":2}\r\n')
    assert list(read_lines(data, 1024)) == [(1, b'{"a":1}'), (4, b'{"b":2}')]
