"""Small, pure formatting of numbers and times for the panes."""

from __future__ import annotations

from pik.domain.instants import format_instant
from pik.formatting import lag, median_bucket

__all__ = ["hour", "instant", "lag", "median_bucket", "minute"]


def instant(us: int) -> str:
    """The canonical UTC form, to the microsecond."""
    return format_instant(us)


def minute(us: int) -> str:
    return format_instant(us)[:16] + "Z"


def hour(us: int) -> str:
    return format_instant(us)[:13] + "h"
