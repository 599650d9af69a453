"""Why an event or a request was refused: a stable code, the field, and a readable reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    """Stable snake_case reason, e.g. ``invalid_json`` or ``time_in_future``."""
    field: str | None
    """The envelope field at fault (``None`` when the whole document is)."""
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}


def preview(value: object, limit: int = 40) -> str:
    """A short repr of an identifier for a message (never used for untrusted values)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


MAX_FIELD_NAME = 64
"""The longest field name of the producer's a rejection repeats whole."""


def field_name(name: str) -> str:
    """A producer's field name as a rejection names it: whole, or cut at
    :data:`MAX_FIELD_NAME` characters, so a batch of such rejections stays bounded."""
    return name if len(name) <= MAX_FIELD_NAME else name[: MAX_FIELD_NAME - 1] + "…"


class RejectedError(ValueError):
    """Raised inside validation; carries the :class:`Rejection` out."""

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.rejection = Rejection(code, field, message)
