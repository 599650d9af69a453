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
import json
import re
from dataclasses import dataclass
from typing import Any

from pik.domain.instants import TimeFormatError, format_instant, parse_instant
from pik.domain.limits import Limits
from pik.domain.rejection import RejectedError, Rejection

FIELDS = ("source", "event_type", "entity_id", "event_time", "payload", "idempotency_key")
REQUIRED = FIELDS[:5]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")
_ENTITY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+=,/#-]*")
_KEY = re.compile(r"[\x21-\x7e]+")
_NAME_RULE = "letters, digits and _ . : / -, starting with a letter, digit or _"
_ENTITY_RULE = "letters, digits and _ . : @ + = , / # -, starting with a letter, digit or _"
_KEY_RULE = "printable ASCII without spaces"

_BOM = b"\xef\xbb\xbf"
_ID_VERSION = "pik/1"
_KEYED_ID_VERSION = "pik/1/key"


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event, ready to be stored."""

    event_id: bytes
    """16 bytes; shown as 32 hex characters."""
    content_hash: bytes
    """16 bytes over the canonical envelope without the idempotency key."""
    source: str
    event_type: str
    entity_id: str
    event_time_us: int
    idempotency_key: str | None
    raw: bytes
    """The event's bytes exactly as received."""


def event_id_hex(event_id: bytes) -> str:
    return event_id.hex()


def parse_event_id(text: str) -> bytes:
    """Read a 32-hex-character event id; raises ``ValueError`` with a readable reason."""
    cleaned = text.strip().lower()
    if len(cleaned) != 32 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError(f"an event id is 32 hexadecimal characters, got {_preview(text)}")
    return bytes.fromhex(cleaned)


def _preview(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reject_constant(name: str) -> Any:
    raise RejectedError("non_finite_number", None, f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RejectedError(
                    "duplicate_key", None, f"key {_preview(key)} appears twice in one object"
                )
            seen.add(key)
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def decode_json(raw: bytes, limits: Limits) -> Any:
    """Strictly decode one JSON document, or raise :class:`RejectedError`."""
    if len(raw) > limits.max_event_bytes:
        raise RejectedError(
            "too_large", None, f"event is {len(raw)} bytes; the limit is {limits.max_event_bytes}"
        )
    if not raw.strip():
        raise RejectedError("empty", None, "the event is empty")
    if raw.startswith(_BOM):
        raise RejectedError("bom_not_allowed", None, "a UTF-8 byte order mark is not allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedError(
            "invalid_utf8", None, f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None
    # A nesting bomb is refused before the recursive decoder sees it.
    brackets = raw.count(b"[") + raw.count(b"{")
    try:
        value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        raise RejectedError("invalid_json", None, f"{exc.msg} at byte {offset}") from None
    except RejectedError:
        raise
    except RecursionError:
        raise RejectedError(
            "nesting_too_deep", None, f"nesting deeper than {limits.max_depth} levels"
        ) from None
    except ValueError as exc:  # Python's int-digits guard on enormous integers
        raise RejectedError("number_out_of_range", None, str(exc).split(";")[0]) from None
    if text[end:].strip():
        offset = len(text[:end].encode("utf-8"))
        raise RejectedError(
            "invalid_json", None, f"unexpected data after the JSON value at byte {offset}"
        )
    if brackets > limits.max_depth and _depth(value) > limits.max_depth:
        raise RejectedError(
            "nesting_too_deep", None, f"nesting deeper than {limits.max_depth} levels"
        )
    return value


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
            "invalid_characters", field, f"{field} may contain only {rule}; got {_preview(value)}"
        )
    return value


def _canonical(value: Any) -> bytes:
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedError(
            "lone_surrogate", None, "a string holds an unpaired UTF-16 surrogate escape"
        ) from None
    except ValueError:
        raise RejectedError(
            "number_out_of_range", "payload", "payload holds a number beyond the float range"
        ) from None


def _digest(parts: list[Any]) -> bytes:
    # A JSON array of strings is an injective encoding: ("a|b","c") and ("a","b|c") differ.
    return hashlib.sha256(_canonical(parts)).digest()[:16]


def validate(raw: bytes, now_us: int, limits: Limits) -> Event:
    """Turn one event's bytes into an :class:`Event`, or raise :class:`RejectedError`."""
    doc = decode_json(raw, limits)
    if not isinstance(doc, dict):
        raise RejectedError(
            "not_an_object", None, f"an event is a JSON object, got {type(doc).__name__}"
        )
    for field in doc:
        if field not in FIELDS:
            raise RejectedError(
                "unknown_field",
                field,
                f"unknown field {_preview(field)}; an event has {', '.join(FIELDS)}",
            )
    for field in REQUIRED:
        if field not in doc:
            raise RejectedError("missing_field", field, f"{field} is required")
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
    content = [_ID_VERSION, source, event_type, entity_id, format_instant(event_time_us), payload]
    content_hash = _digest(content)
    event_id = (
        content_hash
        if key is None
        else _digest([_KEYED_ID_VERSION, source, event_type, entity_id, key])
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
