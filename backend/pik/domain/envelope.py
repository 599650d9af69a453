"""The event envelope: strict parsing of one event's bytes, validation, and its stable id.

An envelope is a JSON object with exactly these fields::

    source          who produced it            required, identifier
    event_type      what kind of event         required, identifier
    entity_id       whose timeline it is on    required, identifier
    event_time      when it happened           required, ISO-8601 with Z or an offset
    payload         the event itself           required, JSON object or array
    idempotency_key producer's dedupe key      optional

The raw bytes are kept exactly as received; everything else is derived from them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from pik.domain.instants import TimeFormatError, format_instant, parse_instant
from pik.domain.limits import Limits
from pik.domain.rejection import RejectedError, Rejection, field_name, preview
from pik.domain.strictjson import canonical, decode

FIELDS = ("source", "event_type", "entity_id", "event_time", "payload", "idempotency_key")
REQUIRED = FIELDS[:5]
_FIELD_SET = frozenset(FIELDS)
_REQUIRED_SET = frozenset(REQUIRED)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")
_ENTITY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+=,/#-]*")
_KEY = re.compile(r"[\x21-\x7e]+")
_NAME_RULE = "letters, digits and _ . : / -, starting with a letter, digit or _"
_ENTITY_RULE = "letters, digits and _ . : @ + = , / # -, starting with a letter, digit or _"
_KEY_RULE = "printable ASCII without spaces"

_ID_VERSION = "pik/1"
_KEYED_ID_VERSION = "pik/1/key"


@dataclass(slots=True)  # not frozen: built once per event on the hot path
class Event:
    """A validated event, ready to be stored."""

    event_id: bytes
    """16 bytes, shown as 32 hex characters: see :func:`make_event_id`."""
    content_hash: bytes
    """16 bytes over the canonical envelope without the idempotency key."""
    source: str
    event_type: str
    entity_id: str
    event_time_us: int
    idempotency_key: str | None
    raw: bytes
    """The event's bytes exactly as received."""


def make_event_id(event_time_us: int | None, digest: bytes) -> bytes:
    """An event id: 6 bytes of event time in milliseconds, then 10 bytes of the digest.

    Ids of events that happened close together sort close together, so the id index takes
    each batch's inserts on a few pages instead of scattering them across the whole index
    (ingest stays flat as the store grows). An idempotency key makes the event's identity
    independent of its time, so keyed ids carry six zero bytes instead of the time.
    """
    millis = 0 if event_time_us is None else max(event_time_us // 1000, 0)
    return millis.to_bytes(6, "big") + digest[:10]


def event_id_hex(event_id: bytes) -> str:
    return event_id.hex()


def parse_event_id(text: str) -> bytes:
    """Read a 32-hex-character event id; raises ``ValueError`` with a readable reason."""
    cleaned = text.strip().lower()
    if len(cleaned) != 32:
        raise ValueError(f"an event id is 32 hexadecimal characters, not {len(cleaned)}")
    if any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError("an event id is 32 hexadecimal characters: 0-9 and a-f only")
    return bytes.fromhex(cleaned)


def could_be_entity(text: str) -> bool:
    """Whether ``text`` is shaped like an entity id (any length): one that is not names
    no stored entity, so a query for it is answered empty without asking the index."""
    return _ENTITY.fullmatch(text) is not None


def entity_shape_problem(text: str) -> str | None:
    """Why no entity can have ``text`` as its id, for a query to say so; None if one can."""
    if could_be_entity(text):
        return None
    return f"no entity id is {'empty' if not text else 'like that'}: ids hold {_ENTITY_RULE}"


def could_begin_entity(prefix: str) -> bool:
    """Whether some entity id could begin with ``prefix`` (the empty prefix included)."""
    return not prefix or could_be_entity(prefix)


def _identifier(
    doc: dict[str, Any], field: str, pattern: re.Pattern[str], rule: str, limit: int
) -> str:
    value = doc[field]
    if not isinstance(value, str):
        raise RejectedError("invalid_type", field, f"{field} must be a string")
    if not value:
        raise RejectedError("empty_value", field, f"{field} must not be empty")
    if len(value) > limit:
        raise RejectedError(
            "too_long", field, f"{field} is {len(value)} characters; the limit is {limit}"
        )
    if pattern.fullmatch(value) is None:
        raise RejectedError(
            # The value is not echoed: a rejected field may hold anything, secrets included.
            "invalid_characters",
            field,
            f"{field} may contain only {rule}",
        )
    return value


def _digest(parts: list[Any]) -> bytes:
    # A JSON array of strings is an injective encoding: ("a|b","c") and ("a","b|c") differ.
    return hashlib.sha256(canonical(parts)).digest()[:16]


def validate(raw: bytes, now_us: int, limits: Limits) -> Event:
    """Turn one event's bytes into an :class:`Event`, or raise :class:`RejectedError`."""
    doc = decode(raw, limits)
    if not isinstance(doc, dict):
        raise RejectedError(
            "not_an_object", None, f"an event is a JSON object, got {type(doc).__name__}"
        )
    if not _FIELD_SET.issuperset(doc):
        for field in doc:
            if field not in FIELDS:
                raise RejectedError(
                    "unknown_field",
                    field_name(field),
                    f"unknown field {preview(field)}; an event has {', '.join(FIELDS)}",
                )
    if not _REQUIRED_SET.issubset(doc):
        for field in REQUIRED:
            if field not in doc:
                raise RejectedError("missing_field", field, f"{field} is required")
    source = doc["source"]
    event_type = doc["event_type"]
    entity_id = doc["entity_id"]
    # The usual case in one test; anything else goes through the checks that name the fault.
    if not (
        type(source) is str
        and type(event_type) is str
        and type(entity_id) is str
        and 0 < len(source) <= limits.max_source_chars
        and 0 < len(event_type) <= limits.max_event_type_chars
        and 0 < len(entity_id) <= limits.max_entity_id_chars
        and _NAME.fullmatch(source)
        and _NAME.fullmatch(event_type)
        and _ENTITY.fullmatch(entity_id)
    ):
        source = _identifier(doc, "source", _NAME, _NAME_RULE, limits.max_source_chars)
        event_type = _identifier(doc, "event_type", _NAME, _NAME_RULE, limits.max_event_type_chars)
        entity_id = _identifier(doc, "entity_id", _ENTITY, _ENTITY_RULE, limits.max_entity_id_chars)
    key: str | None = None
    if "idempotency_key" in doc and doc["idempotency_key"] is not None:
        key = _identifier(doc, "idempotency_key", _KEY, _KEY_RULE, limits.max_idempotency_key_chars)
    event_time_us = _event_time(doc["event_time"], now_us, limits)
    payload = doc["payload"]
    if not isinstance(payload, dict | list):
        raise RejectedError("invalid_type", "payload", "payload must be a JSON object or array")
    content_hash = _digest([_ID_VERSION, source, event_type, entity_id, event_time_us, payload])
    if key is None:
        event_id = make_event_id(event_time_us, content_hash)
    else:
        event_id = make_event_id(
            None, _digest([_KEYED_ID_VERSION, source, event_type, entity_id, key])
        )
    return Event(event_id, content_hash, source, event_type, entity_id, event_time_us, key, raw)


def _event_time(value: Any, now_us: int, limits: Limits) -> int:
    if not isinstance(value, str):
        raise RejectedError("invalid_type", "event_time", "event_time must be an ISO-8601 string")
    try:
        instant = parse_instant(value)
    except TimeFormatError as exc:
        raise RejectedError(exc.code, "event_time", f"event_time: {exc}") from None
    if instant < limits.earliest_event_time_us:
        raise RejectedError(
            "time_out_of_range",
            "event_time",
            f"event_time is before {format_instant(limits.earliest_event_time_us)}",
        )
    if instant > now_us + limits.max_future_us:
        raise RejectedError(
            "time_in_future",
            "event_time",
            f"event_time {format_instant(instant)} is more than "
            f"{limits.max_future_us // 3_600_000_000} h ahead of the ingest clock",
        )
    return instant


def prepare(raw: bytes, now_us: int, limits: Limits) -> Event | Rejection:
    """Validate one event; a rejection is returned, never raised."""
    try:
        return validate(raw, now_us, limits)
    except RejectedError as exc:
        return exc.rejection
