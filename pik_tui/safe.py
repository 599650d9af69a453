"""Untrusted text on screen: always a plain ``Text``, never markup, never a control byte.

Ids, sources and payloads come from producers we do not control. Textual parses plain
strings given to ``Static``, ``Label``, ``notify`` and ``DataTable`` cells as markup, so
everything that shows data goes through these helpers, which return ``rich.text.Text``
with control and format characters already replaced by visible escapes.
"""

from __future__ import annotations

from rich.text import Text

from pik.textsafe import inert

PAYLOAD_CHARS = 20_000
"""How much of a payload the event pane shows; the rest is counted, not drawn."""


def clip(value: str, width: int) -> str:
    """``value`` made inert and cut to ``width`` characters with an ellipsis."""
    safe = inert(value[: width * 8])
    return safe if len(safe) <= width else safe[: max(width - 1, 0)] + "…"


def clip_middle(value: str, width: int) -> str:
    """``value`` made inert and cut to ``width`` characters in its middle: for names,
    where two that share a long start (``orders-eu-west-1``, ``orders-us-east-1``) must
    not look the same."""
    safe = (
        inert(value)
        if len(value) <= width * 8
        else inert(value[: width * 4]) + inert(value[-width * 4 :])
    )
    if len(safe) <= width:
        return safe
    head = max(width - 1, 0) - (width - 1) // 2
    tail = (width - 1) // 2
    return safe[:head] + "…" + (safe[-tail:] if tail else "")


def cell(value: str, width: int = 60, style: str = "") -> Text:
    """One table cell of untrusted text."""
    return Text(clip(value, width), style=style, no_wrap=True, end="")


def name_cell(value: str, width: int, style: str = "") -> Text:
    """One table cell of an untrusted name (an entity id, a source, a type)."""
    return Text(clip_middle(value, width), style=style, no_wrap=True, end="")


def plain(value: str, style: str = "") -> Text:
    """Text we wrote ourselves (numbers, labels) that must still never be parsed."""
    return Text(value, style=style, end="")


def block(value: str, limit: int = PAYLOAD_CHARS) -> Text:
    """A multi-line block of untrusted text, newlines kept, capped with a note."""
    return Text(inert(value, keep_newlines=True, limit=limit), end="")


def message(value: str, limit: int = 300) -> str:
    """Untrusted text for ``notify(..., markup=False)``: inert and short."""
    return inert(value, limit=limit)
