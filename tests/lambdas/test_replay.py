"""The replay function's own decisions: what counts as a work item, when a run pauses, how
long a failed item waits. Its work on a stack (sending, pausing, retrying) is tested on the
template's stack in moto, tests/aws/test_replay.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lambda_context import FakeContext

from pik.lambdas.replay import PAUSE_WITH_MS_LEFT, _Invocation, replay_id_of, retry_delay

REPLAY_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps({"replay_id": REPLAY_ID}), REPLAY_ID),
        (json.dumps({"replay_id": REPLAY_ID, "extra": 1}), REPLAY_ID),
        (json.dumps({"replay_id": REPLAY_ID.upper()}), None),
        (json.dumps({"replay_id": "../" + REPLAY_ID[3:]}), None),
        (json.dumps({"replay_id": REPLAY_ID + "0"}), None),
        (json.dumps({"replay_id": 7}), None),
        (json.dumps([REPLAY_ID]), None),
        ("not json", None),
        ("[" * 100_000, None),  # deeper than the interpreter's stack
        ("", None),
        (None, None),
    ],
)
def test_only_a_well_formed_work_item_names_a_run(body: Any, expected: str | None) -> None:
    assert replay_id_of(body) == expected


@pytest.mark.parametrize(
    ("count", "delay"),
    [("1", 60), ("2", 120), ("3", 240), ("4", 480), ("9", 480), ("x", 60), ("²", 60)],
)
def test_a_failed_work_item_waits_longer_each_time(count: str, delay: int) -> None:
    assert retry_delay({"attributes": {"ApproximateReceiveCount": count}}) == delay
    assert retry_delay({}) == 60


def test_a_run_pauses_with_less_than_a_minute_left() -> None:
    invocation = _Invocation()
    assert not invocation.near_deadline()  # outside an invocation
    invocation.context = FakeContext(remaining_ms=PAUSE_WITH_MS_LEFT)  # type: ignore[assignment]
    assert not invocation.near_deadline()
    invocation.context = FakeContext(remaining_ms=PAUSE_WITH_MS_LEFT - 1)  # type: ignore[assignment]
    assert invocation.near_deadline()
