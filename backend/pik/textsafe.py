"""Make untrusted text inert before it reaches a terminal.

Payloads and ids come from producers we do not control. Control and format characters
(ESC, CSI, OSC 52, C1 controls, bidi overrides) are shown as visible escapes instead of
being passed to the terminal, and long text is cut with a note of what was left out.
"""

from __future__ import annotations

import unicodedata

_VISIBLE = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


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
            if (keep_newlines and char == "\n")
            or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
            else _escape(char)
            for char in text
        )
    return safe + (f"… {cut} more bytes" if cut else "")
