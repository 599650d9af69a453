"""Windows over event time and the gaps between them. Windows are [start, end)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pik.domain.instants import floor_to
from pik.domain.records import WindowCount


@dataclass(frozen=True, slots=True)
class Gap:
    """A run of consecutive empty windows of an entity: ``[window_start, window_end)``.

    Kept as a run, not window by window, so its size follows the data, not the range: one
    event in 1970 and one today are one gap, not half a million empty hours."""

    entity_id: str
    window_start_us: int
    window_end_us: int
    windows: int


def window_starts(start_us: int, end_us: int, step_us: int) -> range:
    """Starts of every window of width ``step_us`` that overlaps ``[start, end)``."""
    return range(floor_to(start_us, step_us), end_us, step_us)


def find_gaps(windows: Iterable[WindowCount], step_us: int) -> list[Gap]:
    """Runs of empty windows of an entity that has events both before and after them.

    ``windows`` are the non-empty windows inside the range, each entity's in time order
    (entities may interleave); a gap is every run of missing windows strictly between an
    entity's first and last one. Gaps come back by entity, then time.
    """
    gaps: list[Gap] = []
    last: dict[str, int] = {}
    for entity_id, start, _count in windows:
        previous = last.get(entity_id)
        if previous is not None and start - previous > step_us:
            first = previous + step_us
            gaps.append(Gap(entity_id, first, start, (start - first) // step_us))
        last[entity_id] = start
    gaps.sort(key=lambda gap: (gap.entity_id, gap.window_start_us))
    return gaps
