"""One SVG snapshot per main view, at 120x40, on a demo written at a fixed time.

Update after an intended change with `pytest tests/tui --snapshot-update`, then look at the
SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from textual.pilot import Pilot

from pik_tui.app import PikApp

Settle = Callable[[Pilot[None]], Awaitable[None]]
SnapCompare = Callable[..., bool]
SIZE = (120, 40)


def keys_then_settle(settle: Settle, *keys: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def snap(snap_compare: SnapCompare, app: PikApp, settle: Settle, keys: Sequence[str]) -> bool:
    return snap_compare(app, terminal_size=SIZE, run_before=keys_then_settle(settle, *keys))


def test_timeline_of_the_first_entity(
    snap_compare: SnapCompare, demo_app: PikApp, settle: Settle
) -> None:
    assert snap(snap_compare, demo_app, settle, [])


def test_event_detail(snap_compare: SnapCompare, demo_app: PikApp, settle: Settle) -> None:
    assert snap(snap_compare, demo_app, settle, ["enter", "enter"])


def test_coverage_heatmap_with_the_gap(
    snap_compare: SnapCompare, demo_app: PikApp, settle: Settle
) -> None:
    assert snap(snap_compare, demo_app, settle, ["down"] * 6 + ["3"])


def test_rates_of_the_last_hours(
    snap_compare: SnapCompare, demo_app: PikApp, settle: Settle
) -> None:
    assert snap(snap_compare, demo_app, settle, ["4"])


def test_help(snap_compare: SnapCompare, demo_app: PikApp, settle: Settle) -> None:
    assert snap(snap_compare, demo_app, settle, ["question_mark"])


def test_replay_form_for_the_page_on_screen(
    snap_compare: SnapCompare, demo_app: PikApp, settle: Settle
) -> None:
    assert snap(snap_compare, demo_app, settle, ["R"])


def test_event_id_prompt(snap_compare: SnapCompare, demo_app: PikApp, settle: Settle) -> None:
    assert snap(snap_compare, demo_app, settle, ["e", "z", "enter"])
