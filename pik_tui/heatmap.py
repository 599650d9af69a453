"""The coverage heatmap: events per entity per window, with gaps marked by a character.

Pure functions from a coverage report to rows and to ``rich.text.Text``; no Textual here.
A gap is an empty window between two busy ones of the same entity; it is drawn as a cross
and named in words below the map, so it never depends on colour alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from rich.text import Text

from pik.domain.instants import US_PER_DAY, US_PER_HOUR, floor_to, format_instant
from pik.services.query import CoverageReport
from pik_tui.safe import clip, clip_middle

SPANS = {"hour": (US_PER_HOUR, 72), "day": (US_PER_DAY, 14)}
"""granularity -> (window width, how many windows are shown)."""
CELL_WIDTH = {"hour": 1, "day": 3}
LABEL_WIDTH = 14
SHADES = "░▒▓█"
EMPTY = "·"
GAP = "\u00d7"


@dataclass(frozen=True, slots=True)
class Span:
    granularity: str
    start_us: int
    end_us: int
    step_us: int

    @property
    def count(self) -> int:
        return (self.end_us - self.start_us) // self.step_us

    def label(self, index: int) -> str:
        text = format_instant(self.start_us + index * self.step_us)
        return text[:13] + "h" if self.granularity == "hour" else text[:10]


MIN_WINDOWS = 6


def windows_fitting(width: int, granularity: str) -> int:
    """How many windows a map ``width`` cells wide shows whole, beside its labels: all of
    :data:`SPANS`' count when they fit, else the newest that do (never fewer than a few)."""
    room = (width - LABEL_WIDTH - 1) // CELL_WIDTH[granularity]
    return max(MIN_WINDOWS, min(SPANS[granularity][1], room))


def span_ending(
    now_us: int, granularity: str, windows_back: int = 0, count: int | None = None
) -> Span:
    """The windows shown: the last ``count`` ones up to the one holding ``now``."""
    step, most = SPANS[granularity]
    count = most if count is None else count
    end = floor_to(now_us, step) + step - windows_back * step
    return Span(granularity, end - count * step, end, step)


@dataclass(frozen=True, slots=True)
class HeatRow:
    entity_id: str
    counts: tuple[int, ...]
    gaps: frozenset[int]
    """Indexes of windows that are gaps."""


def heat_rows(report: CoverageReport, entity_ids: list[str], span: Span) -> list[HeatRow]:
    counts: dict[str, list[int]] = {e: [0] * span.count for e in entity_ids}
    gaps: dict[str, set[int]] = {e: set() for e in entity_ids}
    for window in report.windows:
        index = (window.window_start_us - span.start_us) // span.step_us
        if window.entity_id in counts and 0 <= index < span.count:
            counts[window.entity_id][index] += window.count
    for gap in report.gaps:
        if gap.entity_id in gaps:  # only the part of a run the span shows
            first = max(0, (gap.window_start_us - span.start_us) // span.step_us)
            last = min(span.count, (gap.window_end_us - span.start_us) // span.step_us)
            gaps[gap.entity_id].update(range(first, last))
    return [HeatRow(e, tuple(counts[e]), frozenset(gaps[e])) for e in entity_ids]


def gap_runs(row: HeatRow) -> list[tuple[int, int]]:
    """Consecutive gap windows as (first index, length)."""
    runs: list[tuple[int, int]] = []
    for index in sorted(row.gaps):
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


def _ruler(span: Span, width: int) -> str:
    line = [" "] * (span.count * width)
    for index in range(span.count):
        start = span.start_us + index * span.step_us
        first_of_day = span.granularity == "hour" and start % US_PER_DAY == 0
        if first_of_day or (span.granularity == "day" and index % 7 == 0):
            text = "|" + format_instant(start)[5:10]
            at = index * width
            if all(c == " " for c in line[at : at + len(text)]):
                line[at : at + len(text)] = list(text)[: len(line) - at]
    return "".join(line)


def shade_levels(rows: list[HeatRow]) -> dict[int, int]:
    """Which shade (an index into :data:`SHADES`) each count of the map is drawn in.

    By where a count's windows fall among all the map's busy windows (quarters of them),
    not in proportion to the busiest: a burst (the hour being written now, say) is a few
    windows however many distinct counts it holds, so it does not pale the rest; a dip in
    a steady feed shows; the busiest window is always the darkest."""
    counts = sorted(count for row in rows for count in row.counts if count)
    top = len(SHADES) - 1
    levels: dict[int, int] = {}
    for count in sorted(set(counts)):
        below = bisect_left(counts, count)
        share = (below + (bisect_right(counts, count) - below) / 2) / len(counts)
        levels[count] = min(top, int(share * len(SHADES)))
    if counts:
        levels[counts[-1]] = top
    return levels


def _legend(levels: dict[int, int]) -> str:
    spans: dict[int, list[int]] = {}
    for count, level in levels.items():
        spans.setdefault(level, []).append(count)
    parts = []
    for level in sorted(spans):
        low, high = min(spans[level]), max(spans[level])
        parts.append(f"{SHADES[level]} {low}" if low == high else f"{SHADES[level]} {low}-{high}")
    return " ".join(parts) if parts else SHADES


def render(rows: list[HeatRow], span: Span, selected: str | None) -> Text:
    width = CELL_WIDTH[span.granularity]
    levels = shade_levels(rows)
    text = Text(no_wrap=True, end="")
    text.append(" " * (LABEL_WIDTH + 1) + _ruler(span, width) + "\n", style="dim")
    for row in rows:
        mark = "▶" if row.entity_id == selected else " "
        style = "bold reverse" if row.entity_id == selected else ""
        text.append(clip_middle(row.entity_id, LABEL_WIDTH).ljust(LABEL_WIDTH), style=style)
        text.append(mark)
        for index, count in enumerate(row.counts):
            if index in row.gaps:
                text.append(GAP * width, style="bold red")
            elif count == 0:
                text.append(EMPTY * width, style="dim")
            else:
                text.append(SHADES[levels[count]] * width, style="green")
        text.append("\n")
    text.rstrip()
    return text


def legend(rows: list[HeatRow], span: Span) -> Text:
    """What each mark of the map means: kept apart from the map, so it wraps to the pane
    instead of widening the map past it."""
    return Text(
        f"{EMPTY} no events   {_legend(shade_levels(rows))} events per {span.granularity}   "
        f"{GAP} GAP: no events between busy {span.granularity}s",
        style="italic",
        end="",
    )


def summary(rows: list[HeatRow], span: Span) -> Text:
    text = Text(end="")
    gappy = [r for r in rows if r.gaps]
    total = sum(len(r.gaps) for r in rows)
    unit = span.granularity
    if not gappy:
        text.append(f"no gaps in {len(rows)} entities over these {span.count} {unit}s")
        return text
    text.append(
        f"{total} {unit}(s) of GAP in {len(gappy)} entit{'y' if len(gappy) == 1 else 'ies'}:"
    )
    for row in gappy:
        for first, length in gap_runs(row):
            last = first + length - 1
            text.append("\n  GAP ", style="bold red")
            text.append(clip(row.entity_id, 60))
            text.append(f"  {length} {unit}(s): {span.label(first)} … {span.label(last)}")
    return text
