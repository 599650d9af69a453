"""Plan a batch's index writes as DynamoDB transactions of at most 100 actions.

Pure: given what to write, returns the transactions; the engine runs them. A batch's new
events are claimed (their items written, on the condition that nobody holds them) before
their object is written, in transactions of claims only. Each event belongs to a commit
group; once the object is durable, one transaction per group writes its commit item with
the counters its events move (coverage, rate and total items), so whatever a crash leaves
behind is consistent: an event is stored with its counts or not at all. Counters are
aggregated per group, never one write per event, and each group picks one shard of the
hot rate and total items.
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
COMMIT_ACTIONS = 1
RATE_DAY_ACTIONS = 1
"""The note of the ingest day, which holds the rate items (when not noted already)."""


@dataclass(slots=True)
class DayNotes:
    """The days a writer has noted ((kind, day us), see ``shapes.note_day``), each once,
    and the one shard of the notes it writes to."""

    shard: int = 0
    noted: set[tuple[str, int]] = field(default_factory=set)


@dataclass(slots=True)
class NewEvent:
    position: int
    event: Event
    lag_us: int
    item: Item = field(default_factory=dict)
    """The event's item, which is its claim (it names the object and the commit group)."""
    group: int = 0
    frame: tuple[int, int] | None = None
    """Where the event's frame starts and ends in the object (``None``: its bytes are
    already in an earlier request's object, which this claim points at)."""
    holder: Item | None = None
    """A claim never committed (abandoned, or older than the lease) that this one takes over."""


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
    """Action index -> the event whose claim that action writes."""
    guards: dict[int, list[NewEvent]] = field(default_factory=dict)
    """Action index -> the events whose claims need that action (a group abandoned)."""
    notes: set[tuple[str, int]] = field(default_factory=set)
    """The days this transaction notes: noted once it commits."""

    def note(self, table: str, kind: str, day_us: int, notes: DayNotes) -> None:
        if (kind, day_us) not in notes.noted and (kind, day_us) not in self.notes:
            self.notes.add((kind, day_us))
            self.actions.append(shapes.note_day(table, kind, day_us, notes.shard))


def _counters(rows: dict[str, Counter[str]], table: str, minute: int, shard: int) -> list[Request]:
    return [
        shapes.add_rates(table, shapes.rate_key(minute, source, shard), counts)
        for source, counts in sorted(rows.items())
    ]


def commit_groups(events: Sequence[NewEvent]) -> list[list[NewEvent]]:
    """The events partitioned so that each group's counters and its commit item fit in one
    transaction. Events sharing a coverage item share a group, so it is written once."""
    groups: list[list[NewEvent]] = []
    pending: list[NewEvent] = []
    coverage: set[tuple[int, str, str]] = set()
    sources: set[str] = set()
    days: set[int] = set()

    def close() -> None:
        if pending:
            groups.append(list(pending))
            pending.clear()
            coverage.clear()
            sources.clear()
            days.clear()

    fixed = TOTALS_ACTIONS + COMMIT_ACTIONS + RATE_DAY_ACTIONS
    for new in sorted(events, key=_coverage_of):
        cover = _coverage_of(new)
        # Every day's note is counted, noted already or not: a group fits either way.
        needed = (
            (cover not in coverage) + (new.event.source not in sources) + (cover[0] not in days)
        )
        used = len(coverage) + len(sources) + len(days) + fixed
        if used + needed > shapes.MAX_TRANSACTION_ACTIONS:
            close()
        pending.append(new)
        coverage.add(cover)
        sources.add(new.event.source)
        days.add(cover[0])
    close()
    return groups


def _coverage_of(new: NewEvent) -> tuple[int, str, str]:
    event = new.event
    return (event.event_time_us - event.event_time_us % US_PER_DAY, event.entity_id, event.source)


def claims(table: str, events: Sequence[NewEvent], at_us: int) -> list[Transaction]:
    """Transactions writing the events' claims (their items) before their object exists.

    A new event's claim is refused if the event is claimed; a takeover is refused unless
    the stale claim is unchanged, and travels with a put marking its old group abandoned
    (refused if that group was committed after all), so a late commit of it fails.
    """
    plans: list[Transaction] = []
    plan = Transaction()
    abandoned: dict[tuple[str, int], int] = {}
    for new in events:
        old = None
        if new.holder is not None:
            old = (shapes.commit_object(new.holder), int(new.holder["grp"]["N"]))
        needed = 1 + (old is not None and old not in abandoned)
        if len(plan.actions) + needed > shapes.MAX_TRANSACTION_ACTIONS:
            plans.append(plan)
            plan, abandoned = Transaction(), {}
        if old is None:
            plan.puts[len(plan.actions)] = new
            plan.actions.append(shapes.put_event(table, new.item))
            continue
        if old not in abandoned:
            abandoned[old] = len(plan.actions)
            plan.guards[len(plan.actions)] = []
            plan.actions.append(shapes.abandon_group(table, old[0], old[1], at_us))
        plan.guards[abandoned[old]].append(new)
        plan.puts[len(plan.actions)] = new
        plan.actions.append(shapes.take_over(table, new.item, *old))
    if plan.actions:
        plans.append(plan)
    return plans


def commit(
    table: str,
    segment: str,
    group: int,
    events: Sequence[NewEvent],
    ingest_us: int,
    late_after_us: int,
    shard: Callable[[], int],
    notes: DayNotes | None = None,
) -> Transaction:
    """The transaction committing one group: its commit item, then the counters it moves
    and the notes of the days they are on (those not noted already)."""
    notes = notes or DayNotes()
    minute = ingest_us - ingest_us % US_PER_MINUTE
    plan = Transaction(actions=[shapes.put_commit(table, segment, group, ingest_us)])
    plan.guards[0] = list(events)
    hours: defaultdict[tuple[int, str, str], Counter[int]] = defaultdict(Counter)
    rates: defaultdict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for new in events:
        event = new.event
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
        plan.note(table, shapes.COVERAGE_DAYS, day, notes)
    plan.actions.extend(_counters(rates, table, minute, shard()))
    plan.actions.append(shapes.add_totals(table, shard(), totals))
    plan.note(table, shapes.RATE_DAYS, minute - minute % US_PER_DAY, notes)
    return plan


def attempts_and_rejections(
    table: str,
    attempts: Sequence[Attempt],
    rejections: Sequence[tuple[str, str]],
    ingest_us: int,
    shard: Callable[[], int],
    notes: DayNotes | None = None,
) -> list[Transaction]:
    """Transactions counting later arrivals on their events, and rejections (source, code)."""
    notes = notes or DayNotes()
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
            plans.append(_attempt_transaction(table, groups, refused, ingest_us, shard(), notes))
        groups.clear()
        refused.clear()
        sources.clear()
        used = 0

    for group, rejection in units:
        source = group[0].source if group else rejection[0]  # type: ignore[index]
        own = 1 + len({(a.kind, a.origin) for a in group}) if group else 0
        wanted = used + own + len(sources | {source}) + TOTALS_ACTIONS + RATE_DAY_ACTIONS
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
    notes: DayNotes,
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
    plan.actions.append(shapes.add_totals(table, shard, +totals))
    plan.note(table, shapes.RATE_DAYS, minute - minute % US_PER_DAY, notes)
    return plan
