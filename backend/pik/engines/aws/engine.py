"""The AWS engine: raw segments in S3, the index in one DynamoDB table.

A batch is stored in this order, so nothing is acknowledged before it is durable:

1. read which of the batch's ids are claimed (one strongly consistent read per 100 ids),
   and whether their groups are committed (one more read per 100 groups, only for ids
   found); a claim still in flight is waited for briefly, then the request is unavailable;
2. claim the new events: write their items, which name the object and the commit group
   they will be in, on the condition that nobody holds them (transactions of claims only);
   a claim never committed is taken over after a lease, its old group marked abandoned;
3. put the object, written once (``If-None-Match: *``); an event another request claimed
   first has a void frame of the same length there, so no event's bytes are stored twice,
   and a claim taken over from a request that wrote its object and then failed points at
   the bytes already there;
4. commit each group: its commit item with the counters its events move, one transaction;
5. count later arrivals (duplicates, conflicts) and rejections, then answer.

An event is stored once its group's commit item exists; readers check it. A request that
lost a claim answers DUPLICATE once the holder's group is committed, after a short wait,
or is unavailable (503) — never DUPLICATE before the original is durable.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pik import frames
from pik.domain.arrivals import CONFLICT, Arrival, Classified, classify
from pik.domain.instants import now_us
from pik.domain.limits import DEFAULT_LIMITS, Limits
from pik.domain.outcome import Outcome, Status
from pik.domain.records import (
    VerifyReport,
)
from pik.engines.aws import reads, shapes, writes
from pik.engines.aws.clients import (
    RETRYABLE_CANCELLATIONS,
    Clients,
    error_code,
    unavailable_on_failure,
)
from pik.engines.aws.items import (
    Location,
    content_hash_of,
    event_id_of,
    event_item,
    location_of,
)
from pik.engines.aws.shapes import Item
from pik.ports import Progress
from pik.storage_errors import StoreUnavailableError

TRANSACTION_ATTEMPTS = 6
LEASE_US = 2 * 60 * 1_000_000
"""A claim not committed after this long is taken over; a late commit of it fails, so the
lease decides only when, never whether, an event is stored. Four times the ingest
functions' timeout (30 s), so no invocation still storing loses its claims; shorter than
the ingest queue's visibility timeout (180 s), so the first redelivery of a batch whose
invocation was killed takes its claims over, long before the queue's five tries are spent
(tests/template checks both against template.yaml)."""
REUSE_BYTES_US = 60 * 60 * 1_000_000
"""A takeover points at bytes a failed request wrote only when they are younger than this;
older ones are written again. A retry can come days later (a dead-lettered batch redriven),
and with a retention set the old object expires on its own schedule: reused, bytes
acknowledged now could be gone already, or long before the retention promises."""
MAX_OBJECTS_READ = 4
"""Objects read to find bytes a failed request left (a batch's claims are in one object)."""
MAX_SPAN_READ = 64 * 1024 * 1024
"""The most bytes of one object read to find them (the span of the events sought)."""
RELEASE_BUDGET_S = 4.0
"""How long a failed request keeps trying to release its claims (the failure is often
throttling, which meets the release too) before it leaves them to the lease; short, so the
answer still comes well within API Gateway's 29 seconds."""
CLAIM_WAIT_S = 3.0
"""How long a request waits for another request's claim on one of its events to commit."""


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """What the engine needs to find its resources (a stack's outputs name them).

    The replay fields are for replays only: the stack's delivery queue, the work queue its
    replay function reads, and the other queues the deployer allowed as targets.
    """

    table: str
    bucket: str
    region: str | None = None
    endpoint_url: str | None = None
    replay_queue_url: str | None = None
    replay_queue_arn: str | None = None
    replay_work_queue_url: str | None = None
    replay_targets: tuple[str, ...] = ()
    """ARNs of the queues besides the stack's replay queue that replays may be sent to."""
    api_url: str | None = None
    """The stack's HTTP API (its stage URL): replays are planned and confirmed there."""
    replay_control: str | None = None
    """The function behind the replay routes (absent on stacks older than those routes)."""
    processor_spec: tuple[str, str | None] | None = None
    """The window and the summed pointer the stack's processor computes (when it is on)."""

    @classmethod
    def from_env(cls) -> AwsConfig:
        """The resources a Lambda function was given (template.yaml sets the variables)."""
        missing = [name for name in ("PIK_TABLE", "PIK_BUCKET") if not os.environ.get(name)]
        if missing:
            raise StoreUnavailableError(
                f"{' and '.join(missing)} not set: the AWS engine needs the index table and "
                "the raw bucket (the stack's outputs IndexTableName and RawBucketName)",
                retry_after_s=60,
            )
        return cls(
            os.environ["PIK_TABLE"],
            os.environ["PIK_BUCKET"],
            replay_queue_url=os.environ.get("PIK_REPLAY_QUEUE_URL") or None,
            replay_queue_arn=os.environ.get("PIK_REPLAY_QUEUE_ARN") or None,
            replay_work_queue_url=os.environ.get("PIK_REPLAY_WORK_QUEUE_URL") or None,
            replay_targets=split_targets(os.environ.get("PIK_REPLAY_TARGETS", "")),
        )


def split_targets(text: str) -> tuple[str, ...]:
    """Queue ARNs from a comma-separated list (a CommaDelimitedList parameter, joined)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


class AwsEngine(reads.Reader):
    """An :class:`~pik.ports.EventStore` on S3 and DynamoDB."""

    def __init__(
        self,
        config: AwsConfig,
        *,
        session: Any = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], int] = now_us,
    ) -> None:
        if (
            limits.max_entity_id_chars > shapes.MAX_ENTITY_CHARS
            or limits.max_source_chars > shapes.MAX_SOURCE_CHARS
        ):
            raise ValueError(
                f"the AWS engine keys entity ids of at most {shapes.MAX_ENTITY_CHARS} and "
                f"sources of at most {shapes.MAX_SOURCE_CHARS} characters"
            )
        self.config = config
        self.limits = limits
        self._clock = clock
        clients = Clients(config.region, session, config.endpoint_url)
        super().__init__(clients, config)
        self._clients = clients
        self._random = random.Random()
        self._day_notes = writes.DayNotes(self._random.randrange(shapes.DAY_SHARDS))

    @classmethod
    def from_env(cls) -> AwsEngine:
        """The engine a Lambda function runs: resources named by PIK_TABLE and PIK_BUCKET."""
        return cls(AwsConfig.from_env())

    def close(self) -> None:
        """Nothing to release: clients hold pooled connections only."""

    # --- ingest --------------------------------------------------------------------------

    def commit(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        if not arrivals:
            return []
        self.limits.check_batch(len(arrivals))
        ingest_us = self._clock()
        events = [a.event for a in arrivals if a.event is not None]
        known, stale = self._settled({e.event_id for e in events}, ingest_us)
        if stale:
            self._find_written(stale, ingest_us)
        classified = classify(arrivals, known)
        key, body, news = self._plan_raw(arrivals, classified.new, stale, ingest_us)
        tried: set[int] = set()
        try:
            lost = self._claim(news, ingest_us, tried)
        except Exception:
            # The claims of earlier transactions stand: abandoned now, a retry takes them
            # over at once instead of waiting out their lease. Nothing was written to S3.
            # Any failure, not only an outage: an unexpected one fails the request too.
            self._release(key, tried, ingest_us, durable=False)
            raise
        if lost:
            # Another request claimed these first: their frames hold no data, and they are
            # later arrivals once that request's group is committed.
            for new in news:
                if new.event.event_id in lost and new.frame is not None:
                    start, end = new.frame
                    body[start:end] = frames.void_frame(ingest_us, end - start)
        claimed = [new for new in news if new.event.event_id not in lost]
        if claimed:
            committed: set[int] = set()
            # Claims that took over bytes already written need no object of their own.
            written = all(new.frame is None for new in claimed)
            try:
                if not written:
                    self._put_segment(key, bytes(body))
                    written = True
                self._commit_groups(key, claimed, ingest_us, committed)
            except Exception:
                groups = {n.group for n in claimed} - committed
                self._release(key, groups, ingest_us, durable=written)
                raise
        if lost:
            settled, _ = self._settled(set(lost), ingest_us, wait_s=CLAIM_WAIT_S)
            if set(lost) - set(settled):
                raise StoreUnavailableError(
                    "another request is storing some of these events; retry the request",
                    retry_after_s=1,
                )
            known.update(settled)
            classified = classify(arrivals, known)
        self._count_attempts(arrivals, classified, ingest_us)
        return _outcomes(arrivals, classified, ingest_us)

    def _put_segment(self, key: str, data: bytes) -> None:
        """Write a batch's object once. S3 refusing it because the key exists is, for a
        fresh random key, our own earlier try: the SDK sent the PUT again after S3 had
        stored it but its answer was lost. Those bytes are ours if their hash is."""
        from botocore.exceptions import ClientError

        digest = hashlib.sha256(data).digest()
        request = shapes.put_segment(
            self.config.bucket, key, data, base64.b64encode(digest).decode()
        )
        try:
            with unavailable_on_failure("writing raw events to S3", ingest=True):
                self._clients.s3.put_object(**request)
            return
        except ClientError as exc:
            if error_code(exc) not in {"PreconditionFailed", "412"}:
                raise
        with unavailable_on_failure("reading back a raw object S3 says exists", ingest=True):
            stored = self._clients.s3.get_object(Bucket=self.config.bucket, Key=key)
            held = stored["Body"].read()
        if hashlib.sha256(held).digest() != digest:
            raise StoreUnavailableError(
                f"raw object {key} already holds other bytes; nothing was acknowledged, "
                "retry the request (it writes under a new key)"
            )

    def _settled(
        self, event_ids: set[bytes], now: int, wait_s: float = CLAIM_WAIT_S
    ) -> tuple[dict[bytes, bytes], dict[bytes, tuple[Item, bool]]]:
        """Which events are stored (id -> hash), and which claims may be taken over (id ->
        the claim, and whether its request wrote its bytes before it gave up).

        A claim whose group is neither committed nor abandoned, and younger than the
        lease, belongs to a request still storing it: waited for up to ``wait_s``, then
        the request is unavailable (nothing of it was written yet).
        """
        known: dict[bytes, bytes] = {}
        stale: dict[bytes, tuple[Item, bool]] = {}
        deadline = time.monotonic() + wait_s
        waiting = sorted(event_ids)
        tries = 0
        while waiting:
            found = self._known(waiting)
            states = self._states([k for i in found.values() if (k := shapes.group_of(i))])
            pending = []
            for event_id, item in found.items():
                group = shapes.group_of(item)
                state, durable = (
                    (shapes.COMMITTED, True)
                    if group is None
                    else states.get(group["pk"]["S"], ("", False))
                )
                if state == shapes.COMMITTED:
                    known[event_id] = content_hash_of(item)
                elif state == shapes.ABANDONED or now - int(item["it"]["N"]) > LEASE_US:
                    stale[event_id] = (item, durable)
                else:
                    pending.append(event_id)
            if not pending:
                break
            if time.monotonic() >= deadline:
                raise StoreUnavailableError(
                    "another request is storing some of these events; retry the request",
                    retry_after_s=1,
                )
            self._pause(tries)
            tries += 1
            waiting = pending
        return known, stale

    def _find_written(self, stale: dict[bytes, tuple[Item, bool]], now_us: int) -> None:
        """Mark the stale claims whose bytes are in S3 after all (their request wrote its
        object, then died before it could say so): the takeover points at them.

        One read per object, of a few objects at most; best effort, since writing the
        bytes again, unindexed copy and all, is what happens without it.
        """
        unsure: dict[str, list[bytes]] = {}
        for event_id, (item, durable) in stale.items():
            if not durable and _reusable(item["seg"]["S"], now_us):
                unsure.setdefault(item["seg"]["S"], []).append(event_id)
        for key, event_ids in sorted(unsure.items())[:MAX_OBJECTS_READ]:
            # Only the span of these events, and only up to a bound: an object written by
            # `pik ingest` can be gigabytes, far more than a function's memory.
            places = [location_of(stale[event_id][0]) for event_id in event_ids]
            start = min(where.offset for where in places)
            end = max(where.offset + where.length for where in places)
            if end - start > MAX_SPAN_READ:
                continue
            request = shapes.read_event_bytes(self.config.bucket, key, start, end - start)
            try:
                data = self._clients.s3.get_object(**request)["Body"].read()
            except Exception:  # missing (the usual case), not readable, throttled: write anew
                continue
            for event_id, where in zip(event_ids, places, strict=True):
                raw = data[where.offset - start : where.offset - start + where.length]
                if len(raw) == where.length and hashlib.sha256(raw).digest() == where.sha256:
                    stale[event_id] = (stale[event_id][0], True)

    def _known(self, event_ids: Sequence[bytes]) -> dict[bytes, Item]:
        """The claims (event items) of these events that exist: id -> item."""
        found: dict[bytes, Item] = {}
        for start in range(0, len(event_ids), shapes.MAX_BATCH_GET_KEYS):
            chunk = event_ids[start : start + shapes.MAX_BATCH_GET_KEYS]
            for item in self._batch_get(shapes.known_events(self.config.table, chunk)):
                found[event_id_of(item)] = item
        return found

    def _states(self, keys: Sequence[Item]) -> dict[str, tuple[str, bool]]:
        """Commit items that exist: partition key -> state (committed or abandoned), and
        whether the group's bytes were written."""
        distinct = list({k["pk"]["S"]: k for k in keys}.values())
        states: dict[str, tuple[str, bool]] = {}
        for start in range(0, len(distinct), shapes.MAX_BATCH_GET_KEYS):
            chunk = distinct[start : start + shapes.MAX_BATCH_GET_KEYS]
            for item in self._batch_get(shapes.commit_states(self.config.table, chunk)):
                states[item["pk"]["S"]] = (item["st"]["S"], "w" in item)
        return states

    def _batch_get(self, request: dict[str, Any]) -> list[Item]:
        table = self.config.table
        items: list[Item] = []
        for tries in range(TRANSACTION_ATTEMPTS):
            with unavailable_on_failure("reading stored event ids", ingest=True):
                answer = self._clients.dynamodb.batch_get_item(**request)
            items += answer.get("Responses", {}).get(table, [])
            unprocessed = answer.get("UnprocessedKeys") or {}
            if not unprocessed:
                return items
            request = {"RequestItems": unprocessed}
            self._pause(tries)
        raise StoreUnavailableError("DynamoDB kept deferring reads; retry the request")

    def _plan_raw(
        self,
        arrivals: Sequence[Arrival],
        positions: Sequence[int],
        stale: dict[bytes, tuple[Item, bool]],
        ingest_us: int,
    ) -> tuple[str, bytearray, list[writes.NewEvent]]:
        """The object the new events' bytes will be, and their claims pointing into it.

        A claim taken over from a request that wrote its object and then failed points at
        the bytes already there (when they are this event's), so they are not stored twice.
        """
        key = shapes.object_key(ingest_us, uuid.uuid4().hex)
        body = bytearray(frames.SEGMENT_MAGIC)
        news: list[writes.NewEvent] = []
        for position in positions:
            event = arrivals[position].event
            assert event is not None
            news.append(writes.NewEvent(position, event, ingest_us - event.event_time_us))
        for group, members in enumerate(writes.commit_groups(news)):
            for new in members:
                new.group = group
        for new in news:
            arrival, event = arrivals[new.position], new.event
            holder, durable = stale.get(event.event_id, (None, False))
            new.holder = holder
            if (
                holder is not None
                and durable
                and content_hash_of(holder) == event.content_hash
                and _reusable(location_of(holder).key, ingest_us)
            ):
                where = location_of(holder)
                new.item = event_item(event, arrival.origin, ingest_us, where, new.group, key)
                continue
            frame, raw_at = frames.event_frame(ingest_us, arrival.origin, event.raw)
            where = Location(
                key, len(body) + raw_at, len(event.raw), hashlib.sha256(event.raw).digest()
            )
            new.frame = (len(body), len(body) + len(frame))
            new.item = event_item(event, arrival.origin, ingest_us, where, new.group)
            body += frame
        body += frames.batch_end_frame(ingest_us)
        return key, body, news

    def _claim(
        self, news: Sequence[writes.NewEvent], ingest_us: int, tried: set[int]
    ) -> dict[bytes, Item]:
        """Claim the new events; returns those another request holds (id -> its claim, or
        an empty item when a takeover found the old group committed after all).

        ``tried`` collects the groups of every claim transaction sent, whether it was
        applied or not: the groups a failure may leave claims of."""
        lost: dict[bytes, Item] = {}
        for plan in writes.claims(self.config.table, news, ingest_us):
            tried.update(new.group for new in plan.puts.values())
            pending = plan
            for _ in range(TRANSACTION_ATTEMPTS):
                refused = self._transact(pending)
                if not refused:
                    break
                for index, item in refused.items():
                    if index in pending.puts:
                        lost[pending.puts[index].event.event_id] = item
                    for new in pending.guards.get(index, []):
                        lost.setdefault(new.event.event_id, {})
                remaining = [e for e in pending.puts.values() if e.event.event_id not in lost]
                if not remaining:
                    break
                again = writes.claims(self.config.table, remaining, ingest_us)
                assert len(again) == 1
                pending = again[0]
            else:
                raise StoreUnavailableError("the index kept refusing this batch; retry it")
        return lost

    def _release(self, key: str, groups: set[int], ingest_us: int, durable: bool) -> None:
        """Best effort, after a failure: mark this request's uncommitted groups abandoned,
        so a retry takes their claims over at once instead of after the lease (and, when
        the object was written, points at its bytes instead of writing them again)."""
        table = self.config.table
        ordered = sorted(groups)
        deadline = time.monotonic() + RELEASE_BUDGET_S
        for start in range(0, len(ordered), shapes.MAX_TRANSACTION_ACTIONS):
            chunk = ordered[start : start + shapes.MAX_TRANSACTION_ACTIONS]
            actions = [shapes.abandon_group(table, key, g, ingest_us, durable) for g in chunk]
            tries = 0
            while actions:
                try:
                    refused = self._transact(writes.Transaction(actions=actions))
                except StoreUnavailableError:
                    if time.monotonic() >= deadline:
                        return  # the lease frees them all the same
                    self._pause(tries + 3)
                    tries += 1
                    continue
                except Exception:  # the lease frees them all the same
                    return
                if not refused:
                    break
                # A group refused is committed after all (its commit was applied but its
                # answer lost): the others still need releasing.
                actions = [a for i, a in enumerate(actions) if i not in refused]

    def _commit_groups(
        self, key: str, claimed: Sequence[writes.NewEvent], ingest_us: int, committed: set[int]
    ) -> None:
        """Commit each group of claimed events with its counters, once their bytes are
        durable. A group another request abandoned (it took the claims over) fails."""
        groups: dict[int, list[writes.NewEvent]] = {}
        for new in claimed:
            groups.setdefault(new.group, []).append(new)
        for group, members in sorted(groups.items()):
            plan = writes.commit(
                self.config.table,
                key,
                group,
                members,
                ingest_us,
                self.limits.late_after_us,
                self._shard,
                self._day_notes,
            )
            if self._transact(plan):
                raise StoreUnavailableError(
                    "this request took too long and its events were taken over; retry it",
                    retry_after_s=1,
                )
            committed.add(group)

    def _transact(self, plan: writes.Transaction) -> dict[int, Item]:
        """Run one transaction; returns the actions refused by their condition (index ->
        the item as it was).

        Conflicting transactions on a shared counter are retried here with backoff.
        """
        from botocore.exceptions import ClientError

        for tries in range(TRANSACTION_ATTEMPTS):
            # A fresh token per call of ours; the SDK's own retries reuse it, so a retried
            # request that had in fact succeeded is not applied twice.
            token = uuid.uuid4().hex
            try:
                with unavailable_on_failure("indexing events in DynamoDB", ingest=True):
                    self._clients.dynamodb.transact_write_items(
                        **shapes.transaction(plan.actions, token)
                    )
                self._day_notes.noted |= plan.notes
                return {}
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons", [])
                refused = {
                    i: r.get("Item") or {}
                    for i, r in enumerate(reasons)
                    if r.get("Code") == "ConditionalCheckFailed"
                }
                if refused:
                    return refused
                codes = {r.get("Code") for r in reasons} - {"None", None}
                if codes <= RETRYABLE_CANCELLATIONS:
                    self._pause(tries)
                    continue
                raise
        raise StoreUnavailableError(
            "the index is busy (concurrent writes to the same counters, or over its"
            " provisioned capacity); retry the request"
        )

    def _count_attempts(
        self, arrivals: Sequence[Arrival], classified: Classified, ingest_us: int
    ) -> None:
        attempts = []
        for kind, positions in (
            ("duplicate", classified.duplicates),
            ("conflict", classified.conflicts),
        ):
            for position in positions:
                event = arrivals[position].event
                assert event is not None
                attempts.append(
                    writes.Attempt(event.event_id, kind, arrivals[position].origin, event.source)
                )
        rejections = []
        for position in classified.rejected:
            arrival = arrivals[position]
            assert arrival.rejection is not None
            rejections.append((arrival.source, arrival.rejection.code))
        attempts.sort(key=lambda a: a.event_id)
        plans = writes.attempts_and_rejections(
            self.config.table, attempts, rejections, ingest_us, self._shard, self._day_notes
        )
        for plan in plans:
            if self._transact(plan):
                raise AssertionError("an attempt was counted on an event that is not stored")

    def _shard(self) -> int:
        return self._random.randrange(1 << 16)

    def _pause(self, tries: int = 0) -> None:
        time.sleep(min(0.05 * (2**tries), 1.0) * (0.5 + self._random.random()))

    # --- integrity (every read of the port is inherited from reads.Reader) ------------

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        from pik.engines.aws.verify import verify_store

        return verify_store(self._clients, self.config, progress, self._clock())


def _reusable(key: str, now_us: int) -> bool:
    """Whether the bytes in the object at ``key`` are young enough to point at."""
    written_us = shapes.object_written_us(key)
    return written_us is not None and now_us - written_us < REUSE_BYTES_US


def _outcomes(arrivals: Sequence[Arrival], classified: Classified, ingest_us: int) -> list[Outcome]:
    status: dict[int, str] = {}
    for name in ("new", "duplicates", "conflicts"):
        status.update(dict.fromkeys(getattr(classified, name), name))
    outcomes: list[Outcome] = []
    for position, arrival in enumerate(arrivals):
        event = arrival.event
        if event is None:
            outcomes.append(Outcome(Status.REJECTED, rejection=arrival.rejection))
            continue
        lag_ms = (ingest_us - event.event_time_us) // 1000
        kind = status[position]
        if kind == "new":
            outcomes.append(Outcome(Status.ACCEPTED, event.event_id, lag_ms))
        elif kind == "duplicates":
            outcomes.append(Outcome(Status.DUPLICATE, event.event_id, lag_ms))
        else:
            outcomes.append(Outcome(Status.REJECTED, event.event_id, lag_ms, CONFLICT))
    return outcomes
