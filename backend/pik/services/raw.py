"""Stored bytes of several events at once, each checked against the sha256 recorded at ingest."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pik.domain.records import EventRecord
from pik.ports import EventStore


def verified(record: EventRecord, raw: bytes | None) -> bool:
    """Whether ``raw`` is exactly the bytes ``record`` was stored with."""
    return (
        raw is not None
        and len(raw) == record.length
        and hashlib.sha256(raw).digest() == record.sha256
    )


def stored_bytes(store: EventStore, records: Sequence[EventRecord]) -> list[bytes | None]:
    """Each record's stored bytes, in order, read together (one GET for neighbours on
    AWS); None for one whose bytes are missing. Not yet verified."""
    try:
        return list(store.read_raw_many(records))
    except FileNotFoundError:
        pass
    # Some are missing: read them one by one to tell which (a rare path, of damage).
    found: list[bytes | None] = []
    for record in records:
        try:
            found.append(store.read_raw(record))
        except FileNotFoundError:
            found.append(None)
    return found
