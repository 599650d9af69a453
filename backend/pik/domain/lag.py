"""Lag (ingest time minus event time) and its fixed histogram buckets."""

from __future__ import annotations

from bisect import bisect_right

# Upper bounds (exclusive) in milliseconds; a negative lag (event time ahead of the
# ingest clock) has a bucket of its own, and everything past a day shares the last.
LAG_BOUNDS_MS = (0, 1_000, 10_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000)
LAG_LABELS = ("<0", "<1s", "<10s", "<1m", "<5m", "<15m", "<1h", "<6h", "<24h", ">=24h")


def lag_bucket(lag_ms: int) -> int:
    """Index into :data:`LAG_LABELS` for a lag in milliseconds."""
    return bisect_right(LAG_BOUNDS_MS, lag_ms)


def is_late(lag_us: int, late_after_us: int) -> bool:
    """Whether an event that arrived ``lag_us`` after its event time counts as late: the
    one rule the rates' ``late`` counts and the timelines' marks both follow."""
    return lag_us > late_after_us
