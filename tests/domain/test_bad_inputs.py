"""A corpus of bad inputs, each with the exact error it must get; none of them is stored."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pik.domain.envelope import prepare
from pik.domain.instants import parse_instant
from pik.domain.limits import DEFAULT_LIMITS
from pik.domain.rejection import Rejection
from pik.engines.local import LocalEngine
from pik.services.ingest import to_arrival

NOW = parse_instant("2026-11-27T00:00:00Z")
GOOD: dict[str, Any] = {
    "source": "checkout",
    "event_type": "order.created",
    "entity_id": "customer-1",
    "event_time": "2026-11-01T10:00:00Z",
    "payload": {"amount": 1},
}


def doc(**changes: Any) -> bytes:
    document = {**GOOD, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def raw_with(field: str, literal: str) -> bytes:
    """The good envelope with one field's value replaced by raw JSON text."""
    body = json.dumps({**GOOD, field: "@@"}).encode()
    return body.replace(b'"@@"', literal.encode())


CORPUS: list[tuple[str, bytes, str, str | None]] = [
    # the document as a whole
    ("empty", b"", "empty", None),
    ("whitespace only", b"   \t ", "empty", None),
    ("not json", b"hello", "invalid_json", None),
    ("truncated object", b'{"source": "a"', "invalid_json", None),
    ("trailing garbage", doc() + b" trailing", "invalid_json", None),
    ("two documents", doc() + doc(), "invalid_json", None),
    ("single quotes", b"{'source': 'a'}", "invalid_json", None),
    ("trailing comma", doc()[:-1] + b",}", "invalid_json", None),
    ("array", b"[1, 2]", "not_an_object", None),
    ("string", b'"event"', "not_an_object", None),
    ("number", b"42", "not_an_object", None),
    ("null", b"null", "not_an_object", None),
    ("invalid utf-8", b'{"source": "\xff\xfe"}', "invalid_utf8", None),
    ("overlong utf-8", b'{"source": "\xc0\xaf"}', "invalid_utf8", None),
    ("utf-8 bom", b"\xef\xbb\xbf" + doc(), "bom_not_allowed", None),
    ("raw NUL in string", b'{"source": "a\x00b"}', "invalid_json", None),
    ("lone surrogate", raw_with("payload", '{"note": "\\ud800"}'), "lone_surrogate", None),
    ("NaN", raw_with("payload", '{"x": NaN}'), "non_finite_number", None),
    ("Infinity", raw_with("payload", '{"x": -Infinity}'), "non_finite_number", None),
    ("overflowing float", raw_with("payload", '{"x": 1e400}'), "number_out_of_range", "payload"),
    ("overflowing entity id", raw_with("entity_id", "1e400"), "number_out_of_range", "entity_id"),
    (
        "overflowing long-named field",
        raw_with("payload", "1")
        .replace(b'"payload"', b'"' + b"k" * 300 + b'"')
        .replace(b"1}", b"1e400}"),
        "number_out_of_range",
        "k" * 63 + "…",
    ),
    (
        "overflowing event time",
        raw_with("event_time", "-1e400"),
        "number_out_of_range",
        "event_time",
    ),
    (
        "5000-digit integer",
        raw_with("payload", '{"x": ' + "9" * 5000 + "}"),
        "number_out_of_range",
        None,
    ),
    (
        "10k-deep nesting",
        raw_with("payload", "[" * 10_000 + "]" * 10_000),
        "nesting_too_deep",
        None,
    ),
    ("65-deep nesting", raw_with("payload", "[" * 64 + "]" * 64), "nesting_too_deep", None),
    ("duplicate top-level key", doc()[:-1] + b',"source":"other"}', "duplicate_key", None),
    ("duplicate key in payload", raw_with("payload", '{"a": 1, "a": 2}'), "duplicate_key", None),
    ("duplicate key with spaces", raw_with("payload", '{"a" : 1, "a":2}'), "duplicate_key", None),
    (
        "duplicate key hidden by text",
        raw_with("payload", '{"a": 1, "a": "\\": x"}'),
        "duplicate_key",
        None,
    ),
    (
        "too large",
        raw_with("payload", '{"x": "' + "a" * DEFAULT_LIMITS.max_event_bytes + '"}'),
        "too_large",
        None,
    ),
    # fields
    ("unknown field", doc(extra=1), "unknown_field", "extra"),
    ("missing source", doc(source=...), "missing_field", "source"),
    ("missing entity", doc(entity_id=...), "missing_field", "entity_id"),
    ("missing time", doc(event_time=...), "missing_field", "event_time"),
    ("missing payload", doc(payload=...), "missing_field", "payload"),
    ("source not a string", doc(source=7), "invalid_type", "source"),
    ("empty entity", doc(entity_id=""), "empty_value", "entity_id"),
    ("entity too long", doc(entity_id="e" * 257), "too_long", "entity_id"),
    ("event type too long", doc(event_type="t" * 129), "too_long", "event_type"),
    ("path traversal entity", doc(entity_id="../../etc/passwd"), "invalid_characters", "entity_id"),
    ("absolute path entity", doc(entity_id="/etc/passwd"), "invalid_characters", "entity_id"),
    ("percent-encoded dots", doc(entity_id="%2e%2e"), "invalid_characters", "entity_id"),
    ("NUL in entity", doc(entity_id="a\u0000b"), "invalid_characters", "entity_id"),
    ("space in source", doc(source="check out"), "invalid_characters", "source"),
    ("cyrillic look-alike", doc(entity_id="customer-\u0430"), "invalid_characters", "entity_id"),
    ("escape sequence in type", doc(event_type="a\u001b[31m"), "invalid_characters", "event_type"),
    (
        "idempotency key with space",
        doc(idempotency_key="a b"),
        "invalid_characters",
        "idempotency_key",
    ),
    ("idempotency key number", doc(idempotency_key=5), "invalid_type", "idempotency_key"),
    ("payload string", doc(payload="text"), "invalid_type", "payload"),
    ("payload null", doc(payload=None), "invalid_type", "payload"),
    # time
    ("time not a string", doc(event_time=1700000000), "invalid_type", "event_time"),
    ("naive time", doc(event_time="2026-11-01T10:00:00"), "naive_time", "event_time"),
    ("date only", doc(event_time="2026-11-01"), "invalid_time", "event_time"),
    ("unix seconds as text", doc(event_time="1700000000"), "invalid_time", "event_time"),
    (
        "10 fractional digits",
        doc(event_time="2026-11-01T10:00:00.1234567890Z"),
        "invalid_time",
        "event_time",
    ),
    ("february 30", doc(event_time="2026-02-30T10:00:00Z"), "invalid_time", "event_time"),
    ("hour 24", doc(event_time="2026-11-01T24:00:00Z"), "invalid_time", "event_time"),
    ("offset +15:00", doc(event_time="2026-11-01T10:00:00+15:00"), "invalid_time", "event_time"),
    (
        "leap second not at day end",
        doc(event_time="2016-12-31T12:00:60Z"),
        "invalid_time",
        "event_time",
    ),
    ("year 1", doc(event_time="0001-01-01T00:00:00Z"), "time_out_of_range", "event_time"),
    ("before the epoch", doc(event_time="1969-12-31T23:59:59Z"), "time_out_of_range", "event_time"),
    ("year 9999", doc(event_time="9999-12-31T23:59:59Z"), "time_in_future", "event_time"),
    ("two days ahead", doc(event_time="2026-11-29T00:00:01Z"), "time_in_future", "event_time"),
]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40
    assert len({name for name, *_ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(
    ("raw", "code", "field"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_bad_input_gets_its_exact_error(raw: bytes, code: str, field: str | None) -> None:
    result = prepare(raw, NOW, DEFAULT_LIMITS)
    assert isinstance(result, Rejection), result
    assert (result.code, result.field) == (code, field), result.message
    assert result.message
    if field is not None:
        assert field in result.message


def test_no_bad_input_is_stored(store_path: Path) -> None:
    # The corpus's times are relative to NOW (a time two days ahead of it), so the engine
    # ingests at NOW, not at whatever day the suite runs on.
    engine = LocalEngine(store_path, clock=lambda: NOW)
    good = doc()
    raws = [raw for _, raw, _, _ in CORPUS] + [good]
    outcomes = engine.commit([to_arrival(raw, "test", NOW, engine) for raw in raws])
    assert [o.status.value for o in outcomes[:-1]] == ["rejected"] * len(CORPUS)
    assert outcomes[-1].status.value == "accepted"
    assert engine.counts()["events"] == 1
    assert engine.counts()["rejected"] == len(CORPUS)
    assert engine.verify().ok
    engine.close()


def test_the_good_envelope_is_accepted() -> None:
    assert not isinstance(prepare(doc(), NOW, DEFAULT_LIMITS), Rejection)


def test_json_error_names_a_byte_offset() -> None:
    result = prepare('{"source": "é", oops}'.encode(), NOW, DEFAULT_LIMITS)
    assert isinstance(result, Rejection)
    assert result.message.endswith("at byte 17")  # the o of oops, after a 2-byte é


def test_nesting_past_what_can_be_encoded_is_too_deep_whatever_the_limit() -> None:
    raised = replace(DEFAULT_LIMITS, max_depth=2_000, max_event_bytes=1 << 20)
    result = prepare(raw_with("payload", "[" * 300 + "]" * 300), NOW, raised)
    assert isinstance(result, Rejection)
    assert (result.code, result.message) == ("nesting_too_deep", "nesting deeper than 254 levels")
    assert not isinstance(
        prepare(raw_with("payload", "[" * 250 + "]" * 250), NOW, raised), Rejection
    )
