"""The AWS engine's reads: the access patterns over the table, its indexes and S3.

Event reads are strongly consistent. Timelines and the entity directory come from global
secondary indexes, which DynamoDB keeps eventually consistent: an event acknowledged a
moment ago may take a moment to appear there (in practice well under a second).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import TYPE_CHECKING, Any

from pik.domain.instants import US_PER_DAY, US_PER_HOUR
from pik.domain.records import AttemptSummary, EntityRecord, EventRecord, RateRecord, WindowCount
from pik.domain.tally import GRANULARITIES
from pik.engines.aws import shapes
from pik.engines.aws.clients import Clients, unavailable_on_failure
from pik.engines.aws.items import attempt_summary, event_record, number

if TYPE_CHECKING:
    from pik.engines.aws.engine import AwsConfig

PARALLEL_QUERIES = 16
RANGE_MARGIN_US = US_PER_DAY
"""Ingest clocks of different writers differ by far less than this."""


class Reader:
    def __init__(self, clients: Clients, config: AwsConfig) -> None:
        self._clients = clients
        self._table = config.table
        self._bucket = config.bucket

    # --- plumbing ------------------------------------------------------------------------

    def _query(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item a query matches, page by page, fetched as the caller consumes them."""
        while True:
            with unavailable_on_failure("querying the index"):
                answer = self._clients.dynamodb.query(**request)
            yield from answer.get("Items", [])
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}

    def _query_all(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run many independent queries at once (a coverage grid touches hundreds)."""
        if len(requests) <= 1:
            return [item for request in requests for item in self._query(request)]
        with ThreadPoolExecutor(min(PARALLEL_QUERIES, len(requests))) as pool:
            pages = pool.map(lambda r: list(self._query(r)), requests)
            return [item for page in pages for item in page]

    # --- events --------------------------------------------------------------------------

    def event(self, event_id: bytes) -> EventRecord | None:
        with unavailable_on_failure("reading an event"):
            answer = self._clients.dynamodb.get_item(**shapes.get_event(self._table, event_id))
        item = answer.get("Item")
        return None if item is None else event_record(item)

    def attempts(self, event_id: bytes) -> list[AttemptSummary]:
        found = [
            attempt_summary(i) for i in self._query(shapes.get_attempts(self._table, event_id))
        ]
        return sorted(found, key=lambda a: (a.kind, a.origin))

    def read_raw(self, record: EventRecord) -> bytes:
        request = shapes.read_event_bytes(
            self._bucket, record.segment, record.offset, record.length
        )
        with unavailable_on_failure("reading raw bytes from S3"):
            body = self._clients.s3.get_object(**request)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        return data

    def timeline(
        self,
        entity_id: str,
        start_us: int,
        end_us: int,
        limit: int,
        after: tuple[int, bytes] | None,
        before: tuple[int, bytes] | None,
    ) -> list[EventRecord]:
        if start_us >= end_us or limit <= 0:
            return []
        low, high = shapes.pad(max(start_us, 0)), shapes.pad(end_us - 1) + "~"
        skip: set[str] = set()
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
            self._table, entity_id, low, high, not backward, min(limit + 2, 1000)
        )
        rows: list[EventRecord] = []
        for item in self._query(request):
            if item["tl_sk"]["S"] in skip:
                continue
            rows.append(event_record(item))
            if len(rows) >= limit:
                break
        return rows[::-1] if backward else rows

    # --- counters ------------------------------------------------------------------------

    def coverage(
        self,
        granularity: str,
        start_us: int,
        end_us: int,
        entity_ids: Sequence[str] | None,
        source: str | None,
    ) -> list[WindowCount]:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity is one of {', '.join(GRANULARITIES)}")
        if start_us >= end_us:
            return []
        wanted = None if entity_ids is None else set(entity_ids)
        if wanted is not None and not wanted:
            return []
        requests = []
        for day in range(start_us - start_us % US_PER_DAY, end_us, US_PER_DAY):
            if wanted is None:
                requests += [
                    shapes.coverage_query(self._table, p, None)
                    for p in shapes.coverage_partitions(day)
                ]
                continue
            by_partition: defaultdict[str, list[str]] = defaultdict(list)
            for entity_id in wanted:
                by_partition[shapes.coverage_partition(day, entity_id)].append(entity_id)
            for partition, members in by_partition.items():
                only = members[0] if len(members) == 1 else None
                requests.append(shapes.coverage_query(self._table, partition, only))
        counts: defaultdict[tuple[int, str], int] = defaultdict(int)
        for item in self._query_all(requests):
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

    def _rate_items(self, start_us: int, end_us: int) -> list[dict[str, Any]]:
        first, last = self._ingest_span()
        if first is None or last is None:
            return []
        start_us = max(start_us, first - RANGE_MARGIN_US)
        end_us = min(end_us, last + RANGE_MARGIN_US)
        if start_us >= end_us:
            return []
        requests = [
            shapes.rates_query(self._table, day, shard, start_us, end_us)
            for day in range(start_us - start_us % US_PER_DAY, end_us, US_PER_DAY)
            for shard in range(shapes.RATE_SHARDS)
        ]
        return self._query_all(requests)

    def rates(self, start_us: int, end_us: int, source: str | None) -> list[RateRecord]:
        rows: dict[tuple[int, str], list[int]] = {}
        width = 5 + len(shapes.LAG_ATTRIBUTES)
        for item in self._rate_items(start_us, end_us):
            minute_text, item_source = item["sk"]["S"].split(shapes.SEP, 1)
            minute = int(minute_text)
            if (source is not None and item_source != source) or not start_us <= minute < end_us:
                continue
            row = rows.setdefault((minute, item_source), [0] * width)
            for i, name in enumerate(("a", "du", "rj", "lt", "cf", *shapes.LAG_ATTRIBUTES)):
                row[i] += number(item, name)
        return [
            RateRecord(
                minute,
                src,
                values[0],
                values[1],
                values[2],
                values[3],
                values[4],
                tuple(values[5:]),
            )
            for (minute, src), values in sorted(rows.items())
        ]

    def rejection_reasons(
        self, start_us: int, end_us: int, source: str | None
    ) -> list[tuple[str, str, int]]:
        reasons: defaultdict[tuple[str, str], int] = defaultdict(int)
        for item in self._rate_items(start_us, end_us):
            minute_text, item_source = item["sk"]["S"].split(shapes.SEP, 1)
            if (source is not None and item_source != source) or not (
                start_us <= int(minute_text) < end_us
            ):
                continue
            for name, value in item.items():
                if name.startswith("rj_"):
                    reasons[(item_source, name[3:])] += int(value["N"])
        ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(src, code, count) for (src, code), count in ordered if count]

    def _totals(self) -> list[dict[str, Any]]:
        with unavailable_on_failure("reading store totals"):
            answer = self._clients.dynamodb.batch_get_item(**shapes.totals(self._table))
        items: list[dict[str, Any]] = answer.get("Responses", {}).get(self._table, [])
        return items

    def _ingest_span(self) -> tuple[int | None, int | None]:
        items = [i for i in self._totals() if "fm" in i]
        if not items:
            return None, None
        return min(number(i, "fm") for i in items), max(number(i, "lm") for i in items)

    # --- entities ------------------------------------------------------------------------

    def _directory(self, low: str, high: str | None) -> Iterator[dict[str, Any]]:
        streams = [
            self._query(shapes.directory_query(self._table, shard, low, high))
            for shard in range(shapes.DIRECTORY_SHARDS)
        ]
        return heapq.merge(*streams, key=lambda item: str(item["dir_sk"]["S"]))

    def entities(
        self, prefix: str, source: str | None, limit: int, after: str | None
    ) -> list[EntityRecord]:
        low = prefix
        if after is not None:
            # '"' sorts just above the separator '!', so every row of `after` is skipped.
            low = max(low, after + '"')
        high = prefix + "~" if prefix else None
        found: list[EntityRecord] = []
        for entity_id, rows in groupby(self._directory(low, high), lambda i: i["ent"]["S"]):
            kept = [r for r in rows if source is None or r["src"]["S"] == source]
            if not kept:
                continue
            days = [number(r, "day") for r in kept]
            first = self._edge(entity_id, min(days), True, source)
            last = self._edge(entity_id, max(days), False, source)
            found.append(
                EntityRecord(
                    entity_id,
                    tuple(sorted({r["src"]["S"] for r in kept})),
                    first,
                    last,
                    sum(number(r, "d") for r in kept),
                )
            )
            if len(found) >= limit:
                break
        return found

    def _edge(self, entity_id: str, day: int, first: bool, source: str | None) -> int:
        """The first (or last) event time of an entity on a day it has events."""
        request = shapes.timeline_query(
            self._table,
            entity_id,
            shapes.pad(day),
            shapes.pad(day + US_PER_DAY - 1) + "~",
            first,
            1 if source is None else 100,
        )
        for item in self._query(request):
            if source is None or item["src"]["S"] == source:
                return int(item["et"]["N"])
        # The timeline index has not caught up yet: the day is all we know.
        return day if first else day + US_PER_DAY - 1

    def counts(self) -> dict[str, int]:
        totals = self._totals()
        entities = {
            item["ent"]["S"]
            for shard in range(shapes.DIRECTORY_SHARDS)
            for item in self._query(shapes.directory_query(self._table, shard, "", None))
        }
        accepted = sum(number(i, "a") for i in totals)
        return {
            "events": accepted,
            "entities": len(entities),
            "accepted": accepted,
            "duplicate": sum(number(i, "du") for i in totals),
            "rejected": sum(number(i, "rj") for i in totals),
            "late": sum(number(i, "lt") for i in totals),
        }
