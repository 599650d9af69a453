"""Small, pure formatting of numbers and times for the panes."""

from __future__ import annotations

from pik.domain.instants import format_instant
from pik.domain.lag import LAG_LABELS


def instant(us: int) -> str:
    """The canonical UTC form, to the microsecond."""
    return format_instant(us)


def minute(us: int) -> str:
    return format_instant(us)[:16] + "Z"


def hour(us: int) -> str:
    return format_instant(us)[:13] + "h"


def lag(lag_ms: int) -> str:
    seconds = lag_ms / 1000
    if abs(seconds) < 120:
        return f"{seconds:.1f}s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.1f}m"
    if abs(seconds) < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def median_bucket(histogram: tuple[int, ...]) -> str:
    """The lag bucket holding the median arrival, or ``-`` when there were none."""
    total = sum(histogram)
    if not total:
        return "-"
    running = 0
    for label, count in zip(LAG_LABELS, histogram, strict=True):
        running += count
        if running * 2 >= total:
            return label
    return LAG_LABELS[-1]
