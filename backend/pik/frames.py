"""The framing of raw segments, shared by both engines (local segment files, S3 objects).

A segment file is an 8-byte magic followed by frames. A frame is a 24-byte header and a body::

    magic  b"PKF1"   4
    kind   u8        1   E accepted event, D duplicate arrival, C idempotency conflict,
                         R rejection, B end of a batch, V void
    flags  u8        1   0
    pad    u16       2   0
    length u32       4   body length
    crc32  u32       4   over the body
    ingest i64       8   the engine clock at ingest, microseconds since the epoch

An E body is ``u8 origin length, origin, raw event bytes``; the raw bytes are what the index
points at and what the event's sha256 covers. D, C and R bodies are small JSON documents that
record the attempt (never the refused bytes). Every batch ends with a B frame (empty
body): a batch counts only once its B frame is complete, so a batch is in the log whole or
not at all. A V frame holds no data (its body is zeros): it stands where an event frame was
planned and then not written (on S3, an event another request claimed first), so the
frames after it keep their offsets; readers and verify skip it. A torn tail — a crash or a
full disk mid-append — fails the length or CRC check, or lacks its B frame, and is never
indexed.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SEGMENT_MAGIC = b"PIKSEG1\n"
FRAME_MAGIC = b"PKF1"
HEADER = struct.Struct("<4sBBHIIq")
HEADER_SIZE = HEADER.size

EVENT, DUPLICATE, CONFLICT, REJECTION = ord("E"), ord("D"), ord("C"), ord("R")
BATCH_END = ord("B")
VOID = ord("V")
KINDS = frozenset({EVENT, DUPLICATE, CONFLICT, REJECTION, BATCH_END, VOID})
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    offset: int
    """Where the frame starts in its segment."""
    end: int
    """Where the next frame starts."""
    ingest_time_us: int
    body: bytes

    @property
    def raw_offset(self) -> int:
        """For an E frame: where the raw event bytes start in the segment."""
        return self.offset + HEADER_SIZE + 1 + self.body[0]

    def event_parts(self) -> tuple[str, bytes]:
        """For an E frame: the origin and the raw event bytes."""
        size = self.body[0]
        return self.body[1 : 1 + size].decode("utf-8"), self.body[1 + size :]

    def record(self) -> dict[str, Any]:
        """For D, C and R frames: the attempt they record."""
        value: dict[str, Any] = json.loads(self.body)
        return value


def _frame(kind: int, ingest_time_us: int, body: bytes) -> bytes:
    return HEADER.pack(FRAME_MAGIC, kind, 0, 0, len(body), zlib.crc32(body), ingest_time_us) + body


def event_frame(ingest_time_us: int, origin: str, raw: bytes) -> tuple[bytes, int]:
    """The frame for an accepted event, and where its raw bytes start inside the frame."""
    encoded = origin.encode("utf-8")
    body = bytes((len(encoded),)) + encoded + raw
    return _frame(EVENT, ingest_time_us, body), HEADER_SIZE + 1 + len(encoded)


def append_event_frame(buffer: bytearray, ingest_time_us: int, origin: bytes, raw: bytes) -> int:
    """Append an accepted event's frame to ``buffer``; returns where its raw bytes start.

    ``origin`` is the frame's origin prefix, :func:`origin_prefix`. The same bytes as
    :func:`event_frame`, without building the frame separately first.
    """
    header_at = len(buffer)
    buffer += HEADER.pack(
        FRAME_MAGIC,
        EVENT,
        0,
        0,
        len(origin) + len(raw),
        zlib.crc32(raw, zlib.crc32(origin)),
        ingest_time_us,
    )
    buffer += origin
    buffer += raw
    return header_at + HEADER_SIZE + len(origin)


def origin_prefix(origin: str) -> bytes:
    """The start of an E body: the origin's length (one byte) and the origin."""
    encoded = origin.encode("utf-8")
    return bytes((len(encoded),)) + encoded


def record_frame(kind: int, ingest_time_us: int, record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return _frame(kind, ingest_time_us, body)


def void_frame(ingest_time_us: int, size: int) -> bytes:
    """A frame of exactly ``size`` bytes (header included) that holds no data.

    It replaces a planned frame of the same size, so every other frame keeps its offset.
    """
    if size < HEADER_SIZE:
        raise ValueError(f"a frame is at least {HEADER_SIZE} bytes, asked for {size}")
    return _frame(VOID, ingest_time_us, bytes(size - HEADER_SIZE))


def batch_end_frame(ingest_time_us: int) -> bytes:
    return _frame(BATCH_END, ingest_time_us, b"")


def scan(data: bytes | memoryview, start: int, stop: int) -> Iterator[Frame | int]:
    """Yield the valid frames in ``data[start:stop]``; on the first invalid one yield its offset.

    A yielded ``int`` means the bytes from that offset on are not a complete valid frame
    (a torn tail, or corruption): nothing from there on can be trusted.
    """
    view = memoryview(data)
    offset = start
    while offset < stop:
        if stop - offset < HEADER_SIZE:
            yield offset
            return
        magic, kind, _flags, _pad, length, crc, ingest = HEADER.unpack_from(view, offset)
        body_start = offset + HEADER_SIZE
        end = body_start + length
        if magic != FRAME_MAGIC or kind not in KINDS or length > MAX_BODY or end > stop:
            yield offset
            return
        body = bytes(view[body_start:end])
        if zlib.crc32(body) != crc:
            yield offset
            return
        yield Frame(kind, offset, end, ingest, body)
        offset = end


def resumes_after(data: bytes | memoryview, offset: int) -> int | None:
    """Where the first valid frame after ``offset`` starts, if any: bytes that break off at
    ``offset`` with valid frames after them are damage, not a torn tail (a torn write is
    the last thing in a segment; nothing valid follows it)."""
    raw = data if isinstance(data, bytes) else bytes(data)
    candidate = raw.find(FRAME_MAGIC, offset + 1)
    while candidate != -1:
        if isinstance(next(scan(raw, candidate, len(raw)), None), Frame):
            return candidate
        candidate = raw.find(FRAME_MAGIC, candidate + 1)
    return None
