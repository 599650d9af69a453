"""Opaque timeline cursors: a position (event time, event id), a direction, and a tag of
the entity whose timeline they continue."""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

from pik.domain.instants import END_OF_TIME_US, START_OF_TIME_US

_AFTER_EVERY_ID = b"\xff" * 16
"""Sorts after every event id: a position after every event of its instant."""


def _tag(entity_id: str) -> str:
    """A short, stable tag of an entity (not a secret: it only catches a cursor pasted into
    another entity's timeline, which would silently show a part of that one)."""
    return f"{zlib.crc32(entity_id.encode('utf-8', 'surrogatepass')):08x}"


@dataclass(frozen=True, slots=True)
class Cursor:
    forward: bool
    event_time_us: int
    event_id: bytes

    @classmethod
    def starting_at(cls, at_us: int) -> Cursor:
        """A forward position just before every event at or after ``at_us``: the page read
        from it starts with the first of them, and its cursors page on both ways."""
        return cls(True, max(at_us - 1, START_OF_TIME_US), _AFTER_EVERY_ID)

    def encode(self, entity_id: str) -> str:
        text = (
            f"{'n' if self.forward else 'p'}.{self.event_time_us}.{self.event_id.hex()}"
            f".{_tag(entity_id)}"
        )
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, entity_id: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            direction, time_text, id_hex, tag = (
                base64.urlsafe_b64decode(padded.encode()).decode().split(".")
            )
            if direction not in ("n", "p") or len(id_hex) != 32 or len(time_text) > 24:
                raise ValueError(direction)
            event_time_us = int(time_text)
            if not START_OF_TIME_US <= event_time_us <= END_OF_TIME_US:
                raise ValueError(time_text)  # no event is stored there
            cursor = cls(direction == "n", event_time_us, bytes.fromhex(id_hex))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise ValueError(
                "not a cursor this command produced; copy the `next` or `prev` value exactly"
            ) from None
        if tag != _tag(entity_id):
            raise ValueError(
                "this cursor continues another entity's timeline; page this entity from its"
                " start (no --cursor), or use the entity the cursor came from"
            )
        return cursor
