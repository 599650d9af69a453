"""The fast decoding path is exactly the strict one, only faster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pik.domain.limits import DEFAULT_LIMITS
from pik.domain.rejection import RejectedError
from pik.domain.strictjson import _decode_exactly, canonical, decode

scalars = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
    | st.sampled_from(['"', '\\":', ":"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=5) | st.sampled_from(['a"', "b:", '":']), inner, max_size=4
        )
    ),
    max_leaves=20,
)


def outcome(func: Any, raw: bytes) -> Any:
    try:
        return ("ok", canonical(func(raw, DEFAULT_LIMITS)))
    except RejectedError as exc:
        return ("rejected", exc.rejection.code)


@given(values, st.booleans(), st.booleans())
def test_fast_and_strict_paths_agree(value: Any, spaced: bool, ascii_only: bool) -> None:
    raw = json.dumps(
        value, ensure_ascii=ascii_only, separators=(", ", " : ") if spaced else (",", ":")
    ).encode()
    assert outcome(decode, raw) == outcome(_decode_exactly, raw)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), scalars, min_size=1, max_size=3),
    st.sampled_from(["a", "b", "c"]),
    scalars,
)
def test_a_repeated_key_is_always_found(value: dict[str, Any], key: str, extra: Any) -> None:
    body = json.dumps(value)
    raw = (body[:-1] + f", {json.dumps(key)}: {json.dumps(extra)}}}").encode()
    if key in value:
        assert outcome(decode, raw) == ("rejected", "duplicate_key")


def test_only_json_whitespace_may_surround_a_document() -> None:
    """Space, tab, CR and LF: anything str.strip() would also take (a vertical tab, a form
    feed, U+001F, NBSP, U+2028) stored with an event would make bytes no JSON reader reads."""
    assert decode(b' \t{"a": 1}\r\n', DEFAULT_LIMITS) == {"a": 1}
    for extra in ("\x0b", "\x0c", "\x1f", "\u00a0", "\u2028"):
        for raw in ('{"a": 1}' + extra, extra + '{"a": 1}', extra):
            with pytest.raises(RejectedError) as refused:
                decode(raw.encode(), DEFAULT_LIMITS)
            assert refused.value.rejection.code == "invalid_json", raw
