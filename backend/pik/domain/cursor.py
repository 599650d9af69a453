"""Opaque timeline cursors: a position (event time, event id) and a direction."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from pik.domain.instants import END_OF_TIME_US, START_OF_TIME_US


@dataclass(frozen=True, slots=True)
class Cursor:
    forward: bool
    event_time_us: int
    event_id: bytes

    def encode(self) -> str:
        text = f"{'n' if self.forward else 'p'}.{self.event_time_us}.{self.event_id.hex()}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            direction, time_text, id_hex = (
                base64.urlsafe_b64decode(padded.encode()).decode().split(".")
            )
            if direction not in ("n", "p") or len(id_hex) != 32 or len(time_text) > 24:
                raise ValueError(direction)
            event_time_us = int(time_text)
            if not START_OF_TIME_US <= event_time_us <= END_OF_TIME_US:
                raise ValueError(time_text)  # no event is stored there
            return cls(direction == "n", event_time_us, bytes.fromhex(id_hex))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise ValueError(
                "not a cursor this command produced; copy the `next` or `prev` value exactly"
            ) from None
