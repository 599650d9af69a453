"""The processor on both engines: versions from stored events, never overwritten.

The version-store fixtures are the suite's (conftest); on AWS the window's events come from
the ``timeline`` index, eventually consistent on AWS and immediate in moto."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import orjson
import pytest
from tamper import AlterRaw

from pik.domain.instants import parse_instant
from pik.domain.records import EventRecord
from pik.domain.versions import AggregateSpec, diff
from pik.ports import EventStore, VersionStore
from pik.services.ingest import ingest_batch
from pik.services.processor import (
    MessageError,
    RawUnreadableError,
    process_messages,
    window_events,
)
from pik.storage_errors import StoreUnavailableError

MakeEvent = Callable[..., bytes]
DAY = "2026-11-01"
SPEC = AggregateSpec("day", "/amount")


def message(
    entity_id: str, event_time: str, replay_id: str | None = "1" * 32, event_id: bytes = b""
) -> bytes:
    document = {"entity_id": entity_id, "event_time": event_time, "replay_id": replay_id}
    if event_id:
        document["event_id"] = event_id.hex()
    return orjson.dumps(document)


class LaggingIndex:
    """The store as an index that lags its writes answers it (DynamoDB's global secondary
    indexes, which moto does not reproduce): its timelines miss the ``hidden`` events,
    though they are stored. Everything else is the store's own."""

    def __init__(self, store: EventStore, hidden: set[bytes]) -> None:
        self._store, self._hidden = store, hidden

    def timeline(self, *args: Any, **kwargs: Any) -> list[EventRecord]:
        page = self._store.timeline(*args, **kwargs)
        return [record for record in page if record.event_id not in self._hidden]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def ingest(store: EventStore, make_event: MakeEvent, *amounts: int, entity: str = "c1") -> None:
    events = [
        make_event(entity_id=entity, event_time=f"{DAY}T10:{i:02d}:00Z", payload={"amount": a})
        for i, a in enumerate(amounts)
    ]
    ingest_batch(store, events, "test")


def test_a_window_gets_version_one_then_redelivery_changes_nothing(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    ingest(store, make_event, 5, 7)
    batch = [message("c1", f"{DAY}T10:00:00Z"), message("c1", f"{DAY}T10:01:00Z")]
    written = process_messages(store, versions, SPEC, batch)
    assert [(v.entity_id, v.version) for v in written] == [("c1", 1)]
    assert written[0].aggregate.count == 2 and written[0].aggregate.total == Decimal(12)
    assert written[0].replay_id == "1" * 32
    assert process_messages(store, versions, SPEC, batch) == []
    assert process_messages(store, versions, SPEC, batch[::-1]) == []
    assert len(versions.history(SPEC.spec_id, "c1", parse_instant(f"{DAY}T00:00:00Z"))) == 1


def test_payload_numbers_are_summed_as_written_not_as_doubles(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    written = ["0.1000000000000000000000000000001", "12345678901234567890123456789.5", "2e3"]
    events = [
        make_event(entity_id="c1", event_time=f"{DAY}T10:0{i}:00Z", payload={"amount": 0}).replace(
            b'"amount":0', b'"amount":' + number.encode()
        )
        for i, number in enumerate(written)
    ]
    assert all(b"amount" in raw for raw in events)
    ingest_batch(store, events, "test")
    [version] = process_messages(store, versions, SPEC, [message("c1", f"{DAY}T10:00:00Z")])
    expected = "12345678901234567890123458789.6000000000000000000000000000001"
    assert version.aggregate.total == Decimal(expected)
    assert version.to_document()["aggregate"]["total"] == expected


def test_a_number_beyond_a_decimal_is_left_unsummed_not_stuck(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    tiny = make_event(entity_id="c1", event_time=f"{DAY}T10:00:00Z", payload={"amount": 0})
    tiny = tiny.replace(b'"amount":0', b'"amount":1e-9999999999999999999999')
    ingest_batch(
        store,
        [tiny, make_event(entity_id="c1", event_time=f"{DAY}T10:01:00Z", payload={"amount": 2})],
        "test",
    )
    [version] = process_messages(store, versions, SPEC, [message("c1", f"{DAY}T10:00:00Z")])
    assert (version.aggregate.total, version.aggregate.unsummed) == (Decimal(2), 1)


def test_a_late_event_makes_version_two_and_the_diff_names_it(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    ingest(store, make_event, 5, 7)
    process_messages(store, versions, SPEC, [message("c1", f"{DAY}T10:00:00Z")])
    late = make_event(entity_id="c1", event_time=f"{DAY}T09:00:00Z", payload={"amount": 100})
    ingest_batch(store, [late], "test")
    [v2] = process_messages(store, versions, SPEC, [message("c1", f"{DAY}T09:00:00Z", "2" * 32)])
    window = parse_instant(f"{DAY}T00:00:00Z")
    v1, again = versions.history(SPEC.spec_id, "c1", window)
    assert (v1.version, again.version, v2.version) == (1, 2, 2)
    assert v1.aggregate.total == Decimal(12) and v2.aggregate.total == Decimal(112)
    known = {r.event_id: r for r in window_events(store, "c1", window, window + SPEC.step_us)}
    change = diff(v1, v2, known)
    assert len(change.added) == 1 and not change.removed
    assert change.added[0].lag_ms is not None and change.added[0].lag_ms > 0
    assert versions.windows(SPEC.spec_id, "c1", window, window + 1) == [v2]


def test_windows_and_specs_are_versioned_apart(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    ingest(store, make_event, 1, 2)
    ingest(store, make_event, 3, entity="c2")
    hourly = AggregateSpec("hour")
    batch = [message("c1", f"{DAY}T10:00:00Z"), message("c2", f"{DAY}T10:00:00Z")]
    assert [v.entity_id for v in process_messages(store, versions, SPEC, batch)] == ["c1", "c2"]
    [c1_hour, _] = process_messages(store, versions, hourly, batch)
    assert c1_hour.version == 1 and c1_hour.window_start_us == parse_instant(f"{DAY}T10:00:00Z")
    assert c1_hour.aggregate.total is None


def test_a_read_that_misses_a_stored_event_writes_no_version_and_is_retried(
    store: EventStore, versions: VersionStore, make_event: MakeEvent
) -> None:
    """A window read that lacks an event known to be stored (one a message names, or one
    the latest version holds) would make a version that drops it, kept for ever: the
    window is refused as unavailable instead, so its messages come back later."""
    ingest(store, make_event, 5, 7)
    window = parse_instant(f"{DAY}T00:00:00Z")
    first, second = window_events(store, "c1", window, window + SPEC.step_us)
    [v1] = process_messages(store, versions, SPEC, [message("c1", f"{DAY}T10:00:00Z")])
    late = make_event(entity_id="c1", event_time=f"{DAY}T09:00:00Z", payload={"amount": 1})
    [outcome] = ingest_batch(store, [late], "test")
    named = message("c1", f"{DAY}T09:00:00Z", event_id=outcome.event_id or b"")
    for hidden in ({outcome.event_id}, {first.event_id}):
        lagging = cast(EventStore, LaggingIndex(store, {h for h in hidden if h}))
        with pytest.raises(StoreUnavailableError, match="lags writes"):
            process_messages(lagging, versions, SPEC, [named])
    assert [v.version for v in versions.history(SPEC.spec_id, "c1", window)] == [1]
    [v2] = process_messages(store, versions, SPEC, [named])
    assert v2.version == 2 and v2.aggregate.total == Decimal(13)
    assert (
        set(v2.input_ids)
        == {*v1.input_ids, outcome.event_id}
        == {
            first.event_id,
            second.event_id,
            outcome.event_id,
        }
    )


def test_two_processors_on_one_window_write_one_version(
    store: EventStore, open_versions: Callable[[], VersionStore], make_event: MakeEvent
) -> None:
    ingest(store, make_event, 5, 7)
    stores = [open_versions() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    written: list[int] = []

    def work(mine: VersionStore) -> None:
        barrier.wait()
        written.extend(
            v.version
            for v in process_messages(store, mine, SPEC, [message("c1", f"{DAY}T10:00:00Z")])
        )

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert written == [1]
    window = parse_instant(f"{DAY}T00:00:00Z")
    assert [v.version for v in stores[0].history(SPEC.spec_id, "c1", window)] == [1]


def test_altered_raw_bytes_stop_the_batch_and_write_no_version(
    store: EventStore, versions: VersionStore, make_event: MakeEvent, alter_raw: AlterRaw
) -> None:
    ingest(store, make_event, 100)
    window = parse_instant(f"{DAY}T00:00:00Z")
    [record] = window_events(store, "c1", window, window + SPEC.step_us)
    alter_raw(record, b"100", b"999")
    with pytest.raises(RawUnreadableError):
        process_messages(store, versions, SPEC, [message("c1", f"{DAY}T10:00:00Z")])
    assert versions.history(SPEC.spec_id, "c1", window) == []
    # Without a payload sum nothing needs the bytes: counts still come from the index.
    [count_only] = process_messages(
        store, versions, AggregateSpec(), [message("c1", f"{DAY}T10:00:00Z")]
    )
    assert count_only.aggregate.count == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"entity_id": "c1"}',
        b'{"entity_id": 5, "event_time": "2026-11-01T00:00:00Z"}',
        b'{"entity_id": "", "event_time": "2026-11-01T00:00:00Z"}',
        b'{"entity_id": "c1!x", "event_time": "2026-11-01T00:00:00Z"}',
    ],
)
def test_a_message_that_is_not_a_replay_message_is_refused(
    store: EventStore, versions: VersionStore, body: bytes
) -> None:
    with pytest.raises(MessageError):
        process_messages(store, versions, SPEC, [body])
