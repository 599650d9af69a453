"""Plan a batch's index writes as DynamoDB transactions of at most 100 actions.

Pure: given what to write, returns the transactions; the engine runs them. Each new event
travels in the same transaction as the counters it moves (its coverage item, the rate and
total items), so whatever a crash leaves behind is consistent: an event is indexed with
its counts or not at all. Counters are aggregated per transaction, never one write per
event, and each transaction picks one shard of the hot rate and total items.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pik.domain.envelope import Event
from pik.domain.instants import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE
from pik.domain.lag import lag_bucket
from pik.engines.aws import shapes
from pik.engines.aws.shapes import Item, Request

TOTALS_ACTIONS = 1


@dataclass(slots=True)
class NewEvent:
    position: int
    event: Event
    item: Item
    lag_us: int


@dataclass(slots=True)
class Attempt:
    """A later arrival of a stored event (a duplicate, or an idempotency conflict)."""

    event_id: bytes
    kind: str
    origin: str
    source: str


@dataclass(slots=True)
class Transaction:
    actions: list[Request] = field(default_factory=list)
    puts: dict[int, NewEvent] = field(default_factory=dict)
    """Action index -> the event whose first arrival that action writes."""


def _counters(rows: dict[str, Counter[str]], table: str, minute: int, shard: int) -> list[Request]:
    return [
        shapes.add_rates(table, shapes.rate_key(minute, source, shard), counts)
        for source, counts in sorted(rows.items())
    ]


def new_events(
    table: str,
    events: Sequence[NewEvent],
    ingest_us: int,
    late_after_us: int,
    shard: Callable[[], int],
) -> list[Transaction]:
    """Transactions writing first arrivals, each with the counters its events move."""
    minute = ingest_us - ingest_us % US_PER_MINUTE
    plans: list[Transaction] = []
    pending: list[NewEvent] = []
    coverage: set[tuple[int, str, str]] = set()
    sources: set[str] = set()

    def close() -> None:
        if pending:
            plans.append(_new_transaction(table, pending, minute, late_after_us, shard))
            pending.clear()
            coverage.clear()
            sources.clear()

    # Events sharing a coverage item travel together, so the item is written once for all
    # of them (a transaction is atomic, so their order within the batch does not matter).
    for new in sorted(events, key=_coverage_of):
        event = new.event
        cover = _coverage_of(new)
        needed = 1 + (cover not in coverage) + (event.source not in sources)
        used = len(pending) + len(coverage) + len(sources) + TOTALS_ACTIONS
        if used + needed > shapes.MAX_TRANSACTION_ACTIONS:
            close()
        pending.append(new)
        coverage.add(cover)
        sources.add(event.source)
    close()
    return plans


def _coverage_of(new: NewEvent) -> tuple[int, str, str]:
    event = new.event
    return (event.event_time_us - event.event_time_us % US_PER_DAY, event.entity_id, event.source)


def _new_transaction(
    table: str,
    events: Sequence[NewEvent],
    minute: int,
    late_after_us: int,
    shard: Callable[[], int],
) -> Transaction:
    plan = Transaction()
    hours: defaultdict[tuple[int, str, str], Counter[int]] = defaultdict(Counter)
    rates: defaultdict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for new in events:
        event = new.event
        plan.puts[len(plan.actions)] = new
        plan.actions.append(shapes.put_event(table, new.item))
        day = event.event_time_us - event.event_time_us % US_PER_DAY
        hours[(day, event.entity_id, event.source)][(event.event_time_us - day) // US_PER_HOUR] += 1
        row = rates[event.source]
        row["a"] += 1
        row[shapes.LAG_ATTRIBUTES[lag_bucket(new.lag_us // 1000)]] += 1
        totals["a"] += 1
        if new.lag_us > late_after_us:
            row["lt"] += 1
            totals["lt"] += 1
    for (day, entity_id, source), counts in hours.items():
        plan.actions.append(shapes.add_coverage(table, day, entity_id, source, counts))
    plan.actions.extend(_counters(rates, table, minute, shard()))
    plan.actions.append(shapes.add_totals(table, shard(), totals, minute))
    return plan


def attempts_and_rejections(
    table: str,
    attempts: Sequence[Attempt],
    rejections: Sequence[tuple[str, str]],
    ingest_us: int,
    shard: Callable[[], int],
) -> list[Transaction]:
    """Transactions counting later arrivals on their events, and rejections (source, code)."""
    by_event: dict[bytes, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_event[attempt.event_id].append(attempt)
    units: list[tuple[list[Attempt], tuple[str, str] | None]] = [
        (group, None) for group in by_event.values()
    ]
    units += [([], rejection) for rejection in rejections]
    plans: list[Transaction] = []
    groups: list[list[Attempt]] = []
    refused: list[tuple[str, str]] = []
    sources: set[str] = set()
    used = 0

    def close() -> None:
        nonlocal used
        if groups or refused:
            plans.append(_attempt_transaction(table, groups, refused, ingest_us, shard()))
        groups.clear()
        refused.clear()
        sources.clear()
        used = 0

    for group, rejection in units:
        source = group[0].source if group else rejection[0]  # type: ignore[index]
        own = 1 + len({(a.kind, a.origin) for a in group}) if group else 0
        wanted = used + own + len(sources | {source}) + TOTALS_ACTIONS
        if wanted > shapes.MAX_TRANSACTION_ACTIONS:
            close()
        if group:
            groups.append(group)
        else:
            assert rejection is not None
            refused.append(rejection)
        sources.add(source)
        used += own
    close()
    return plans


def _attempt_transaction(
    table: str,
    groups: Sequence[Sequence[Attempt]],
    rejections: Sequence[tuple[str, str]],
    ingest_us: int,
    shard: int,
) -> Transaction:
    minute = ingest_us - ingest_us % US_PER_MINUTE
    plan = Transaction()
    rates: defaultdict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for group in groups:
        event_id = group[0].event_id
        kinds = Counter(a.kind for a in group)
        plan.actions.append(
            shapes.count_attempts(table, event_id, kinds["duplicate"], kinds["conflict"], ingest_us)
        )
        for (kind, origin), count in sorted(Counter((a.kind, a.origin) for a in group).items()):
            plan.actions.append(
                shapes.record_attempt(table, event_id, kind, origin, count, ingest_us)
            )
        row = rates[group[0].source]
        row["du"] += kinds["duplicate"]
        totals["du"] += kinds["duplicate"]
        row["cf"] += kinds["conflict"]
        row["rj"] += kinds["conflict"]
        row["rj_idempotency_conflict"] += kinds["conflict"]
        totals["rj"] += kinds["conflict"]
    for source, code in rejections:
        row = rates[source]
        row["rj"] += 1
        row[f"rj_{code}"] += 1
        totals["rj"] += 1
    rows = {source: +counts for source, counts in rates.items()}
    plan.actions.extend(_counters({k: v for k, v in rows.items() if v}, table, minute, shard))
    plan.actions.append(shapes.add_totals(table, shard, +totals, minute))
    return plan
