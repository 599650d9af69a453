"""Whatever bytes arrive, validation answers with an event or a rejection — never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pik.domain.envelope import Event, prepare
from pik.domain.instants import parse_instant
from pik.domain.limits import DEFAULT_LIMITS
from pik.domain.rejection import Rejection

NOW = parse_instant("2026-11-27T00:00:00Z")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "source": st.text(max_size=20) | json_values,
        "event_type": st.text(max_size=20),
        "entity_id": st.text(max_size=20) | st.sampled_from(["../x", "a\x00b", "e-1"]),
        "event_time": st.text(max_size=40)
        | st.sampled_from(
            ["2026-11-01T10:00:00Z", "2016-12-31T23:59:60Z", "2026-11-01T10:00:00.123456789+05:45"]
        ),
        "payload": json_values,
        "idempotency_key": json_values,
        "extra": json_values,
    },
)


def answer(raw: bytes) -> Event | Rejection:
    result = prepare(raw, NOW, DEFAULT_LIMITS)
    assert isinstance(result, Event | Rejection)
    if isinstance(result, Rejection):
        assert result.code and result.code.islower() and result.message
    return result


@given(st.binary(max_size=512))
def test_any_bytes(raw: bytes) -> None:
    answer(raw)


@given(fields)
def test_any_envelope_shape(document: dict[str, Any]) -> None:
    try:
        raw = json.dumps(document).encode()
    except ValueError:
        return
    result = answer(raw)
    if isinstance(result, Event):
        again = answer(json.dumps(document, indent=1, sort_keys=True).encode())
        assert isinstance(again, Event) and again.event_id == result.event_id


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_valid_prefix_with_garbage(head: bytes, tail: bytes) -> None:
    good = json.dumps(
        {
            "source": "s",
            "event_type": "t",
            "entity_id": "e",
            "event_time": "2026-11-01T10:00:00Z",
            "payload": {},
        }
    ).encode()
    answer(head + good + tail)
    answer(good[: len(head)] + tail)
