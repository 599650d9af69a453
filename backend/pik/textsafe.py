"""Make untrusted text inert before it reaches a terminal.

Payloads and ids come from producers we do not control. Control and format characters
(ESC, CSI, OSC 52, C1 controls, bidi overrides) are shown as visible escapes instead of
being passed to the terminal, and long text is cut with a note of what was left out.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

_VISIBLE = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNSAFE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _escape(char: str) -> str:
    code = ord(char)
    return _VISIBLE.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def inert(text: str, keep_newlines: bool = False, limit: int | None = None) -> str:
    """``text`` with every control or format character replaced by a visible escape."""
    cut = 0
    if limit is not None and len(text) > limit:
        cut = len(text.encode("utf-8", "surrogatepass")) - len(
            text[:limit].encode("utf-8", "surrogatepass")
        )
        text = text[:limit]
    if text.isprintable() or (keep_newlines and text.replace("\n", "").isprintable()):
        safe = text
    else:
        safe = "".join(
            char
            if (keep_newlines and char == "\n") or unicodedata.category(char) not in _UNSAFE
            else _escape(char)
            for char in text
        )
    return safe + (f"… {cut} more bytes" if cut else "")


def json_text(document: Any, indent: int | None = None) -> str:
    """``document`` as JSON whose text carries no control or format character raw.

    ``json.dumps`` escapes only what is below U+0020; C1 controls (a terminal's CSI and
    OSC), bidi overrides and zero-width characters would reach a terminal as they are.
    They only occur inside strings, where a ``\\uXXXX`` escape means the same character,
    so a program reading the JSON sees the same data.
    """
    text = json.dumps(document, ensure_ascii=False, indent=indent)
    if text.replace("\n", "").isprintable():
        return text
    return "".join(
        char if char == "\n" or unicodedata.category(char) not in _UNSAFE else _json_escape(char)
        for char in text
    )


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
