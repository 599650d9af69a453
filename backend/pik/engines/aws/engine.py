"""The AWS engine: raw segments in S3, the index in one DynamoDB table.

A batch is stored in this order, so nothing is acknowledged before it is durable:

1. read which of the batch's ids are stored (one strongly consistent read per 100 ids);
2. put the new events' bytes as one S3 object, written once (``If-None-Match: *``);
3. index them in transactions of at most 100 actions, each event with the counters it
   moves, on the condition that its id is not stored yet;
4. count later arrivals (duplicates, conflicts) and rejections, then answer.

Two requests racing with one event both write their bytes; only one event item is
written, and the loser answers DUPLICATE — after the winner's bytes are durable, because
the winner wrote S3 before its item. The loser's copy stays in its object, unindexed;
``verify`` reports such copies as warnings.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
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
from pik.engines.aws.clients import Clients, error_code, unavailable_on_failure
from pik.engines.aws.items import (
    Location,
    content_hash_of,
    event_id_of,
    event_item,
)
from pik.ports import Progress
from pik.storage_errors import StoreUnavailableError

TRANSACTION_ATTEMPTS = 6


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
        self.config = config
        self.limits = limits
        self._clock = clock
        clients = Clients(config.region, session, config.endpoint_url)
        super().__init__(clients, config)
        self._clients = clients
        self._random = random.Random()

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
        known = self._known({e.event_id for e in events})
        classified = classify(arrivals, known)
        news = self._store_raw(arrivals, classified.new, ingest_us)
        lost = self._index_new(news, ingest_us)
        if lost:
            # Another request stored some of these first: they are later arrivals after all.
            known.update(lost)
            classified = classify(arrivals, known)
        self._count_attempts(arrivals, classified, ingest_us)
        return _outcomes(arrivals, classified, ingest_us)

    def _known(self, event_ids: Iterable[bytes]) -> dict[bytes, bytes]:
        ids = sorted(event_ids)
        found: dict[bytes, bytes] = {}
        table = self.config.table
        for start in range(0, len(ids), shapes.MAX_BATCH_GET_KEYS):
            request = shapes.known_events(table, ids[start : start + shapes.MAX_BATCH_GET_KEYS])
            for _ in range(TRANSACTION_ATTEMPTS):
                with unavailable_on_failure("reading stored event ids"):
                    answer = self._clients.dynamodb.batch_get_item(**request)
                for item in answer.get("Responses", {}).get(table, []):
                    found[event_id_of(item)] = content_hash_of(item)
                unprocessed = answer.get("UnprocessedKeys") or {}
                if not unprocessed:
                    break
                request = {"RequestItems": unprocessed}
                self._pause()
            else:
                raise StoreUnavailableError("DynamoDB kept deferring reads; retry the request")
        return found

    def _store_raw(
        self, arrivals: Sequence[Arrival], positions: Sequence[int], ingest_us: int
    ) -> list[writes.NewEvent]:
        """Write the new events' bytes as one S3 object; returns them with their items."""
        if not positions:
            return []
        key = shapes.object_key(ingest_us, uuid.uuid4().hex)
        body = bytearray(frames.SEGMENT_MAGIC)
        news: list[writes.NewEvent] = []
        for position in positions:
            arrival = arrivals[position]
            event = arrival.event
            assert event is not None
            frame, raw_at = frames.event_frame(ingest_us, arrival.origin, event.raw)
            where = Location(
                key, len(body) + raw_at, len(event.raw), hashlib.sha256(event.raw).digest()
            )
            body += frame
            item = event_item(event, arrival.origin, ingest_us, where)
            news.append(writes.NewEvent(position, event, item, ingest_us - event.event_time_us))
        body += frames.batch_end_frame(ingest_us)
        data = bytes(body)
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        with unavailable_on_failure("writing raw events to S3"):
            self._clients.s3.put_object(**shapes.put_segment(self.config.bucket, key, data, digest))
        return news

    def _index_new(self, news: Sequence[writes.NewEvent], ingest_us: int) -> dict[bytes, bytes]:
        """Index first arrivals; returns ids another request stored first (id -> hash)."""
        lost: dict[bytes, bytes] = {}
        plans = writes.new_events(
            self.config.table, news, ingest_us, self.limits.late_after_us, self._shard
        )
        for plan in plans:
            pending = plan
            for _ in range(TRANSACTION_ATTEMPTS):
                taken = self._transact(pending)
                if not taken:
                    break
                lost.update(taken)
                remaining = [e for e in pending.puts.values() if e.event.event_id not in taken]
                if not remaining:
                    break
                again = writes.new_events(
                    self.config.table,
                    remaining,
                    ingest_us,
                    self.limits.late_after_us,
                    self._shard,
                )
                assert len(again) == 1
                pending = again[0]
            else:
                raise StoreUnavailableError("the index kept refusing this batch; retry it")
        return lost

    def _transact(self, plan: writes.Transaction) -> dict[bytes, bytes]:
        """Run one transaction; returns the events it found stored already (id -> hash).

        Conflicting transactions on a shared counter are retried here with backoff.
        """
        from botocore.exceptions import ClientError

        for tries in range(TRANSACTION_ATTEMPTS):
            # A fresh token per call of ours; the SDK's own retries reuse it, so a retried
            # request that had in fact succeeded is not applied twice.
            token = uuid.uuid4().hex
            try:
                with unavailable_on_failure("indexing events in DynamoDB"):
                    self._clients.dynamodb.transact_write_items(
                        **shapes.transaction(plan.actions, token)
                    )
                return {}
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons", [])
                taken = {
                    plan.puts[i].event.event_id: content_hash_of(r["Item"])
                    for i, r in enumerate(reasons)
                    if r.get("Code") == "ConditionalCheckFailed" and i in plan.puts
                }
                if taken:
                    return taken
                codes = {r.get("Code") for r in reasons} - {"None", None}
                if codes <= {"TransactionConflict", "ThrottlingError"}:
                    self._pause(tries)
                    continue
                raise
        raise StoreUnavailableError(
            "the index is busy with concurrent writes to the same counters; retry the request"
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
            self.config.table, attempts, rejections, ingest_us, self._shard
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

        return verify_store(self._clients, self.config, progress)


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
