"""The replay screen's door to the ledger: closed only once no call is in flight, and
readings of a run taken in the order that moves it forward."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from pik.domain import replay as model
from pik.domain.replay import ReplayError, ReplayRun
from pik_tui.replaying import ReplayDesk, ReplayRefused, newer_reading, open_run_hint

RUN = ReplayRun(
    replay_id="a" * 32,
    plan_id="b" * 32,
    target="queue",
    status=model.RUNNING,
    total=10,
    sent=2,
    rate=100,
    confirmed_by="operator",
    started_us=1_000,
    updated_us=2_000,
)


def desk(closed: list[str], sends_here: bool = True) -> ReplayDesk:
    control: Any = object()
    return ReplayDesk(
        control,
        target="",
        targets="file:PATH",
        command="pik --store s replay",
        sends_here=sends_here,
        close=lambda: closed.append("closed"),
    )


def test_a_desk_closed_during_a_call_closes_when_the_call_ends_and_takes_no_more() -> None:
    closed: list[str] = []
    door = desk(closed)
    inside, release = threading.Event(), threading.Event()

    def slow(_: Any) -> str:
        inside.set()
        assert release.wait(5)
        return "planned"

    answers: list[str] = []
    worker = threading.Thread(target=lambda: answers.append(door.call(slow)))
    worker.start()
    assert inside.wait(5)
    door.close()
    assert closed == []  # the call in flight still uses it
    release.set()
    worker.join(5)
    assert answers == ["planned"] and closed == ["closed"]
    with pytest.raises(ReplayRefused, match="closed"):
        door.call(lambda _: "late")
    door.close()
    assert closed == ["closed"]


def test_refusals_come_out_as_what_to_show() -> None:
    door = desk([])

    def refused(_: Any) -> None:
        raise ReplayError("plan_expired", "the plan expired; preview again", 409, "plan_id")

    with pytest.raises(ReplayRefused) as caught:
        door.call(refused)
    assert str(caught.value) == "the plan expired; preview again [plan_expired]"
    assert caught.value.field == "plan_id"

    def broken(_: Any) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):  # not a refusal: shown as the bug it is
        door.call(broken)


def test_a_reading_older_than_the_run_on_screen_is_dropped() -> None:
    assert newer_reading(None, RUN) is RUN
    other = replace(RUN, replay_id="c" * 32, updated_us=1)
    assert newer_reading(RUN, other) is other
    assert newer_reading(RUN, replace(RUN, updated_us=1_999)) is None
    ended = replace(RUN, status=model.COMPLETED, sent=10, updated_us=3_000)
    assert newer_reading(ended, replace(RUN, updated_us=4_000)) is None


def test_a_cancel_asked_for_stays_asked_and_progress_never_goes_back() -> None:
    asked = replace(RUN, cancel_requested=True, sent=5)
    later = newer_reading(asked, replace(RUN, sent=3, updated_us=2_000))
    assert later is not None
    assert later.cancel_requested and later.sent == 5


def test_a_run_left_open_names_resume_and_cancel_here_and_status_on_a_stack() -> None:
    here = open_run_hint(desk([]), RUN.replay_id)
    assert f"pik --store s replay resume {RUN.replay_id}" in here
    assert f"pik --store s replay cancel {RUN.replay_id}" in here
    stack = open_run_hint(desk([], sends_here=False), RUN.replay_id)
    assert stack == f"Follow it with: pik --store s replay status {RUN.replay_id}"
