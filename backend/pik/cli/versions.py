"""`pik versions`: the processor's aggregate versions, and what changed between two."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from pik.cli.context import Context, pass_context, time_option
from pik.cli.options import json_option
from pik.domain.instants import END_OF_TIME_US, format_instant
from pik.domain.tally import GRANULARITIES
from pik.domain.versions import AggregateSpec, SpecError, Version, diff
from pik.engines.local.versions import LocalVersionStore
from pik.formatting import lag
from pik.ports import VersionStore
from pik.services.processor import window_events
from pik.storage_errors import StoreUnavailableError
from pik.textsafe import inert


def _spec(ctx: Context, by: str | None, total: str | None) -> AggregateSpec:
    """The spec asked for; with neither --by nor --sum, on a stack with its processor on,
    the one that processor computes, else daily counts."""
    if by is None and total is None and ctx.stack:
        with ctx.engine() as engine:
            computed = engine.config.processor_spec  # type: ignore[attr-defined]
        if computed is not None:
            by, total = computed
    try:
        return AggregateSpec(by, total) if by else AggregateSpec(sum_pointer=total)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.field}") from None


@contextmanager
def _versions(ctx: Context) -> Iterator[VersionStore]:
    store: VersionStore
    if ctx.stack:
        from pik.engines.aws.clients import Clients
        from pik.engines.aws.versions import AwsVersionStore

        with ctx.engine() as engine:  # finds the stack, or says why it cannot
            config = engine.config  # type: ignore[attr-defined]
            store = AwsVersionStore(Clients(config.region, None, config.endpoint_url), config.table)
            yield store
        return
    if not ctx.store_path.is_dir():
        raise click.ClickException(f"no store at {ctx.store_path}; create one with `pik ingest`")
    try:
        store = LocalVersionStore(ctx.store_path)
    except StoreUnavailableError as exc:
        raise click.ClickException(
            f"{exc} (at {ctx.store_path}); a store you may only read needs its versions file"
            " created once by its owner (any `pik versions` command run as the owner)"
        ) from None
    try:
        yield store
    finally:
        store.close()


def _spec_options(command: Any) -> Any:
    command = click.option(
        "--by",
        type=click.Choice(list(GRANULARITIES)),
        help="The window size the versions were computed for [default: day; on a stack "
        "with its processor on, with no --sum either: the stack's ProcessorWindow and "
        "ProcessorSum].",
    )(command)
    return click.option(
        "--sum",
        "total",
        metavar="POINTER",
        help="The payload number they sum (a JSON pointer such as /amount), if any.",
    )(command)


@click.group()
def versions() -> None:
    """Aggregate versions the processor computed: one per change of a window's events.

    Replay a slice into the processor to compute them (`pik replay plan ... --target
    processor:day`; on a stack deployed with EnableProcessor=true, `--target queue`); a
    version is never overwritten.
    """


def _window(v: Version) -> str:
    """A window as people write it: the day, or the day and hour (UTC)."""
    text = format_instant(v.window_start_us)
    return text[:10] if v.spec.granularity == "day" else text[:13] + "Z"


def _row(v: Version) -> list[str | Text]:
    a = v.aggregate
    return [
        _window(v),
        str(v.version),
        str(a.count),
        str(a.late),
        "" if a.total is None else str(a.total),
        format_instant(v.computed_us)[:19] + "Z",
        inert((v.replay_id or "")[:8]),
    ]


def _table(title: str, rows: list[Version]) -> Table:
    table = Table(title=Text(title))
    for name in ("window", "version", "events", "late", "sum", "computed", "replay"):
        table.add_column(
            name,
            justify="right" if name in ("version", "events", "late", "sum") else "left",
            no_wrap=True,
        )
    for v in rows:
        table.add_row(*_row(v))
    return table


@versions.command("list")
@click.argument("entity")
@click.option("--from", "start", metavar="T", help="First window start, inclusive.")
@click.option("--to", "end", metavar="T", help="Last window start, exclusive.")
@_spec_options
@json_option
@pass_context
def list_versions(
    ctx: Context, entity: str, start: str | None, end: str | None, by: str | None, total: str | None
) -> None:
    """The latest version of each of ENTITY's windows."""
    spec = _spec(ctx, by, total)
    start_us = time_option(start, "--from") or 0
    to_us = time_option(end, "--to")
    end_us = END_OF_TIME_US if to_us is None else to_us  # the epoch is a time, not "not given"
    with _versions(ctx) as store:
        found = store.windows(spec.spec_id, entity, start_us, end_us)
    if ctx.as_json:
        ctx.emit({"versions": [v.to_document() for v in found]})
        return
    ctx.out.print(
        _table(f"latest versions of {inert(entity, limit=80)} by {spec.granularity}", found)
    )
    if not found:
        compute = (
            "replay a slice to the stack's queue (target queue) with its processor on "
            "(EnableProcessor, ProcessorWindow, ProcessorSum: docs/deploy.md)"
            if ctx.stack
            else "replay a slice into the processor (target processor:<by>[:<sum>])"
        )
        ctx.out.print(
            f"no versions by {spec.granularity}"
            + (f" summing {spec.sum_pointer}" if spec.sum_pointer else "")
            + ": versions are "
            f"kept per window size and sum (--by, --sum); {compute} to compute some",
            markup=False,
            highlight=False,
        )


@versions.command()
@click.argument("entity")
@click.argument("window")
@_spec_options
@json_option
@pass_context
def history(ctx: Context, entity: str, window: str, by: str | None, total: str | None) -> None:
    """Every version of ENTITY's window that holds the time WINDOW, oldest first."""
    spec = _spec(ctx, by, total)
    window_us = spec.window_of(time_option(window, "WINDOW") or 0)
    with _versions(ctx) as store:
        found = store.history(spec.spec_id, entity, window_us)
    if ctx.as_json:
        ctx.emit({"versions": [v.to_document() for v in found]})
        return
    label = f"versions of {inert(entity, limit=80)} at {format_instant(window_us)}"
    ctx.out.print(_table(label, found))


@versions.command("diff")
@click.argument("entity")
@click.argument("window")
@click.argument("old", type=int, required=False)
@click.argument("new", type=int, required=False)
@_spec_options
@json_option
@pass_context
def diff_versions(
    ctx: Context,
    entity: str,
    window: str,
    old: int | None,
    new: int | None,
    by: str | None,
    total: str | None,
) -> None:
    """What changed in ENTITY's window between versions OLD and NEW (default: the last
    two): the events that came and went, and how late each arrived."""
    spec = _spec(ctx, by, total)
    window_us = spec.window_of(time_option(window, "WINDOW") or 0)
    with _versions(ctx) as store:
        found = {v.version: v for v in store.history(spec.spec_id, entity, window_us)}
    if len(found) < 2 and (old is None or new is None):
        raise click.ClickException(
            f"{len(found)} version(s) of that window: a diff needs two; "
            "`pik versions history` lists them"
        )
    newest = max(found, default=0)
    old = newest - 1 if old is None else old
    new = newest if new is None else new
    for number in (old, new):
        if number not in found:
            raise click.ClickException(
                f"no version {number} of that window; `pik versions history` lists them"
            )
    with ctx.engine() as engine:
        records = window_events(engine, entity, window_us, window_us + spec.step_us)
    change = diff(found[old], found[new], {r.event_id: r for r in records})
    document = change.to_document()
    if ctx.as_json:
        ctx.emit(document)
        return
    ctx.out.print(
        f"version {old} → {new}: {document['count_change']:+d} events"
        + ("" if document["total_change"] is None else f", sum {document['total_change']}")
    )
    table = Table()
    for name in ("change", "event id", "event time", "lag"):
        table.add_column(name)
    for kind, changes in (("added", change.added), ("removed", change.removed)):
        for c in changes:
            table.add_row(
                kind,
                c.event_id.hex(),
                "" if c.event_time_us is None else format_instant(c.event_time_us),
                "" if c.lag_ms is None else lag(c.lag_ms),
            )
    ctx.out.print(table)


COMMANDS = [versions]
