"""Short human forms of lags and lag histograms, shared by the CLI and the TUI."""

from __future__ import annotations

from pik.domain.lag import LAG_LABELS


def lag(lag_ms: int) -> str:
    """``1.5s``, ``12.0m``, ``3.2h``, ``2.0d``: the unit that keeps the number short."""
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
