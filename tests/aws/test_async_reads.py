"""The async reader (aiobotocore) answers every read exactly as the blocking engine does.

Both run the same plans; these tests prove the two executors agree on a stack in moto's
server (the data ingested through the blocking engine), that the async reader keeps many
calls in flight within its bound, and that it closes its clients.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pik.domain.instants import (
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    format_instant,
    parse_instant,
)
from pik.domain.outcome import Status
from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws.async_reads import AsyncAwsReader
from pik.engines.aws.shapes import DAY_SHARDS
from pik.services.ingest import ingest_batch

INGESTED = parse_instant("2026-11-02T12:00:00Z")
START = parse_instant("2026-10-30T00:00:00Z")
END = parse_instant("2026-11-03T00:00:00Z")
ENTITIES = ["user:1", "user:10", "user:2", "acct-7", "zeta"]
Read = tuple[str, tuple[Any, ...]]


def line(entity: str, day: int, hour: int, n: int, source: str = "checkout", **extra: Any) -> bytes:
    at = START + day * US_PER_DAY + hour * US_PER_HOUR + n * US_PER_MINUTE
    return json.dumps(
        {
            "source": source,
            "event_type": "order.created",
            "entity_id": entity,
            "event_time": format_instant(at),
            "payload": {"n": n},
            **extra,
        }
    ).encode()


@pytest.fixture(scope="module")
def stored(server_config: AwsConfig) -> AwsEngine:
    """Events of five entities over four days from two sources, then duplicates, an
    idempotency conflict and rejections, each batch at a fixed ingest minute."""
    clock = [INGESTED]
    engine = AwsEngine(server_config, clock=lambda: clock[0])
    first = [
        line(entity, n % 4, (3 * n) % 24, n, "billing" if n % 3 == 0 else "checkout")
        for n in range(16)
        for entity in ENTITIES[: 1 + n % len(ENTITIES)]
    ]
    first.append(line("user:1", 1, 5, 0, idempotency_key="order-1"))
    outcomes = ingest_batch(engine, first, "api")
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    clock[0] += 2 * US_PER_MINUTE
    later = [
        *first[:7],
        line("user:1", 1, 5, 1, idempotency_key="order-1"),
        b'{"not": "an event"}',
        b"{broken",
    ]
    statuses = [o.status for o in ingest_batch(engine, later, "retry")]
    assert statuses.count(Status.DUPLICATE) == 7 and statuses.count(Status.REJECTED) == 3
    return engine


def run(config: AwsConfig, read: Callable[[AsyncAwsReader], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with AsyncAwsReader(config) as reader:
            return await read(reader)

    return asyncio.run(main())


def both(engine: AwsEngine, reads: list[Read]) -> tuple[list[Any], list[Any]]:
    """Each read from the blocking engine, one after another, and from the async reader,
    all at once."""
    expected = [getattr(engine, name)(*args) for name, args in reads]

    async def all_at_once(reader: AsyncAwsReader) -> list[Any]:
        return list(await asyncio.gather(*(getattr(reader, n)(*a) for n, a in reads)))

    return expected, run(engine.config, all_at_once)


def test_timeline_pages_both_ways_are_the_engines(stored: AwsEngine) -> None:
    reads: list[Read] = []
    for entity in [*ENTITIES, "nobody"]:
        reads += [("timeline", (entity, 0, 2**62, 1000)), ("timeline", (entity, START, END, 3))]
        records = stored.timeline(entity, 0, 2**62, 1000)
        for record in {*records[:2], *records[-2:]}:  # each end, and one step in
            position = (record.event_time_us, record.event_id)
            reads.append(("timeline", (entity, START, END, 2, position, None)))
            reads.append(("timeline", (entity, START, END, 2, None, position)))
    expected, got = both(stored, reads)
    assert got == expected
    assert len(expected[0]) == 17 and any(len(page) == 2 for page in expected)


def test_coverage_rates_and_reasons_are_the_engines(stored: AwsEngine) -> None:
    mid = START + US_PER_DAY + 5 * US_PER_HOUR
    some = ["user:1", "user:2", "zeta", "nobody"]
    reads: list[Read] = [
        ("coverage", ("hour", START, END, None, None)),
        ("coverage", ("hour", mid, END, None, "billing")),
        ("coverage", ("hour", mid, END, ["user:1"], "billing")),
        ("coverage", ("hour", START, END, some, None)),
        ("coverage", ("day", START, END, None, None)),
        ("coverage", ("day", mid, END, some, "billing")),
        ("coverage", ("day", START, END, [], None)),
    ]
    for start, end, source in (
        (0, 2**62, None),
        (0, 2**62, "checkout"),
        (INGESTED, INGESTED + US_PER_MINUTE, "checkout"),
        (0, 1, None),
    ):
        reads += [("rates", (start, end, source)), ("rejection_reasons", (start, end, source))]
    expected, got = both(stored, reads)
    assert got == expected
    assert all(expected[:6]) and not expected[6]
    assert expected[7] and expected[9] and expected[11]  # rates of both minutes, reasons
    with pytest.raises(ValueError, match="granularity"):
        run(stored.config, lambda r: r.coverage("week", START, END, None, None))


def test_entities_counts_events_attempts_and_raw_bytes_are_the_engines(
    stored: AwsEngine,
) -> None:
    reads: list[Read] = [
        ("entities", arguments)
        for arguments in (
            ("", None, 100, None),
            ("", None, 2, None),
            ("", None, 100, "user:1"),
            ("", "billing", 100, None),
            ("user:", None, 100, None),
            ("user:1", None, 100, None),
            ("user:", "billing", 1, "user:1"),
            ("nobody", None, 100, None),
        )
    ]
    reads.append(("counts", ()))
    records = stored.timeline("user:1", 0, 2**62, 1000)
    for record in records[:2] + [r for r in records if r.duplicate_count or r.conflict_count]:
        reads += [
            ("event", (record.event_id,)),
            ("attempts", (record.event_id,)),
            ("read_raw", (record,)),
        ]
    reads.append(("event", (bytes(16),)))
    expected, got = both(stored, reads)
    assert got == expected
    assert [e.entity_id for e in expected[0]] == ["acct-7", "user:1", "user:10", "user:2", "zeta"]
    assert expected[8]["duplicate"] == 7 and expected[-1] is None
    assert any(a and a[0].kind == "conflict" for a in expected[10::3])


def test_a_month_long_grid_keeps_the_bound_of_calls_in_flight(stored: AwsEngine) -> None:
    """A month's grid reads the days noted as having coverage (a query per shard of the
    notes), then the 8 shards of each day: sent together, but never more than the reader's
    bound at once. The days without events cost nothing."""

    class Counted(AsyncAwsReader):
        calls = now = peak = 0

        async def _client(self, service: str) -> Any:
            client = await super()._client(service)
            reader = self

            class Counting:
                def __getattr__(self, name: str) -> Any:
                    async def call(**request: Any) -> Any:
                        reader.calls += 1
                        reader.now += 1
                        reader.peak = max(reader.peak, reader.now)
                        try:
                            return await getattr(client, name)(**request)
                        finally:
                            reader.now -= 1

                    return call

            return Counting()

    start = END - 30 * US_PER_DAY

    async def grid() -> tuple[Any, Counted]:
        async with Counted(stored.config, in_flight=8) as reader:
            return await reader.coverage("day", start, END, None, None), reader

    windows, reader = asyncio.run(grid())
    assert windows == stored.coverage("day", START, END, None, None)  # no events before START
    days = {w.window_start_us for w in windows}
    assert len(days) == 4 and reader.calls == DAY_SHARDS + len(days) * 8
    assert reader.peak == 8


def test_clients_are_made_on_first_use_and_closed(stored: AwsEngine) -> None:
    async def scenario() -> None:
        reader = AsyncAwsReader(stored.config)
        assert reader._clients == {}
        assert await reader.counts() == stored.counts()
        assert set(reader._clients) == {"dynamodb"}
        pool = reader._clients["dynamodb"]._endpoint.http_session  # aiobotocore's, internal
        sessions = list(pool._sessions.values())
        await reader.close()
        assert reader._clients == {}
        assert sessions and all(session.closed for session in sessions)
        assert await reader.event(bytes(16)) is None  # a read after close makes new clients
        await reader.close()

    asyncio.run(scenario())


def test_a_missing_table_fails_as_on_the_engine(server_config: AwsConfig) -> None:
    gone = AwsConfig("no-such-table", server_config.bucket, server_config.region)
    with pytest.raises(ClientError) as blocking:
        AwsEngine(gone).counts()
    with pytest.raises(ClientError) as awaited:
        run(gone, lambda reader: reader.counts())
    assert awaited.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert blocking.value.response["Error"]["Code"] == "ResourceNotFoundException"
