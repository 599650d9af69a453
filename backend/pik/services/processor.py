"""The processor: recompute the aggregates a batch of replayed events touches, as new versions.

A replay message names an event; the processor recomputes the whole window that event
falls in, from the store as it stands (not from the message alone), so a window's version
always describes every stored event of it. A window whose inputs did not change since its
latest version gets no new version: a redelivered message, or the same replay run twice,
changes nothing. Payload numbers are read from the stored bytes after their sha256 is
checked; a missing or altered event stops the batch (the queue retries it, then moves it
to its dead-letter queue).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pik.domain import replay
from pik.domain.envelope import could_be_entity, parse_event_id
from pik.domain.instants import parse_instant
from pik.domain.records import EventRecord
from pik.domain.replay import ReplayError
from pik.domain.versions import AggregateSpec, Version, compute, next_version, payload_number
from pik.ports import EventStore, VersionStore
from pik.services.raw import stored_bytes, verified
from pik.services.replay import PAGE, SYSTEM_CLOCK, Clock
from pik.storage_errors import StoreUnavailableError

ADD_ATTEMPTS = 5


class RawUnreadableError(RuntimeError):
    """An input event's stored bytes are missing or do not match their sha256."""

    code = "raw_unreadable"

    def __init__(self, event_id: bytes) -> None:
        super().__init__(
            f"the stored bytes of event {event_id.hex()} are missing or do not match their "
            "sha256; no version was written for its window (run `pik verify`)"
        )
        self.event_id = event_id


class MessageError(ValueError):
    """A message that is not a replay message; it can never be processed."""


@dataclass(frozen=True, slots=True)
class Touch:
    """A window one message asks to recompute, the replay that asked, and the events the
    messages name in it (its recomputation must see them)."""

    entity_id: str
    window_start_us: int
    replay_id: str | None
    event_ids: frozenset[bytes] = frozenset()


def _event_id(document: dict[str, Any]) -> bytes | None:
    """The event a message names; None for a message without one."""
    text = document.get("event_id")
    if text is None:
        return None
    if not isinstance(text, str):
        raise MessageError("not a replay message: event_id is not a string")
    try:
        return parse_event_id(text)
    except ValueError as exc:
        raise MessageError(f"not a replay message: event_id: {exc}") from None


def touched(messages: Iterable[bytes], spec: AggregateSpec) -> list[Touch]:
    """The windows a batch of replay messages touches, each once, in a stable order."""
    seen: dict[tuple[str, int], tuple[str | None, set[bytes]]] = {}
    for message in messages:
        try:
            document = orjson.loads(message)
            entity_id = document["entity_id"]
            event_time_us = parse_instant(document["event_time"])
            replay_id = document.get("replay_id")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"not a replay message: {exc}") from None
        if not isinstance(entity_id, str) or not (replay_id is None or isinstance(replay_id, str)):
            raise MessageError("not a replay message: entity_id and replay_id are strings")
        if replay_id is not None and not replay.REPLAY_ID.fullmatch(replay_id):
            raise MessageError("not a replay message: replay_id is not a replay's id")
        if not could_be_entity(entity_id):
            raise MessageError("not a replay message: entity_id is not an entity's id")
        event_id = _event_id(document)
        window = seen.setdefault((entity_id, spec.window_of(event_time_us)), (replay_id, set()))
        if event_id is not None:
            window[1].add(event_id)
    return [Touch(e, w, r, frozenset(ids)) for (e, w), (r, ids) in sorted(seen.items())]


def window_events(
    store: EventStore, entity_id: str, start_us: int, end_us: int
) -> list[EventRecord]:
    """Every stored event of an entity in ``[start, end)``, in replay order."""
    found: list[EventRecord] = []
    after: tuple[int, bytes] | None = None
    while True:
        page = store.timeline(entity_id, start_us, end_us, PAGE, after=after)
        found.extend(page)
        if len(page) < PAGE:
            return replay.replay_order(found)
        after = (page[-1].event_time_us, page[-1].event_id)


def _payloads(store: EventStore, records: Sequence[EventRecord]) -> list[Any]:
    payloads = []
    for start in range(0, len(records), PAGE):
        page = records[start : start + PAGE]
        for record, raw in zip(page, stored_bytes(store, page), strict=True):
            if raw is None or not verified(record, raw):
                raise RawUnreadableError(record.event_id)
            # Numbers as decimals: a payload's 0.1000000000000000000001 is summed as
            # written, not as the nearest binary double. The bytes were validated strictly
            # when stored.
            payloads.append(json.loads(raw, parse_float=payload_number).get("payload"))
    return payloads


def _caught_up(
    records: Sequence[EventRecord], named: Collection[bytes], latest: Version | None
) -> None:
    """Refuse a read of a window that misses an event known to be stored in it: one a
    message names, or one its latest version was computed from (events are never
    removed). An index that lags its writes (DynamoDB's global secondary indexes) can
    answer such a read; a version computed from it would drop events that are there."""
    present = {r.event_id for r in records}
    missing = set(named) - present
    if latest is not None:
        missing |= set(latest.input_ids) - present
    if missing:
        raise StoreUnavailableError(
            f"the index does not show {len(missing)} stored event(s) of this window yet (it "
            "lags writes); no version was written, retry the batch",
            retry_after_s=5,
        )


def recompute(
    store: EventStore,
    versions: VersionStore,
    spec: AggregateSpec,
    entity_id: str,
    window_start_us: int,
    replay_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    named: Collection[bytes] = (),
) -> Version | None:
    """A new version of one window, or ``None`` when its inputs are unchanged; ``named``:
    events the messages name in it, which the read must see.

    The latest version is read before the events: a version another processor wrote
    meanwhile saw at most the events read here, so a collision on its number means
    reading both again, never writing older inputs over newer ones.
    """
    for _ in range(ADD_ATTEMPTS):
        latest = versions.latest(spec.spec_id, entity_id, window_start_us)
        end_us = window_start_us + spec.step_us
        records = window_events(store, entity_id, window_start_us, end_us)
        _caught_up(records, named, latest)
        if latest is not None and latest.inputs_digest == replay.set_digest(records):
            return None  # checked before reading any payload: redelivery costs reads only
        payloads = _payloads(store, records) if spec.sum_pointer else []
        aggregate = compute(spec, records, payloads, store.limits.late_after_us)
        version = next_version(
            spec, entity_id, window_start_us, latest, records, aggregate, replay_id, clock.now_us()
        )
        if version is None or versions.add(version):
            return version
        # Another processor numbered a version of this window first: start again from it.
    raise StoreUnavailableError(
        f"versions of {entity_id!r} kept being written concurrently; retry the batch"
    )


def process_messages(
    store: EventStore,
    versions: VersionStore,
    spec: AggregateSpec,
    messages: Sequence[bytes],
    clock: Clock = SYSTEM_CLOCK,
) -> list[Version]:
    """Recompute every window the messages touch; the versions written, in window order."""
    written = []
    for touch in touched(messages, spec):
        version = recompute(
            store,
            versions,
            spec,
            touch.entity_id,
            touch.window_start_us,
            touch.replay_id,
            clock,
            touch.event_ids,
        )
        if version is not None:
            written.append(version)
    return written


class ProcessorSink:
    """A replay target that feeds the processor directly (the local engine's
    ``processor:`` target): each batch a run sends is processed before ``send`` returns."""

    max_batch = 100

    def __init__(
        self,
        store: EventStore,
        versions: VersionStore,
        spec: AggregateSpec,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.versions = versions
        self.spec = spec
        self.clock = clock
        self.written: list[Version] = []

    def send(self, messages: Sequence[bytes]) -> None:
        try:
            written = process_messages(self.store, self.versions, self.spec, messages, self.clock)
        except RawUnreadableError as exc:
            # Another event of a window this batch touches: no retry makes its bytes whole.
            raise ReplayError("raw_corrupt", str(exc), 409) from None
        self.written.extend(written)

    def close(self) -> None:
        self.versions.close()
