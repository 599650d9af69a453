"""What happened to each event of an ingest request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pik.domain.rejection import Rejection


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    event_id: bytes | None = None
    lag_ms: int | None = None
    rejection: Rejection | None = None
