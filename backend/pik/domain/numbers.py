"""Whole numbers written by others: query parameters, headers, message attributes."""

from __future__ import annotations


def whole_number(text: str, digits: int = 18) -> int | None:
    """``text`` as a non-negative whole number of at most ``digits`` ASCII digits, else None.

    ``str.isdigit()`` alone admits "²" and other digits ``int()`` refuses, and any length.
    """
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None
