"""The raw framing both engines share: a void frame keeps every other frame's offset."""

from __future__ import annotations

import pytest

from pik import frames


def _segment(parts: list[bytes]) -> bytes:
    return frames.SEGMENT_MAGIC + b"".join(parts)


def test_a_void_frame_replaces_an_event_frame_byte_for_byte_in_length() -> None:
    first, first_at = frames.event_frame(7, "api", b'{"a":1}')
    second, _ = frames.event_frame(7, "api", b'{"b":22}')
    third, third_at = frames.event_frame(7, "api", b'{"c":333}')
    end = frames.batch_end_frame(7)
    planned = _segment([first, second, third, end])
    voided = _segment([first, frames.void_frame(7, len(second)), third, end])
    assert len(voided) == len(planned)
    found = [f for f in frames.scan(voided, len(frames.SEGMENT_MAGIC), len(voided))]
    assert all(isinstance(f, frames.Frame) for f in found)
    kinds = [f.kind for f in found if isinstance(f, frames.Frame)]
    assert kinds == [frames.EVENT, frames.VOID, frames.EVENT, frames.BATCH_END]
    events = [f for f in found if isinstance(f, frames.Frame) and f.kind == frames.EVENT]
    magic = len(frames.SEGMENT_MAGIC)
    assert [e.raw_offset for e in events] == [
        magic + first_at,
        magic + len(first) + len(second) + third_at,
    ]
    assert events[1].event_parts() == ("api", b'{"c":333}')
    assert b'{"b":22}' not in voided


def test_a_void_frame_holds_no_data_and_has_a_minimum_size() -> None:
    empty = frames.void_frame(1, frames.HEADER_SIZE)
    assert len(empty) == frames.HEADER_SIZE
    (frame,) = frames.scan(empty, 0, len(empty))
    assert isinstance(frame, frames.Frame) and frame.kind == frames.VOID and frame.body == b""
    with pytest.raises(ValueError):
        frames.void_frame(1, frames.HEADER_SIZE - 1)


def test_a_damaged_void_frame_fails_its_check() -> None:
    data = bytearray(frames.void_frame(1, 64))
    data[-1] = 1
    assert list(frames.scan(bytes(data), 0, len(data))) == [0]
