"""Damage a local store's raw bytes the way a failing disk or a careless hand would."""

from __future__ import annotations

import os
from collections.abc import Callable

from pik.domain.records import EventRecord
from pik.engines.local import LocalEngine

AlterRaw = Callable[[EventRecord, bytes, bytes], None]
"""Replaces the first ``old`` in one event's raw bytes by ``new`` (the contract suite's
``alter_raw`` fixture, on either engine)."""


def alter_raw(engine: LocalEngine, record: EventRecord, old: bytes, new: bytes) -> None:
    """Replace the first ``old`` inside one event's stored bytes by ``new`` (same length),
    in its sealed-or-not segment file."""
    assert len(old) == len(new)
    path = engine.layout.segment(int(record.segment))
    data = bytearray(path.read_bytes())
    at = data.index(old, record.offset)
    data[at : at + len(old)] = new
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
