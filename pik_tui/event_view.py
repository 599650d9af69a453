"""What the event pane shows, prepared off the UI thread: fields, attempts and payload."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pik.documents import event_document
from pik.services.query import EventDetail
from pik.textsafe import inert
from pik_tui import formats
from pik_tui.safe import PAYLOAD_CHARS

FIELD_CHARS = 200
VERIFIED = "VERIFIED"
NOT_VERIFIED = "NOT VERIFIED"


@dataclass(frozen=True, slots=True)
class EventView:
    event_id: bytes
    entity_id: str
    event_time_us: int
    verified: bool
    fields: list[tuple[str, str]]
    """(name, value) pairs, values already inert and capped."""
    attempts: list[str]
    payload: str
    """Pretty JSON (or the raw text when it is not JSON), inert, capped with a note."""

    @property
    def verdict(self) -> str:
        return VERIFIED if self.verified else NOT_VERIFIED


def _value(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return inert(text, limit=FIELD_CHARS)


def _pretty(document: dict[str, Any], limit: int, command: str) -> str:
    payload = document["payload"]
    if payload is None:
        raw = document["raw"]
        if raw is None:
            return "(the stored bytes could not be read)"
        return _capped(raw, limit, f"{command} --json event {document['event_id']}")
    try:
        text = json.dumps(payload, indent=2, ensure_ascii=False)
    except (RecursionError, ValueError):
        text = document["raw"] or ""
    return _capped(text, limit, f"{command} --json event {document['event_id']}")


def _capped(text: str, limit: int, whole: str) -> str:
    """``text`` made inert and cut at ``limit``; a cut one says where the whole of it is."""
    shown = inert(text, keep_newlines=True, limit=limit)
    if len(text) <= limit:
        return shown
    return f"{shown}\n(the whole event: {whole})"


def build_event_view(
    detail: EventDetail, limit: int = PAYLOAD_CHARS, command: str = "pik"
) -> EventView:
    """Turn a stored event into display-ready, inert strings (may be slow: call in a worker);
    ``command`` is the `pik` command line that reads the same store, for hints to name."""
    document = event_document(detail)
    record = detail.record
    if detail.verified:
        verdict = f"{VERIFIED} (the stored bytes match the sha256 recorded at ingest)"
    elif detail.read_error:
        verdict = f"{NOT_VERIFIED} (the stored bytes cannot be read whole; run `{command} verify`)"
    else:
        verdict = f"{NOT_VERIFIED} (the stored bytes do not match; run `{command} verify`)"
    fields: list[tuple[str, str]] = [
        ("event id", document["event_id"]),
        ("verified", verdict),
        ("entity", _value(record.entity_id)),
        ("source", _value(record.source)),
        ("type", _value(record.event_type)),
        ("event time", document["event_time"]),
        ("ingest time", document["ingest_time"]),
        ("lag", formats.lag(record.lag_ms)),
        ("idempotency key", _value(record.idempotency_key)),
        ("origin", _value(record.origin)),
        ("duplicates", str(record.duplicate_count)),
        ("conflicts", str(record.conflict_count)),
        ("last seen", document["last_seen"]),
        ("sha256", document["sha256"]),
        ("location", f"segment {_value(record.segment)} @ {record.offset} (+{record.length} B)"),
    ]
    if detail.read_error:
        fields.append(("read error", _value(detail.read_error)))
    attempts = [
        inert(
            f"{a['kind']} x{a['count']} via {a['origin']} ({a['first_seen']} … {a['last_seen']})",
            limit=FIELD_CHARS,
        )
        for a in document["attempts"]
    ]
    return EventView(
        record.event_id,
        record.entity_id,
        record.event_time_us,
        detail.verified,
        fields,
        attempts,
        _pretty(document, limit, command),
    )
