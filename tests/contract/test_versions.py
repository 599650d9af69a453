"""The processor over both engines: versions computed from stored events, written once each.

On the AWS engine the versions are items of the template's index table (in moto), read
strongly consistently; the window's events come from the ``timeline`` index, which
DynamoDB keeps eventually consistent (moto applies it at once; see this suite's conftest).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pik.domain.instants import parse_instant
from pik.domain.versions import AggregateSpec, diff
from pik.ports import EventStore, VersionStore
from pik.services.ingest import ingest_batch
from pik.services.processor import MessageError, process_messages, window_events

MakeEvent = Callable[..., bytes]
SPEC = AggregateSpec("hour", "/amount")
HOUR = "2026-11-01T10"
WINDOW = parse_instant(f"{HOUR}:00:00Z")


R1, R2 = "1" * 32, "2" * 32


def touch(minute: int, replay_id: str = R1) -> bytes:
    return orjson.dumps(
        {"entity_id": "c1", "event_time": f"{HOUR}:{minute:02d}:00Z", "replay_id": replay_id}
    )


def add(store: EventStore, make_event: MakeEvent, minute: int, amount: Any) -> None:
    event = make_event(
        entity_id="c1", event_time=f"{HOUR}:{minute:02d}:00Z", payload={"amount": amount}
    )
    ingest_batch(store, [event], "test")


def test_versions_follow_the_stored_events_and_never_change(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    add(store, make_event, 1, 1.5)
    add(store, make_event, 2, 2)
    [v1] = process_messages(store, versions, SPEC, [touch(1), touch(2)])
    assert (v1.version, v1.aggregate.count, v1.aggregate.total) == (1, 2, Decimal("3.5"))
    assert process_messages(store, versions, SPEC, [touch(2)]) == []  # redelivered
    add(store, make_event, 0, 10)
    [v2] = process_messages(store, versions, SPEC, [touch(0, R2)])
    assert (v2.version, v2.aggregate.total, v2.replay_id) == (2, Decimal("13.5"), R2)
    assert versions.history(SPEC.spec_id, "c1", WINDOW) == [v1, v2]
    assert versions.latest(SPEC.spec_id, "c1", WINDOW) == v2
    assert versions.windows(SPEC.spec_id, "c1", WINDOW, WINDOW + 1) == [v2]
    assert versions.windows(SPEC.spec_id, "c1", 0, WINDOW) == []
    records = window_events(store, "c1", WINDOW, WINDOW + SPEC.step_us)
    change = diff(v1, v2, {r.event_id: r for r in records})
    assert [c.event_time_us for c in change.added] == [parse_instant(f"{HOUR}:00:00Z")]


def test_a_version_number_is_written_once(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    add(store, make_event, 1, 1)
    [v1] = process_messages(store, versions, SPEC, [touch(1)])
    assert versions.add(v1) is False  # a second processor computing the same number
    assert versions.history(SPEC.spec_id, "c1", WINDOW) == [v1]


def test_windows_lists_the_latest_version_of_each_window(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    later = "2026-11-01T12"
    for time in (f"{HOUR}:05:00Z", f"{later}:05:00Z"):
        ingest_batch(store, [make_event(entity_id="c1", event_time=time)], "test")
    messages = [
        orjson.dumps({"entity_id": "c1", "event_time": t, "replay_id": None})
        for t in (f"{HOUR}:05:00Z", f"{later}:05:00Z")
    ]
    first = process_messages(store, versions, SPEC, messages)
    assert [v.window_start_us for v in first] == [WINDOW, parse_instant(f"{later}:00:00Z")]
    found = versions.windows(SPEC.spec_id, "c1", 0, parse_instant("2027-01-01T00:00:00Z"))
    assert found == first and all(v.replay_id is None for v in found)
    assert versions.windows(SPEC.spec_id, "c1", WINDOW + 1, WINDOW) == []  # an empty range


def test_a_processor_that_loses_a_race_starts_again_from_the_events_stored_then(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    """Just before this processor writes its version, another event is stored and a rival
    processor writes that number first: this one reads the window again, and never writes
    its older inputs over the rival's newer ones."""
    add(store, make_event, 1, 1)

    class RivalFirst:
        """The real version store; a rival processor runs just before the first add."""

        def __init__(self, inner: VersionStore) -> None:
            self.inner, self.raced = inner, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def add(self, version: Any) -> bool:
            if not self.raced:
                self.raced = True
                add(store, make_event, 2, 2)
                process_messages(store, self.inner, SPEC, [touch(2, R2)])
            return self.inner.add(version)

    assert process_messages(store, RivalFirst(versions), SPEC, [touch(1)]) == []
    [latest] = versions.history(SPEC.spec_id, "c1", WINDOW)
    assert (latest.aggregate.count, latest.aggregate.total, latest.replay_id) == (
        2,
        Decimal("3"),
        R2,
    )


def test_a_message_with_a_forged_replay_id_is_refused(
    store: EventStore, versions: VersionStore
) -> None:
    with pytest.raises(MessageError, match="replay_id"):
        process_messages(store, versions, SPEC, [touch(1, "[/]x")])
