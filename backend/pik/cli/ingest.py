"""`pik ingest`: NDJSON in, one envelope a line."""

from __future__ import annotations

import functools
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pik.cli.context import Context, pass_context
from pik.cli.options import EXIT_INTERRUPTED, json_option
from pik.documents import ingest_document
from pik.engines.local import LocalEngine
from pik.ports import EventStore
from pik.services import parallel_ingest as parallel
from pik.services.ingest import DEFAULT_BATCH, IngestReport, ingest_ndjson
from pik.storage_errors import StoreFullError, StoreUnavailableError
from pik.textsafe import inert

SHOWN_REJECTIONS = 20
NOT_JSON_LINES = frozenset(
    {"invalid_json", "not_an_object", "invalid_utf8", "bom_not_allowed", "empty", "too_large"}
)
"""Rejections of lines that are not one JSON object each: a whole file of them is likely
not NDJSON at all."""
PROGRESS_FROM_BYTES = 4 * 1024 * 1024


@click.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Events written and fsync'd together.",
)
@click.option(
    "--origin",
    default="cli",
    show_default=True,
    help="Label recorded with every arrival (which feed or run sent it).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 16),
    default=None,
    help="Processes ingesting parts of FILE at once. Default: 2 on a machine with two or "
    "more cores, for a file of 4 MiB or more on a local store; else 1.",
)
@json_option
@pass_context
def ingest(ctx: Context, file: BinaryIO, batch_size: int, origin: str, jobs: int | None) -> None:
    """Ingest NDJSON events from FILE (or - for standard input).

    Valid lines are stored even when others are rejected; every line is accounted for.
    Exits 1 when any line was rejected, after storing the rest.
    """
    if not origin or len(origin.encode("utf-8")) > 64 or not origin.isprintable():
        raise click.BadParameter("1 to 64 bytes of printable characters", param_hint="--origin")
    size = _size(file)
    jobs = _jobs(ctx, file, size, jobs)
    show = size >= PROGRESS_FROM_BYTES and not ctx.as_json and ctx.err.is_terminal
    if _typed(file):
        ctx.err.print(
            "reading NDJSON events typed here, one envelope a line; end with Ctrl-D "
            "(or name a FILE: pik ingest events.ndjson)",
            style="dim",
        )
    try:
        if jobs > 1:
            path = Path(os.path.realpath(file.name))
            report = _in_parallel(ctx, path, origin, batch_size, jobs, size, show)
        else:
            with ctx.engine(create=True) as engine:
                if show:
                    report = _with_progress(ctx, engine, file, origin, batch_size, size)
                else:
                    report = ingest_ndjson(engine, file, origin, batch_size)
    except KeyboardInterrupt:
        ctx.err.print(
            "interrupted: the batches committed before Ctrl-C are stored; the one being "
            "written may or may not be. Ingest the same input again to finish and settle it: "
            "the lines already stored answer duplicate (and count as duplicates in "
            "`pik rates`).",
            style="yellow",
        )
        sys.exit(EXIT_INTERRUPTED)
    if ctx.as_json:
        ctx.emit(ingest_document(report))
    else:
        _print(ctx, report)
    if report.rejected:
        if not ctx.as_json:
            ctx.err.print(Text(_rejected_advice(report), style="yellow"))
        sys.exit(1)


def _typed(file: BinaryIO) -> bool:
    """Whether FILE is standard input left on a terminal: a person, not a pipe, types it."""
    try:
        return file.fileno() == sys.stdin.fileno() and os.isatty(file.fileno())
    except (OSError, ValueError):
        return False


def _rejected_advice(report: IngestReport) -> str:
    if report.accepted or report.duplicate:
        return (
            f"{report.rejected} line(s) rejected; the other lines were stored. "
            "Fix the lines named above and ingest them again."
        )
    nothing = f"every line was rejected ({report.rejected}): no event was stored, only the "
    if set(report.by_code) <= NOT_JSON_LINES:
        return (
            nothing + "rejections counted. Is this NDJSON, one JSON envelope a line (not CSV, "
            "not one JSON array)? docs/event-model.md shows an envelope."
        )
    return nothing + (
        "rejections counted. The reasons are named above; docs/event-model.md has each."
    )


def _size(file: BinaryIO) -> int:
    try:
        status = os.fstat(file.fileno())
    except (OSError, ValueError):
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def _named_file(file: BinaryIO) -> bool:
    """Whether FILE is the regular file its name names, by a name other processes can open
    too: not standard input redirected from a file, not a descriptor's name
    (/dev/fd/N, /proc/self/fd/N), which means another file in another process."""
    try:
        opened, named = os.fstat(file.fileno()), os.stat(file.name)
    except (OSError, ValueError, TypeError):
        return False
    real = os.path.realpath(file.name)
    if not os.path.isabs(real) or real.startswith(("/dev/", "/proc/")):
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def _jobs(ctx: Context, file: BinaryIO, size: int, asked: int | None) -> int:
    """How many processes ingest: what was asked, or the default for this file."""
    splittable = size > 0 and not ctx.stack and _named_file(file)
    if asked is None:
        cores = os.cpu_count() or 1
        return min(2, cores) if splittable and size >= PROGRESS_FROM_BYTES else 1
    if asked > 1 and not splittable:
        where = "a stack" if ctx.stack else "standard input or a pipe"
        raise click.BadParameter(
            f"several processes need a regular file on a local store, not {where}; "
            "leave --jobs out",
            param_hint="--jobs",
        )
    return asked


Advance = Callable[[int, int, int, int], None]
"""Tell the bar: bytes of the file read, then accepted, duplicate and rejected so far."""


@contextmanager
def _bar(ctx: Context, label: str, size: int, show: bool) -> Iterator[Advance]:
    columns = (
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[summary]}"),
    )
    with Progress(*columns, console=ctx.err, transient=True, disable=not show) as progress:
        task = progress.add_task("ingest", total=size, summary="")

        def advance(done: int, accepted: int, duplicate: int, rejected: int) -> None:
            summary = f"{accepted} accepted · {duplicate} duplicate · {rejected} rejected"
            progress.update(task, completed=done, summary=summary)

        yield advance


def _in_parallel(
    ctx: Context, path: Path, origin: str, batch_size: int, jobs: int, size: int, show: bool
) -> IngestReport:
    with ctx.local_engine(create=True):
        pass  # the store exists (and its index) before the workers open it
    opener = functools.partial(LocalEngine, ctx.store_path, create=False)
    try:
        with _bar(ctx, f"ingesting ({jobs} processes)", size, show) as advance:
            return parallel.ingest_file(
                opener,
                path,
                origin,
                batch_size,
                jobs,
                lambda now: advance(now.done_bytes, now.accepted, now.duplicate, now.rejected),
            )
    except (StoreFullError, StoreUnavailableError, parallel.WorkerFailedError) as exc:
        raise click.ClickException(
            f"{exc}. The batches committed before it are stored; run the same command again "
            "to store the rest (lines already stored count as duplicates)"
        ) from None


def _with_progress(
    ctx: Context, engine: EventStore, file: BinaryIO, origin: str, batch_size: int, size: int
) -> IngestReport:
    with _bar(ctx, "ingesting", size, True) as advance:
        return ingest_ndjson(
            engine,
            file,
            origin,
            batch_size,
            on_batch=lambda r: advance(file.tell(), r.accepted, r.duplicate, r.rejected),
        )


def _print(ctx: Context, report: IngestReport) -> None:
    ctx.out.print(f"ingested {report.lines:,} line(s) in {report.batches:,} batch(es)")
    table = Table()
    for name in ("accepted", "duplicate", "rejected"):
        table.add_column(name, justify="right")
    table.add_row(f"{report.accepted:,}", f"{report.duplicate:,}", f"{report.rejected:,}")
    ctx.out.print(table)
    if report.rejections:
        reasons = Table(title="rejected lines", title_justify="left")
        for name in ("line", "code", "field", "reason"):
            reasons.add_column(name)
        for item in report.rejections[:SHOWN_REJECTIONS]:
            r = item.rejection
            reasons.add_row(
                str(item.line),
                r.code,
                Text(inert(r.field or "-")),
                Text(inert(r.message, limit=200)),
            )
        ctx.out.print(reasons)
        hidden = report.rejected - min(len(report.rejections), SHOWN_REJECTIONS)
        if hidden:
            ctx.out.print(Text(f"… and {hidden} more; --json lists up to 1000 with reasons"))


COMMANDS = [ingest]
