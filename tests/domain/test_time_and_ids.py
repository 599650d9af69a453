"""Time has one canonical form; ids cannot collide by construction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pik.domain.envelope import Event, prepare
from pik.domain.instants import (
    US_PER_DAY,
    TimeFormatError,
    format_instant,
    parse_instant,
    parse_query_time,
    query_range,
)
from pik.domain.limits import DEFAULT_LIMITS

NOW = parse_instant("2026-11-27T00:00:00Z")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.000000Z"),
        ("2026-11-01t10:00:00z", "2026-11-01T10:00:00.000000Z"),
        ("2026-11-01T10:00:00.5Z", "2026-11-01T10:00:00.500000Z"),
        ("2026-11-01T10:00:00.123456789Z", "2026-11-01T10:00:00.123456Z"),
        ("2026-11-01T10:00:00+14:00", "2026-10-31T20:00:00.000000Z"),
        ("2026-11-01T10:00:00-12:00", "2026-11-01T22:00:00.000000Z"),
        ("2026-11-01T10:00:00+05:45", "2026-11-01T04:15:00.000000Z"),
        ("2026-11-01T10:00:00-00:00", "2026-11-01T10:00:00.000000Z"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),
        ("2017-01-01T05:44:60.5+05:45", "2016-12-31T23:59:59.999999Z"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("0999-06-01T00:00:00Z", "0999-06-01T00:00:00.000000Z"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    assert format_instant(parse_instant(text)) == canonical


def test_equal_instants_give_equal_keys() -> None:
    forms = [
        "2026-11-01T10:00:00Z",
        "2026-11-01T11:00:00+01:00",
        "2026-11-01T04:15:00-05:45",
        "2026-11-01T10:00:00.000000000Z",
    ]
    assert len({parse_instant(f) for f in forms}) == 1


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
)
def test_key_order_is_time_order(a: datetime, b: datetime, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    text_a = a.replace(tzinfo=zone).isoformat()
    text_b = b.replace(tzinfo=UTC).isoformat()
    key_a, key_b = format_instant(parse_instant(text_a)), format_instant(parse_instant(text_b))
    assert len(key_a) == len(key_b) == 27
    moment_a = a.replace(tzinfo=zone)
    moment_b = b.replace(tzinfo=UTC)
    assert (key_a < key_b) == (moment_a < moment_b)
    assert (key_a == key_b) == (moment_a == moment_b)


def test_relative_query_times() -> None:
    now = parse_instant("2026-11-27T12:00:00Z")
    assert parse_query_time("-2h", now) == now - 2 * 3_600_000_000
    assert parse_query_time("now-1d", now) == now - 86_400_000_000
    assert parse_query_time("2026-11-27", now) == parse_instant("2026-11-27T00:00:00Z")
    assert parse_query_time("now", now) == now
    for far in ("-800000d", "-1" + "0" * 30 + "w"):
        with pytest.raises(TimeFormatError, match="before the year 1") as refused:
            parse_query_time(far, now)
        assert refused.value.code == "time_out_of_range"
    # A query time that is none of these names every form it could have taken.
    for wrong in ("yesterday", "-3x", "+1h"):
        with pytest.raises(TimeFormatError, match=r"2026-01-31, now, .* -2h") as refused:
            parse_query_time(wrong, now)
        assert refused.value.code == "invalid_time"


def test_only_ascii_digits_make_a_time() -> None:
    # Other scripts' digits pass `\d` and int(): "٢٠٢٦" would read as 2026.
    for text in ("\u0662\u0660\u0662\u0666-11-01T10:00:00+00:00", "2026-11-01T1\uff10:00:00Z"):
        with pytest.raises(TimeFormatError):
            parse_instant(text)
    for text in ("\u0662\u0660\u0662\u0666-11-01", "-\u0662h", "now-\u0662d"):
        with pytest.raises(TimeFormatError):
            parse_query_time(text, NOW)


def test_query_ranges_default_within_the_years_of_time() -> None:
    assert query_range(None, None) == (0, parse_instant("9999-12-31T23:59:59.999999Z"))
    week = 7 * US_PER_DAY
    assert query_range(None, None, week, US_PER_DAY, now=NOW) == (NOW - week, NOW + US_PER_DAY)
    assert query_range(None, NOW, week, now=NOW + 5) == (NOW - week, NOW), "back from the end"
    year_1 = parse_instant("0001-01-01T00:00:00Z")
    assert query_range(None, year_1 + US_PER_DAY, week, now=NOW)[0] == year_1
    with pytest.raises(TimeFormatError) as reversed_:
        query_range(NOW, NOW - 1)
    assert reversed_.value.code == "invalid_range"


def _event(**fields: object) -> Event:
    document = {
        "source": "s",
        "event_type": "t",
        "entity_id": "e",
        "event_time": "2026-11-01T10:00:00Z",
        "payload": {"a": 1},
        **fields,
    }
    result = prepare(json.dumps(document).encode(), NOW, DEFAULT_LIMITS)
    assert isinstance(result, Event), result
    return result


def test_id_ignores_encoding_but_not_content() -> None:
    compact = _event()
    spaced = prepare(
        b'{ "payload" : {"a":1}, "entity_id":"e", "event_type":"t", "source":"s",'
        b' "event_time":"2026-11-01T11:00:00+01:00" }',
        NOW,
        DEFAULT_LIMITS,
    )
    assert isinstance(spaced, Event)
    assert spaced.event_id == compact.event_id
    assert _event(payload={"a": 2}).event_id != compact.event_id


def test_fields_cannot_bleed_into_each_other() -> None:
    # ("a.b", "c") and ("a", "b.c") would collide under a naive joined encoding.
    one = _event(source="a.b", event_type="c")
    two = _event(source="a", event_type="b.c")
    assert one.event_id != two.event_id


def test_idempotency_key_decides_the_id() -> None:
    first = _event(idempotency_key="k-1", payload={"a": 1})
    second = _event(idempotency_key="k-1", payload={"a": 2})
    assert first.event_id == second.event_id
    assert first.content_hash != second.content_hash
    assert _event(idempotency_key="k-2").event_id != first.event_id


@given(
    st.lists(st.text(alphabet="ab.:-_", min_size=1, max_size=6), min_size=3, max_size=3),
    st.lists(st.text(alphabet="ab.:-_", min_size=1, max_size=6), min_size=3, max_size=3),
)
def test_distinct_field_tuples_get_distinct_ids(one: list[str], two: list[str]) -> None:
    fields = ("source", "event_type", "entity_id")
    valid = all(t[0] not in ".:-" for t in (*one, *two))
    if not valid:
        return
    a = _event(**dict(zip(fields, one, strict=True)))
    b = _event(**dict(zip(fields, two, strict=True)))
    assert (a.event_id == b.event_id) == (one == two)
