"""What the replay screen's form says, read into a selection and a rate (pure).

A mistake is a :class:`FormError` naming the field, so the screen can say what is wrong
and put the cursor there; nothing is asked of the store until the form reads whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from pik.domain import replay as model
from pik.domain.instants import TimeFormatError, format_instant, parse_query_time
from pik.domain.replay import ReplayError, Selection

FIELDS = {
    "entities": "Entities",
    "start": "From",
    "end": "To",
    "sources": "Sources",
    "types": "Types",
    "target": "Target",
    "rate": "Rate",
}
"""Each field's key and its label on screen."""

PLACEHOLDERS = {
    "entities": "one or more entity ids, comma-separated",
    "start": "inclusive: 2026-01-31T10:00:00Z, 2026-01-31, -2h",
    "end": "exclusive: a time, or now",
    "sources": "all (or names, comma-separated)",
    "types": "all (or names, comma-separated)",
    "rate": f"events per second, {model.MIN_RATE} to {model.MAX_RATE:,}",
}
"""What an empty field means, or takes (the target's come from the store)."""

_SELECTION_FIELDS = {
    "entity_ids": "entities",
    "start": "start",
    "end": "end",
    "sources": "sources",
    "event_types": "types",
    "target": "target",
}
"""The selection's field names (as its refusals name them) to the form's."""


class FormError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{FIELDS[field]}: {reason}")
        self.field = field


@dataclass(frozen=True)
class Draft:
    """What the form opens with."""

    entities: str = ""
    start: str = "-24h"
    end: str = "now"
    target: str = ""
    """Empty: the store's own default target, once its replays are open."""
    rate: str = str(model.DEFAULT_RATE)


def draft_for(entity_id: str | None, first_us: int | None, last_us: int | None) -> Draft:
    """The form for the entity on screen and the span of its timeline page (``[first,
    last]``, so the window ends a microsecond after the last event), when there is one."""
    if first_us is None or last_us is None:
        return Draft(entities=entity_id or "")
    return Draft(
        entities=entity_id or "",
        start=format_instant(first_us),
        end=format_instant(last_us + 1),
    )


def names(text: str) -> list[str]:
    """A comma-separated list, each name stripped, empty ones dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def instant(field: str, text: str, now_us: int) -> int:
    if not text.strip():
        raise FormError(field, "give a time: 2026-01-31T10:00:00Z, 2026-01-31, now, -2h")
    try:
        return parse_query_time(text, now_us)
    except TimeFormatError as exc:
        raise FormError(field, worded(str(exc))) from None


_INTERNAL_NAMES = {"entity_ids": "entity ids", "event_types": "types"}


def worded(text: str) -> str:
    """A refusal in the form's words: the selection's field names as the form labels them."""
    for internal, label in _INTERNAL_NAMES.items():
        text = text.replace(internal, label)
    return text


def form_field(selection_field: str | None) -> str:
    """The form's field for a field of the selection a refusal names."""
    return _SELECTION_FIELDS.get(selection_field or "", "entities")


def read_selection(values: dict[str, str], now_us: int) -> Selection:
    """The selection the form describes, or a FormError naming the first field at fault."""
    start = instant("start", values["start"], now_us)
    end = instant("end", values["end"], now_us)
    if not values["target"].strip():
        raise FormError("target", "choose where a send goes (the field's hint lists the targets)")
    try:
        return Selection.build(
            names(values["entities"]),
            start,
            end,
            values["target"].strip(),
            names(values["sources"]),
            names(values["types"]),
        )
    except ReplayError as exc:
        field = form_field(exc.field)
        raise FormError(field, worded(str(exc))) from None


def read_rate(text: str) -> int:
    digits = text.strip()
    # ASCII digits only, as everywhere in the kit: int() would take "٣" for 3.
    rate = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 9 else 0
    if not model.MIN_RATE <= rate <= model.MAX_RATE:
        raise FormError(
            "rate",
            f"events per second, a whole number from {model.MIN_RATE} to {model.MAX_RATE:,}",
        )
    return rate
