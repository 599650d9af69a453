"""Query commands: timeline, event, coverage, rates, entities."""

from __future__ import annotations

import json
from typing import TypeVar

import click
from rich.table import Table
from rich.text import Text

from pik.cli.context import Context, pass_context, time_option
from pik.cli.options import json_option
from pik.documents import (
    coverage_document,
    entities_document,
    event_document,
    rates_document,
    timeline_document,
)
from pik.domain.envelope import entity_shape_problem, parse_event_id
from pik.domain.instants import (
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    TimeFormatError,
    format_instant,
    query_range,
)
from pik.domain.windows import Gap
from pik.formatting import lag, median_bucket
from pik.services import query
from pik.textsafe import inert

SHOWN_PAYLOAD_CHARS = 20_000


def _range(
    start: str | None,
    end: str | None,
    default_span: int | None,
    ahead: int = US_PER_DAY,
    names: tuple[str, str] = ("--from", "--to"),
) -> tuple[int, int]:
    end_us = time_option(end, names[1])
    start_us = time_option(start, names[0])
    try:
        return query_range(start_us, end_us, default_span, ahead)
    except TimeFormatError:
        raise click.BadParameter(
            f"{names[0]} must be before {names[1]}", param_hint=names[0]
        ) from None


T = TypeVar("T", str, tuple[str, ...])


def _entity_ids(value: T) -> T:
    """An entity id (or ids) to look up: one no entity can have is a mistake to point out
    (a pasted trailing space, say), not an empty answer."""
    for entity_id in (value,) if isinstance(value, str) else value:
        problem = entity_shape_problem(entity_id)
        if problem is not None:
            raise click.BadParameter(f"'{inert(entity_id, limit=80)}': {problem}")
    return value


def _cell(value: str) -> Text:
    return Text(inert(value, limit=120))


def _field(value: object) -> str:
    """A field of `pik event` in words: JSON's null and booleans, not Python's."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value) if isinstance(value, dict) else str(value)


@click.command()
@click.argument("entity", callback=lambda _c, _p, value: _entity_ids(value))
@click.option("--from", "start", metavar="T", help="Start of event time, inclusive.")
@click.option("--to", "end", metavar="T", help="End of event time, exclusive.")
@click.option("--limit", type=click.IntRange(1, query.MAX_PAGE), default=100, show_default=True)
@click.option("--cursor", help="A `next` or `prev` value from a previous page.")
@click.option(
    "--latest",
    is_flag=True,
    help="Open on the newest page (the events just before --to) instead of the oldest.",
)
@json_option
@pass_context
def timeline(
    ctx: Context,
    entity: str,
    start: str | None,
    end: str | None,
    limit: int,
    cursor: str | None,
    latest: bool,
) -> None:
    """Events of ENTITY in event-time order, one page at a time.

    Times are ISO-8601 with Z or an offset, a date, `now`, or relative like -2h, -7d.
    """
    start_us, end_us = _range(start, end, None)
    with ctx.engine() as engine:
        try:
            page = query.timeline_page(engine, entity, start_us, end_us, limit, cursor, latest)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cursor") from None
    if ctx.as_json:
        ctx.emit(timeline_document(entity, start_us, end_us, page))
        return
    table = Table(title=Text(f"timeline of {inert(entity, limit=80)}"))
    for name in ("event time", "source", "type", "lag", "dups", "conflicts", "event id"):
        # An id is copied whole into the next command: never broken across lines.
        table.add_column(
            name,
            justify="right" if name in ("lag", "dups", "conflicts") else "left",
            overflow="fold",
            no_wrap=name == "event id",
            min_width=32 if name == "event id" else None,
        )
    for r in page.events:
        table.add_row(
            format_instant(r.event_time_us),
            _cell(r.source),
            _cell(r.event_type),
            lag(r.lag_ms),
            str(r.duplicate_count),
            str(r.conflict_count),
            r.event_id.hex(),
        )
    ctx.out.print(table)
    if not page.events:
        ctx.out.print("no events in that range; `pik entities` lists known entities")
    for label, token in (("prev", page.prev), ("next", page.next)):
        if token:
            ctx.out.print(f"{label}: --cursor {token}")


@click.command()
@click.argument("event_id")
@json_option
@pass_context
def event(ctx: Context, event_id: str) -> None:
    """One event: its envelope and payload, re-verified against its sha256 now."""
    try:
        key = parse_event_id(event_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT_ID") from None
    with ctx.engine() as engine:
        detail = query.event_detail(engine, key)
    if detail is None:
        raise click.ClickException(
            f"no event {key.hex()} in this store; find ids with `pik timeline ENTITY`"
        )
    document = event_document(detail)
    if ctx.as_json:
        ctx.emit(document)
    else:
        table = Table(show_header=False, title=f"event {key.hex()}")
        table.add_column(style="bold", overflow="fold")
        table.add_column(overflow="fold")
        for name, value in document.items():
            if name in ("payload", "raw", "attempts"):
                continue
            table.add_row(name, _cell(_field(value)))
        ctx.out.print(table)
        for attempt in document["attempts"]:
            ctx.out.print(
                Text(
                    inert(
                        f"{attempt['kind']} x{attempt['count']} via {attempt['origin']} "
                        f"({attempt['first_seen']} … {attempt['last_seen']})"
                    )
                )
            )
        payload = json.dumps(document["payload"], indent=2, ensure_ascii=False)
        ctx.out.print(Text(inert(payload, keep_newlines=True, limit=SHOWN_PAYLOAD_CHARS)))
    if not detail.verified:
        raise click.ClickException(
            "the stored bytes do not match the sha256 recorded at ingest; run `pik verify`"
        )


@click.command()
@click.option("--from", "start", metavar="T", help="Start of event time (default: 7 days ago).")
@click.option(
    "--to", "end", metavar="T", help="End of event time, exclusive (default: a day past now)."
)
@click.option(
    "--by", "granularity", type=click.Choice(["hour", "day"]), default="day", show_default=True
)
@click.option(
    "--entity",
    "entities",
    multiple=True,
    callback=lambda _c, _p, value: _entity_ids(value),
    help="Only this entity (repeatable).",
)
@click.option("--source", help="Only events of this source.")
@json_option
@pass_context
def coverage(
    ctx: Context,
    start: str | None,
    end: str | None,
    granularity: str,
    entities: tuple[str, ...],
    source: str | None,
) -> None:
    """Events per entity per hour or day, and the gaps: empty windows between busy ones."""
    start_us, end_us = _range(start, end, 7 * US_PER_DAY)
    with ctx.engine() as engine:
        report = query.coverage_report(
            engine, start_us, end_us, granularity, list(entities) or None, source
        )
    if ctx.as_json:
        ctx.emit(coverage_document(start_us, end_us, report))
        return
    by_entity: dict[str, dict[int, int]] = {}
    for w in report.windows:
        by_entity.setdefault(w.entity_id, {})[w.window_start_us] = w.count
    runs: dict[str, list[Gap]] = {}
    for gap in report.gaps:
        runs.setdefault(gap.entity_id, []).append(gap)
    empty = sum(gap.windows for gap in report.gaps)
    table = Table(
        title=f"coverage by {granularity} ({len(report.gaps)} gap(s) of {empty} {granularity}(s))"
    )
    table.add_column("entity", overflow="fold")
    table.add_column("windows", justify="right", overflow="fold")
    table.add_column("events", justify="right", overflow="fold")
    table.add_column("gaps", overflow="fold")
    cut, unit = (13, "h") if granularity == "hour" else (10, "d")
    for entity_id, counts in sorted(by_entity.items()):
        missing = runs.get(entity_id, [])
        shown = ", ".join(
            f"{format_instant(g.window_start_us)[:cut]} ({g.windows}{unit})" for g in missing[:5]
        )
        table.add_row(
            _cell(entity_id),
            str(len(counts)),
            str(sum(counts.values())),
            shown + (f" … +{len(missing) - 5}" if len(missing) > 5 else ""),
        )
    ctx.out.print(table)
    silent = [e for e in entities if e not in by_entity]
    if silent:
        ctx.err.print(
            Text(
                f"no events{'' if source is None else ' from ' + inert(source, limit=80)} in "
                f"this range for: {inert(', '.join(silent), limit=300)} "
                "(`pik entities PREFIX` finds an id; --from/--to widen the range)",
                style="yellow",
            ),
            soft_wrap=True,
        )


@click.command()
@click.option("--since", "start", metavar="T", help="From this ingest minute (default: -1h).")
@click.option("--until", "end", metavar="T", help="Up to this ingest minute, exclusive.")
@click.option("--source", help="Only this source.")
@json_option
@pass_context
def rates(ctx: Context, start: str | None, end: str | None, source: str | None) -> None:
    """Ingest counters per minute per source: accepted, duplicate, rejected, late."""
    start_us, end_us = _range(start, end, US_PER_HOUR, US_PER_MINUTE, ("--since", "--until"))
    with ctx.engine() as engine:
        report = query.rates_report(engine, start_us, end_us, source)
        late_after_ms = engine.limits.late_after_us // 1000
    if ctx.as_json:
        ctx.emit(rates_document(start_us, end_us, late_after_ms, report))
        return
    table = Table(title=f"ingest per minute (late = lag over {late_after_ms // 1000}s)")
    names = ("minute", "source", "accepted", "duplicate", "rejected", "conflict", "late", "lag p50")
    for name in names:
        table.add_column(
            name, justify="left" if name in ("minute", "source") else "right", overflow="fold"
        )
    for row in report.rows:
        table.add_row(
            format_instant(row.minute_us)[:16] + "Z",
            _cell(row.source),
            str(row.accepted),
            str(row.duplicate),
            str(row.rejected),
            str(row.conflict),
            str(row.late),
            median_bucket(row.lag),
        )
    ctx.out.print(table)
    if report.reasons:
        reasons = Table(title="rejections by reason")
        for name in ("source", "code", "count"):
            reasons.add_column(name, overflow="fold")
        for src, code, count in report.reasons:
            reasons.add_row(_cell(src), code, str(count))
        ctx.out.print(reasons)


@click.command()
@click.argument("prefix", default="")
@click.option("--source", help="Only entities with events from this source.")
@click.option("--limit", type=click.IntRange(1, query.MAX_PAGE), default=100, show_default=True)
@click.option("--after", help="Continue after this entity id (the `next` of a previous page).")
@json_option
@pass_context
def entities(ctx: Context, prefix: str, source: str | None, limit: int, after: str | None) -> None:
    """Entities whose id starts with PREFIX, with their event counts and time span."""
    with ctx.engine() as engine:
        page = query.entity_page(engine, prefix, source, limit, after)
    rows = page.entities
    document = entities_document(rows, page.next)
    if ctx.as_json:
        ctx.emit(document)
        return
    table = Table(title=f"{len(rows)} entit{'y' if len(rows) == 1 else 'ies'}")
    for name in ("entity", "sources", "events", "first event", "last event"):
        table.add_column(name, justify="right" if name == "events" else "left", overflow="fold")
    for r in rows:
        table.add_row(
            _cell(r.entity_id),
            _cell(", ".join(r.sources)),
            str(r.count),
            format_instant(r.first_event_us)[:19] + "Z",
            format_instant(r.last_event_us)[:19] + "Z",
        )
    ctx.out.print(table)
    if document["next"]:
        ctx.out.print(Text(f"more: --after {inert(document['next'])}"))


COMMANDS = [timeline, event, coverage, rates, entities]
