"""Strict JSON: decode one event's bytes with exact errors, and encode canonically.

Decoding takes a fast path (orjson) when it is provably equivalent to the strict one, and
otherwise the standard library with hooks that name the exact problem. Either way the
result is the same value; only the speed differs.

Canonical encoding (the input of every event id) is orjson with sorted keys. It is only
ever computed one way, so an id never depends on which decoding path ran.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from pik.domain.limits import Limits
from pik.domain.rejection import RejectedError, field_name, preview

_BOM = b"\xef\xbb\xbf"
# Every object key is a string followed by optional white space and a colon, so this
# counts every key (and perhaps text inside strings): equal to the decoded key count,
# it proves no key was repeated.
_KEY_COLON = re.compile(rb'"\s*:')
# orjson turns integers beyond 64 bits into floats; a float this large may be one.
_INTEGER_RANGE = 2.0**63
_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise RejectedError("non_finite_number", None, f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RejectedError(
                    "duplicate_key", None, f"key {preview(key)} appears twice in one object"
                )
            seen.add(key)
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)


def _walk(value: Any) -> tuple[int, int, bool]:
    """(object keys, deepest nesting, every float finite and below 2**63) of a value."""
    keys, deepest, plain = 0, 0, True
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if level > deepest:
            deepest = level
        if type(node) is dict:
            keys += len(node)
            children: Any = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, level + 1))
            # NaN and the infinities fail both comparisons too.
            elif kind is float and not -_INTEGER_RANGE < child < _INTEGER_RANGE:
                plain = False
    return keys, deepest, plain


def _is_own_encoding(value: Any, raw: bytes) -> bool:
    """True when ``raw`` is byte for byte orjson's compact encoding of ``value``.

    That encoding writes every key of an object once, so no key was repeated in ``raw``.
    Compact JSON from most producers is exactly this, and the check costs a fifth of
    counting the keys in the text.
    """
    try:
        return orjson.dumps(value) == raw
    except orjson.JSONEncodeError:
        return False


def _too_deep(limits: Limits) -> RejectedError:
    return RejectedError("nesting_too_deep", None, f"nesting deeper than {limits.max_depth} levels")


WHITESPACE = b" \t\n\r"
"""JSON's whitespace, all of it: str.strip() and bytes.strip() take more (\\v, \\f, and for
str U+001C-U+001F, NBSP, U+2028...), which would let an event carry bytes no JSON reader
accepts."""


_WHITESPACE_TEXT = WHITESPACE.decode()


def decode(raw: bytes, limits: Limits) -> Any:
    """Strictly decode one JSON document, or raise :class:`RejectedError`."""
    if len(raw) > limits.max_event_bytes:
        raise RejectedError(
            "too_large", None, f"event is {len(raw)} bytes; the limit is {limits.max_event_bytes}"
        )
    if not raw.strip(WHITESPACE):
        raise RejectedError("empty", None, "the event is empty")
    if raw.startswith(_BOM):
        raise RejectedError("bom_not_allowed", None, "a UTF-8 byte order mark is not allowed")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = _MISSING
    if value is not _MISSING:
        keys, depth, plain = _walk(value) if isinstance(value, dict | list) else (0, 0, True)
        if plain and (_is_own_encoding(value, raw) or keys == len(_KEY_COLON.findall(raw))):
            if depth > limits.max_depth:
                raise _too_deep(limits)
            return value
    return _decode_exactly(raw, limits)


def _decode_exactly(raw: bytes, limits: Limits) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedError(
            "invalid_utf8", None, f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None
    # A nesting bomb is refused before the recursive decoder sees it.
    if raw.count(b"[") + raw.count(b"{") > 4 * limits.max_depth and _bracket_depth(raw) > (
        limits.max_depth
    ):
        raise _too_deep(limits)
    try:
        value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip(_WHITESPACE_TEXT)))
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        raise RejectedError("invalid_json", None, f"{exc.msg} at byte {offset}") from None
    except RejectedError:
        raise
    except RecursionError:
        raise _too_deep(limits) from None
    except ValueError as exc:  # Python's int-digits guard on enormous integers
        raise RejectedError("number_out_of_range", None, str(exc).split(";")[0]) from None
    if text[end:].strip(_WHITESPACE_TEXT):
        offset = len(text[:end].encode("utf-8"))
        raise RejectedError(
            "invalid_json", None, f"unexpected data after the JSON value at byte {offset}"
        )
    if isinstance(value, dict | list):
        _, depth, _ = _walk(value)
        if depth > limits.max_depth:
            raise _too_deep(limits)
        beyond = _non_finite_field(value)
        if beyond is not None:
            field = field_name(beyond) if beyond else None
            raise RejectedError(
                "number_out_of_range",
                field,
                f"{field or 'the document'} holds a number beyond the float range",
            )
    return value


def _non_finite_field(value: dict[str, Any] | list[Any]) -> str | None:
    """The top-level field holding a number beyond the float range (``""`` when the
    document is an array), or None when every number is finite."""
    if isinstance(value, list):
        return "" if _has_non_finite(value) else None
    for name, child in value.items():
        if _has_non_finite([child]):
            return name
    return None


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append(child)
            elif isinstance(child, float) and not math.isfinite(child):
                return True
    return False


def _bracket_depth(raw: bytes) -> int:
    """Nesting depth by brackets outside strings, without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


MAX_ENCODABLE_DEPTH = 254
"""The deepest nesting the canonical encoding can write: a store whose depth limit is
raised past it still refuses deeper events, for that reason."""


def canonical(value: Any) -> bytes:
    """The one canonical encoding: compact, keys sorted, integers within 64 bits."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        if "surrogates" in str(exc):
            raise RejectedError(
                "lone_surrogate", None, "a string holds an unpaired UTF-16 surrogate escape"
            ) from None
        if "Recursion" in str(exc):  # orjson encodes 254 levels at most, whatever the limit
            raise RejectedError(
                "nesting_too_deep", None, f"nesting deeper than {MAX_ENCODABLE_DEPTH} levels"
            ) from None
        raise RejectedError(
            "number_out_of_range", "payload", "payload holds an integer beyond 64 bits"
        ) from None
