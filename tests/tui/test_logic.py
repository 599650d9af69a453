"""Plain logic of the TUI: formatting, the heatmap, the backend adapter and `main()`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.binding import Binding

from pik.domain.instants import US_PER_DAY, US_PER_HOUR, parse_instant
from pik.domain.records import WindowCount
from pik.domain.windows import Gap
from pik.services.query import CoverageReport
from pik_tui import formats
from pik_tui.app import PikApp, main
from pik_tui.backend import LocalBackend, StoreUnavailable
from pik_tui.heatmap import (
    GAP,
    SHADES,
    HeatRow,
    gap_runs,
    heat_rows,
    legend,
    render,
    shade_levels,
    span_ending,
    summary,
    windows_fitting,
)
from pik_tui.safe import cell, clip
from pik_tui.screens.help import HelpScreen
from pik_tui.widgets.coverage import CoveragePane
from pik_tui.widgets.entities import EntityPane
from pik_tui.widgets.rates import RatesPane
from pik_tui.widgets.timeline import TimelinePane, TimelineTable

T0 = parse_instant("2025-06-01T00:00:00Z")


@pytest.mark.parametrize(
    ("lag_ms", "shown"),
    [(0, "0.0s"), (1_500, "1.5s"), (-3_000, "-3.0s"), (600_000, "10.0m"), (36_000_000, "10.0h")],
)
def test_lag_is_short_and_readable(lag_ms: int, shown: str) -> None:
    assert formats.lag(lag_ms) == shown


def test_median_lag_bucket() -> None:
    assert formats.median_bucket((0,) * 10) == "-"
    assert formats.median_bucket((0, 1, 1, 5, 0, 0, 0, 0, 0, 0)) == "<1m"


def test_cells_never_parse_markup_and_escape_controls() -> None:
    text = cell("[b]bold[/b]\x1b[2J", 40)
    assert text.plain == "[b]bold[/b]\\x1b[2J"
    assert not text.spans
    assert clip("customer-" + "9" * 40, 12) == "customer-99…"


def test_heat_rows_place_counts_and_gaps_in_their_windows() -> None:
    span = span_ending(T0 + 3 * US_PER_HOUR + 5, "hour")
    assert span.end_us == T0 + 4 * US_PER_HOUR and span.count == 72
    first = span.start_us
    report = CoverageReport(
        "hour",
        [WindowCount("a", first, 2), WindowCount("a", first + 3 * US_PER_HOUR, 9)],
        [Gap("a", first + US_PER_HOUR, first + 3 * US_PER_HOUR, 2)],
    )
    [row, empty] = heat_rows(report, ["a", "b"], span)
    assert row.counts[:4] == (2, 0, 0, 9) and row.gaps == {1, 2}
    assert gap_runs(row) == [(1, 2)]
    assert not empty.gaps and sum(empty.counts) == 0
    drawn = render([row, empty], span, "a").plain.splitlines()
    assert drawn[1].startswith("a") and GAP * 2 in drawn[1]
    assert "GAP" in legend([row, empty], span).plain  # the legend names the mark in words
    assert "2 hour(s)" in summary([row, empty], span).plain


def test_one_busy_window_does_not_pale_every_other() -> None:
    # The hour being written now holds 35 events, every other 1 to 4: shaded by where
    # each falls among the map's windows, the quiet hours still tell apart.
    span = span_ending(T0, "hour", count=8)
    rows = [HeatRow("a", (1, 2, 3, 4, 1, 2, 3, 35), frozenset())]
    assert shade_levels(rows) == {1: 0, 2: 1, 3: 2, 4: 3, 35: 3}
    cells = render(rows, span, None).plain.splitlines()[1][-8:]
    assert cells == "░▒▓█░▒▓█"
    assert "░ 1 ▒ 2 ▓ 3 █ 4-35 events per hour" in legend(rows, span).plain


def test_a_burst_of_many_distinct_counts_does_not_pale_the_history() -> None:
    # The live hour of 60 entities: 60 windows of 43 to 71 events, each count its own,
    # beside three days of 1 to 3 events an hour. The history keeps three shades.
    history = [1, 2, 3] * 23 + [1]
    rows = [HeatRow(f"e{n}", (*history, 43 + n // 2), frozenset()) for n in range(60)]
    levels = shade_levels(rows)
    assert len({levels[1], levels[2], levels[3]}) == 3
    assert levels[71] == len(SHADES) - 1


def test_a_dip_in_a_steady_feed_shows() -> None:
    span = span_ending(T0, "hour", count=6)
    steady = [HeatRow("a", (60, 60, 10, 5, 60, 60), frozenset())]
    assert render(steady, span, None).plain.splitlines()[1][-6:] == "██▒░██"
    assert render([HeatRow("b", (7, 7), frozenset())], span, None).plain.count("█") == 2
    assert f"{SHADES} events per" in legend([HeatRow("c", (0, 0), frozenset())], span).plain


def test_the_map_shows_the_newest_windows_that_fit() -> None:
    assert windows_fitting(200, "hour") == 72 and windows_fitting(200, "day") == 14
    assert windows_fitting(46, "hour") == 31  # 15 columns of labels, one an hour
    assert windows_fitting(46, "day") == 10  # three columns a day
    assert windows_fitting(10, "hour") == 6, "a few, however narrow"
    span = span_ending(T0 + 5, "hour", count=31)
    assert span.count == 31 and span.end_us == T0 + US_PER_HOUR, "ending with now"


def test_day_spans_cover_fourteen_days() -> None:
    span = span_ending(T0 + 5, "day")
    assert span.count == 14 and span.end_us == T0 + US_PER_DAY
    assert span.label(13) == "2025-06-01"


def test_the_newest_timeline_page_has_nothing_newer(demo_path: Path) -> None:
    backend = LocalBackend.open(demo_path)
    try:
        page = backend.timeline("customer-0001", None, 5)
        assert page.next is None and page.prev is not None
        older = backend.timeline("customer-0001", page.prev, 5)
        assert older.events[-1].event_time_us <= page.events[0].event_time_us
        assert older.next is not None
    finally:
        backend.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        backend.entities("", 1)


def test_every_binding_has_an_id_a_description_and_a_tooltip() -> None:
    owners = (PikApp, EntityPane, TimelinePane, TimelineTable, CoveragePane, RatesPane, HelpScreen)
    ids = []
    for owner in owners:
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.id and binding.description and binding.tooltip, binding
            ids.append(binding.id)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("kind", ["missing", "not a store", "corrupt index"])
def test_main_exits_2_with_a_message_when_the_store_cannot_be_opened(
    kind: str,
    tmp_path: Path,
    write_store: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "store"
    if kind == "not a store":
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    elif kind == "corrupt index":
        write_store(path, batch=[])
        (path / "index.sqlite3").write_bytes(b"not a database" * 100)
    assert main(["--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pik-tui: ") and len(err.splitlines()) == 1


def test_main_reads_the_store_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIK_STORE", str(tmp_path / "elsewhere"))
    assert main(["--read-only"]) == 2
    assert "elsewhere" in capsys.readouterr().err


def test_demo_refuses_a_directory_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["--demo", "--store", str(tmp_path)]) == 2
    assert "not a PIK store" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert not (tmp_path / "pik.json").exists()


def test_demo_never_feeds_a_store_that_is_not_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pik.engines.local import LocalEngine

    LocalEngine(tmp_path / "real", create=True).close()
    assert main(["--demo", "--store", str(tmp_path / "real")]) == 2
    assert "not the demo" in capsys.readouterr().err
    engine = LocalEngine(tmp_path / "real", read_only=True)
    try:
        assert engine.counts()["events"] == 0
    finally:
        engine.close()


def test_an_empty_stack_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--stack", ""])
    assert stopped.value.code == 2
    assert "--stack needs a stack's name" in capsys.readouterr().err
