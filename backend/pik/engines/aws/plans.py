"""The AWS engine's reads, decided once: which requests answer a read, and how the answers
fold into records.

A read is a *plan*: a generator that yields the calls it needs next and is sent their
answers, in the same order, until it returns its result. The calls of one yield are
independent, so an executor may send them all at once. Plans do no I/O, so the same plan
runs on boto3 in threads (``reads.Reader``: Lambda, the CLI) and on aiobotocore in an event
loop (``async_reads.AsyncAwsReader``: the TUI). The requests come from ``shapes``, where
the key schema is written; executors only send calls, read S3 bodies, and turn failures
into ``StoreUnavailableError``.

Event reads are strongly consistent. Timelines and the entity directory come from global
secondary indexes, which DynamoDB keeps eventually consistent: an event acknowledged a
moment ago may take a moment to appear there (in practice well under a second).
"""

from __future__ import annotations

import functools
import random
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from pik.domain.instants import US_PER_DAY, US_PER_HOUR
from pik.domain.records import AttemptSummary, EntityRecord, EventRecord, RateRecord, WindowCount
from pik.domain.tally import GRANULARITIES
from pik.engines.aws import shapes
from pik.engines.aws.items import attempt_summary, event_record, number
from pik.engines.aws.spans import spans_of, steps_of
from pik.storage_errors import StoreUnavailableError

T = TypeVar("T")
P = ParamSpec("P")
Answer = dict[str, Any]
Row = dict[str, Any]

DYNAMODB = "dynamodb"
S3 = "s3"
QUERYING = "querying the index"
RATE_FIELDS = ("a", "du", "rj", "lt", "cf", *shapes.LAG_ATTRIBUTES)
EDGE_PAGE = 4
"""Timeline entries read at a time for an entity's first or last event: the first is
almost always committed; a few more cover claims in flight without another round trip."""


@dataclass(frozen=True, slots=True)
class Call:
    """``<service client>.<operation>(**request)``; ``what`` names it in error messages.

    An answer with a ``Body`` (S3) comes back to the plan with the body's bytes in it.
    """

    service: str
    operation: str
    request: shapes.Request
    what: str = QUERYING


Plan = Generator[list[Call], list[Answer], T]


class Running(Generic[T]):
    """A plan being run: the calls it waits for, until it is ``done`` with its ``result``."""

    result: T

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self.done = False
        self.calls: list[Call] = []
        self._advance(lambda: next(plan))

    def answer(self, answers: list[Answer]) -> None:
        """Send the answers to ``calls`` (same order); the plan moves to its next calls."""
        self._advance(lambda: self._plan.send(answers))

    def _advance(self, step: Callable[[], list[Call]]) -> None:
        try:
            self.calls = step()
        except StopIteration as stop:
            self.done, self.calls, self.result = True, [], stop.value


DEFERRED_ATTEMPTS = 8
"""How many times an executor sends again the keys a batch read deferred (DynamoDB defers
them when the table is over its capacity), pausing longer each time, before it gives up."""


def deferred(call: Call, answer: Answer) -> Call | None:
    """The call that reads what ``answer`` left unread (a batch read's ``UnprocessedKeys``),
    or ``None``. Executors send it after a pause and merge the answers, so plans see every
    batch read whole."""
    rest = answer.get("UnprocessedKeys") if call.operation == "batch_get_item" else None
    if not rest:
        return None
    return Call(call.service, call.operation, {"RequestItems": rest}, call.what)


def deferred_pause_s(tries: int) -> float:
    """Growing, and jittered, so that reads deferred together are not sent again together."""
    return min(0.05 * 2.0**tries, 2.0) * random.uniform(0.5, 1.5)


def merged(answer: Answer, more: Answer) -> Answer:
    """A batch read's answer with the items of the read of its deferred keys."""
    responses: dict[str, list[Row]] = {
        table: list(items) for table, items in answer.get("Responses", {}).items()
    }
    for table, items in more.get("Responses", {}).items():
        responses.setdefault(table, []).extend(items)
    return {"Responses": responses, "UnprocessedKeys": more.get("UnprocessedKeys") or {}}


def gave_up(call: Call) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"{call.what}: DynamoDB kept deferring reads (the table is over its capacity); "
        "retry in a moment",
        retry_after_s=2,
    )


def one(call: Call) -> Plan[Answer]:
    answers = yield [call]
    return answers[0]


def gather(plans: Sequence[Plan[T]]) -> Plan[list[T]]:
    """Run plans side by side: each step sends every unfinished plan's next calls at once."""
    runs = [Running(plan) for plan in plans]
    while waiting := [run for run in runs if not run.done]:
        answers = yield [call for run in waiting for call in run.calls]
        for run in waiting:
            count = len(run.calls)
            run.answer(answers[:count])
            answers = answers[count:]
    return [run.result for run in runs]


def query(
    request: shapes.Request, enough: Callable[[list[Row]], bool] | None = None
) -> Plan[list[Row]]:
    """Every item a query matches, page by page (or until ``enough`` of them arrived)."""
    items: list[Row] = []
    while True:
        answer = yield from one(Call(DYNAMODB, "query", request))
        items += answer.get("Items", [])
        last = answer.get("LastEvaluatedKey")
        if not last or (enough is not None and enough(items)):
            return items
        request = {**request, "ExclusiveStartKey": last}


def query_all(requests: Sequence[shapes.Request]) -> Plan[list[Row]]:
    """Many independent queries at once (a coverage grid touches hundreds), in order."""
    pages = yield from gather([query(request) for request in requests])
    return [item for page in pages for item in page]


@dataclass(slots=True)
class _Shard:
    """One directory shard's rows in key order, its pages fetched as a merge needs them."""

    request: shapes.Request | None
    rows: deque[Row] = field(default_factory=deque)

    def take(self, answer: Answer) -> None:
        self.rows.extend(answer.get("Items", []))
        last = answer.get("LastEvaluatedKey")
        if last and self.request is not None:
            self.request = {**self.request, "ExclusiveStartKey": last}
        else:
            self.request = None  # its last page is in


class ReadPlans:
    """Every read of the storage port, as a plan over one table and bucket."""

    def __init__(self, table: str, bucket: str) -> None:
        self.table = table
        self.bucket = bucket

    # --- events --------------------------------------------------------------------------

    def event(self, event_id: bytes) -> Plan[EventRecord | None]:
        request = shapes.get_event(self.table, event_id)
        answer = yield from one(Call(DYNAMODB, "get_item", request, "reading an event"))
        item = answer.get("Item")
        if item is None:
            return None
        kept = yield from self._committed([item])
        return event_record(item) if kept else None

    def _committed(self, items: Sequence[Row]) -> Plan[list[Row]]:
        """The event items whose commit group is committed (claims in flight are not
        stored yet): one consistent batch read per 100 distinct groups."""
        keys = {k["pk"]["S"]: k for i in items if (k := shapes.group_of(i)) is not None}
        committed: set[str] = set()
        requests = [
            shapes.commit_states(self.table, list(keys.values())[start : start + 100])
            for start in range(0, len(keys), shapes.MAX_BATCH_GET_KEYS)
        ]
        answers = yield [
            Call(DYNAMODB, "batch_get_item", r, "reading commit groups") for r in requests
        ]
        for answer in answers:
            for found in answer.get("Responses", {}).get(self.table, []):
                if found["st"]["S"] == shapes.COMMITTED:
                    committed.add(found["pk"]["S"])
        return [i for i in items if (k := shapes.group_of(i)) is None or k["pk"]["S"] in committed]

    def attempts(self, event_id: bytes) -> Plan[list[AttemptSummary]]:
        items = yield from query(shapes.get_attempts(self.table, event_id))
        # In the order they first arrived, as the local engine lists them.
        return sorted(
            (attempt_summary(i) for i in items), key=lambda a: (a.first_seen_us, a.kind, a.origin)
        )

    def read_raw(self, record: EventRecord) -> Plan[bytes]:
        request = shapes.read_event_bytes(self.bucket, record.segment, record.offset, record.length)
        answer = yield from one(Call(S3, "get_object", request, "reading raw bytes from S3"))
        data: bytes = answer["Body"]
        return data

    def read_raw_many(self, records: Sequence[EventRecord]) -> Plan[list[bytes]]:
        """Each record's raw bytes, in order: one ranged GET per run of nearby records of
        one object (``spans``), sent at once up to a bound on the bytes asked for."""
        found = [b""] * len(records)
        for step in steps_of(spans_of(records)):
            answers = yield [
                Call(
                    S3,
                    "get_object",
                    shapes.read_event_bytes(self.bucket, s.key, s.start, s.end - s.start),
                    "reading raw bytes from S3",
                )
                for s in step
            ]
            for span, answer in zip(step, answers, strict=True):
                data: bytes = answer["Body"]
                for i in span.members:
                    at = records[i].offset - span.start
                    found[i] = data[at : at + records[i].length]
        return found

    def timeline(
        self,
        entity_id: str,
        start_us: int,
        end_us: int,
        limit: int,
        after: tuple[int, bytes] | None = None,
        before: tuple[int, bytes] | None = None,
    ) -> Plan[list[EventRecord]]:
        if start_us >= end_us or limit <= 0 or not shapes.keyable_entity(entity_id):
            return []  # no stored entity has such an id; DynamoDB would refuse an empty key
        low, high = shapes.pad(max(start_us, 0)), shapes.pad(end_us - 1) + "~"
        skip: set[str] = set()  # the cursor's own event is not part of the page
        if after is not None:
            position = shapes.timeline_sort_key(*after)
            low = max(low, position)
            skip.add(position)
        if before is not None:
            position = shapes.timeline_sort_key(*before)
            high = min(high, position)
            skip.add(position)
        if low > high:
            return []
        backward = before is not None and after is None
        request = shapes.timeline_query(
            self.table, entity_id, low, high, not backward, min(limit + 2, 1000)
        )

        def kept(item: Row) -> bool:
            return item["tl_sk"]["S"] not in skip

        # Page by page: an uncommitted claim is not an event yet, so a page may keep fewer.
        rows: list[EventRecord] = []
        while True:
            answer = yield from one(Call(DYNAMODB, "query", request))
            page = [item for item in answer.get("Items", []) if kept(item)]
            stored = yield from self._committed(page)
            rows += map(event_record, stored)
            last = answer.get("LastEvaluatedKey")
            if not last or len(rows) >= limit:
                break
            request = {**request, "ExclusiveStartKey": last}
        rows = rows[:limit]
        return rows[::-1] if backward else rows

    # --- counters ------------------------------------------------------------------------

    def coverage(
        self,
        granularity: str,
        start_us: int,
        end_us: int,
        entity_ids: Sequence[str] | None,
        source: str | None,
    ) -> Plan[list[WindowCount]]:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity is one of {', '.join(GRANULARITIES)}")
        wanted = None if entity_ids is None else set(filter(shapes.keyable_entity, entity_ids))
        if start_us >= end_us or (wanted is not None and not wanted):
            return []
        days = yield from self._noted_days(shapes.COVERAGE_DAYS, start_us, end_us)
        items = yield from query_all(self._coverage_requests(days, wanted))
        counts: defaultdict[tuple[int, str], int] = defaultdict(int)
        for item in items:
            entity_id = item["ent"]["S"]
            if wanted is not None and entity_id not in wanted:
                continue
            if source is not None and item["src"]["S"] != source:
                continue
            day = int(item["day"]["N"])
            if granularity == "day":
                if start_us <= day < end_us:
                    counts[(day, entity_id)] += number(item, "d")
                continue
            for hour, name in enumerate(shapes.HOUR_ATTRIBUTES):
                window = day + hour * US_PER_HOUR
                if name in item and start_us <= window < end_us:
                    counts[(window, entity_id)] += number(item, name)
        return [WindowCount(e, w, c) for (w, e), c in sorted(counts.items()) if c]

    def _coverage_requests(
        self, days: Sequence[int], wanted: set[str] | None
    ) -> list[shapes.Request]:
        """Every partition of the days, or only the named entities' partitions."""
        requests = []
        for day in days:
            if wanted is None:
                requests += [
                    shapes.coverage_query(self.table, p, None)
                    for p in shapes.coverage_partitions(day)
                ]
                continue
            by_partition: defaultdict[str, list[str]] = defaultdict(list)
            for entity_id in wanted:
                by_partition[shapes.coverage_partition(day, entity_id)].append(entity_id)
            for partition, members in by_partition.items():
                only = members[0] if len(members) == 1 else None
                requests.append(shapes.coverage_query(self.table, partition, only))
        return requests

    def rates(self, start_us: int, end_us: int, source: str | None) -> Plan[list[RateRecord]]:
        items = yield from self._rate_items(start_us, end_us)
        rows: dict[tuple[int, str], list[int]] = {}
        for minute, item_source, item in _rate_rows(items, start_us, end_us, source):
            row = rows.setdefault((minute, item_source), [0] * len(RATE_FIELDS))
            for i, name in enumerate(RATE_FIELDS):
                row[i] += number(item, name)
        records = []
        for (minute, src), values in sorted(rows.items()):
            accepted, duplicate, rejected, late, conflict, *lag = values
            records.append(
                RateRecord(minute, src, accepted, duplicate, rejected, late, conflict, tuple(lag))
            )
        return records

    def rejection_reasons(
        self, start_us: int, end_us: int, source: str | None
    ) -> Plan[list[tuple[str, str, int]]]:
        items = yield from self._rate_items(start_us, end_us)
        reasons: defaultdict[tuple[str, str], int] = defaultdict(int)
        for _, item_source, item in _rate_rows(items, start_us, end_us, source):
            for name, value in item.items():
                if name.startswith("rj_"):
                    reasons[(item_source, name[3:])] += int(value["N"])
        ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(src, code, count) for (src, code), count in ordered if count]

    def _rate_items(self, start_us: int, end_us: int) -> Plan[list[Row]]:
        """Rate items in range, read on the days noted as having any."""
        days = yield from self._noted_days(shapes.RATE_DAYS, start_us, end_us)
        items = yield from query_all(
            [
                shapes.rates_query(self.table, day, shard, start_us, end_us)
                for day in days
                for shard in range(shapes.RATE_SHARDS)
            ]
        )
        return items

    def _noted_days(self, kind: str, start_us: int, end_us: int) -> Plan[list[int]]:
        """The days of ``[start, end)`` noted as having items of ``kind`` (shapes.note_day)."""
        first, last = max(start_us, 0), end_us - 1
        if first > last:
            return []
        first_day, last_day = first - first % US_PER_DAY, last - last % US_PER_DAY
        items = yield from query_all(
            [
                shapes.noted_days(self.table, kind, first_day, last_day, shard)
                for shard in range(shapes.DAY_SHARDS)
            ]
        )
        return sorted({shapes.noted_day(item) for item in items})

    def _totals(self) -> Plan[list[Row]]:
        request = shapes.totals(self.table)
        answer = yield from one(Call(DYNAMODB, "batch_get_item", request, "reading store totals"))
        items: list[Row] = answer.get("Responses", {}).get(self.table, [])
        return items

    def counts(self) -> Plan[dict[str, int]]:
        totals = yield from self._totals()
        rows = yield from query_all(
            [
                shapes.directory_query(self.table, shard, "", None)
                for shard in range(shapes.DIRECTORY_SHARDS)
            ]
        )
        accepted = sum(number(i, "a") for i in totals)
        return {
            "events": accepted,
            "entities": len({row["ent"]["S"] for row in rows}),
            "accepted": accepted,
            "duplicate": sum(number(i, "du") for i in totals),
            "rejected": sum(number(i, "rj") for i in totals),
            "late": sum(number(i, "lt") for i in totals),
        }

    # --- entities ------------------------------------------------------------------------

    def entities(
        self, prefix: str, source: str | None, limit: int, after: str | None
    ) -> Plan[list[EntityRecord]]:
        if prefix and not shapes.keyable_entity(prefix):
            return []  # no entity id begins so
        low = prefix
        if after is not None:
            low = max(low, shapes.past_entities_up_to(after))
        high = prefix + "~" if prefix else None
        if high is not None and low > high:
            # An `after` past the prefix: nothing to list. DynamoDB refuses a BETWEEN whose
            # bounds are reversed (moto answers it), so it is never sent.
            return []
        found = yield from self._directory(low, high, source, limit, after)
        # The first and last event of every entity found, all at once: two queries each.
        edges = yield from gather(
            [
                self._edge(entity_id, pick(number(r, "day") for r in rows), pick is min, source)
                for entity_id, rows in found
                for pick in (min, max)
            ]
        )
        return [
            EntityRecord(
                entity_id,
                tuple(sorted({r["src"]["S"] for r in rows})),
                edges[2 * i],
                edges[2 * i + 1],
                sum(number(r, "d") for r in rows),
            )
            for i, (entity_id, rows) in enumerate(found)
        ]

    def _directory(
        self, low: str, high: str | None, source: str | None, limit: int, after: str | None
    ) -> Plan[list[tuple[str, list[Row]]]]:
        """Up to ``limit`` entities from ``low`` (to ``high``) in key order, each with its
        directory rows (of ``source`` only, if given): the shards merged by sort key.

        Only entities after ``after`` are kept: an ``after`` that is no entity id (one with
        a ``!`` in it, say) does not fall between the directory's keys as an id would."""
        shards = [
            _Shard(shapes.directory_query(self.table, shard, low, high))
            for shard in range(shapes.DIRECTORY_SHARDS)
        ]
        found: list[tuple[str, list[Row]]] = []
        entity_id = ""
        kept: list[Row] = []
        while len(found) < limit:
            # A shard with no rows at hand but more pages must answer before the merge
            # can tell which row comes next.
            hungry = [(s, s.request) for s in shards if not s.rows and s.request is not None]
            if hungry:
                answers = yield [Call(DYNAMODB, "query", request) for _, request in hungry]
                for (shard, _), answer in zip(hungry, answers, strict=True):
                    shard.take(answer)
                continue
            live = [s for s in shards if s.rows]
            if not live:
                if kept:
                    found.append((entity_id, kept))
                break
            row = min(live, key=lambda s: str(s.rows[0]["dir_sk"]["S"])).rows.popleft()
            if row["ent"]["S"] != entity_id:
                if kept:
                    found.append((entity_id, kept))
                entity_id, kept = row["ent"]["S"], []
            if (source is None or row["src"]["S"] == source) and (
                after is None or entity_id > after
            ):
                kept.append(row)
        return found

    def _edge(self, entity_id: str, day: int, first: bool, source: str | None) -> Plan[int]:
        """The first (or last) event time of an entity on a day it has events (a claim
        whose group is not committed is not an event yet)."""
        request = shapes.timeline_query(
            self.table,
            entity_id,
            shapes.pad(day),
            shapes.pad(day + US_PER_DAY - 1) + "~",
            first,
            EDGE_PAGE if source is None else 100,
        )
        while True:
            answer = yield from one(Call(DYNAMODB, "query", request))
            found = [i for i in answer.get("Items", []) if source in (None, i["src"]["S"])]
            stored = yield from self._committed(found)
            if stored:
                return int(stored[0]["et"]["N"])
            last = answer.get("LastEvaluatedKey")
            if not last:
                # The timeline index has not caught up yet: the day is all we know.
                return day if first else day + US_PER_DAY - 1
            request = {**request, "ExclusiveStartKey": last}


def _rate_rows(
    items: Sequence[Row], start_us: int, end_us: int, source: str | None
) -> Iterator[tuple[int, str, Row]]:
    """(minute, source, item) of the rate items of ``source`` for minutes in range."""
    for item in items:
        minute_text, item_source = item["sk"]["S"].split(shapes.SEP, 1)
        minute = int(minute_text)
        if (source is None or item_source == source) and start_us <= minute < end_us:
            yield minute, item_source, item


# --- readers -----------------------------------------------------------------------------


class read(Generic[P, T]):
    """A read of the port, declared once as the plan of the same name.

    Its reader runs the plan: a :class:`BlockingReads` returns the result, an
    :class:`AsyncReads` a coroutine of it.
    """

    def __init__(self, build: Callable[Concatenate[ReadPlans, P], Plan[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, reader: None, owner: type[Any]) -> read[P, T]: ...

    @overload
    def __get__(self, reader: BlockingReads, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, reader: AsyncReads, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, reader: Any, owner: type[Any]) -> Any:
        if reader is None:
            return self
        build = self._build

        @functools.wraps(build)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return reader.run(build(reader.plans, *args, **kwargs))

        return bound


class Reads:
    """The reads of ``pik.ports.EventStore``, each the plan of the same name."""

    plans: ReadPlans

    event = read(ReadPlans.event)
    attempts = read(ReadPlans.attempts)
    read_raw = read(ReadPlans.read_raw)
    read_raw_many = read(ReadPlans.read_raw_many)
    timeline = read(ReadPlans.timeline)
    coverage = read(ReadPlans.coverage)
    rates = read(ReadPlans.rates)
    rejection_reasons = read(ReadPlans.rejection_reasons)
    entities = read(ReadPlans.entities)
    counts = read(ReadPlans.counts)


class BlockingReads(Reads, ABC):
    @abstractmethod
    def run(self, plan: Plan[T]) -> T:
        """Send the plan's calls until it returns; returns its result."""


class AsyncReads(Reads, ABC):
    @abstractmethod
    async def run(self, plan: Plan[T]) -> T:
        """Send the plan's calls until it returns; returns its result."""
