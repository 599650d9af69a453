"""Windows over event time and the gaps between them. Windows are [start, end)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pik.domain.instants import floor_to
from pik.domain.records import WindowCount


@dataclass(frozen=True, slots=True)
class Gap:
    entity_id: str
    window_start_us: int


def window_starts(start_us: int, end_us: int, step_us: int) -> range:
    """Starts of every window of width ``step_us`` that overlaps ``[start, end)``."""
    return range(floor_to(start_us, step_us), end_us, step_us)


def find_gaps(windows: Iterable[WindowCount], step_us: int) -> list[Gap]:
    """Empty windows of an entity that has events both before and after them.

    ``windows`` are the non-empty windows inside the range, ordered by entity then time;
    a gap is every missing window strictly between an entity's first and last one.
    """
    gaps: list[Gap] = []
    previous: WindowCount | None = None
    for window in windows:
        if previous is not None and previous.entity_id == window.entity_id:
            missing = previous.window_start_us + step_us
            while missing < window.window_start_us:
                gaps.append(Gap(window.entity_id, missing))
                missing += step_us
        previous = window
    return gaps
