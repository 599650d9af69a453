"""Store care: verify, reindex, and the demo data set."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import click
from click.core import ParameterSource
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from pik.cli.context import Context, pass_context
from pik.cli.options import json_option
from pik.demo import build_demo
from pik.documents import verify_document
from pik.engines.local.layout import StoreError
from pik.engines.local.rebuild import reindex as rebuild_index
from pik.engines.local.rows import segment_name
from pik.paths import demo_store
from pik.ports import Progress as ProgressCallback
from pik.storage_errors import StoreFullError, StoreUnavailableError
from pik.textsafe import inert


def _progress(ctx: Context, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        console=ctx.err,
        transient=True,
        disable=ctx.as_json or not ctx.err.is_terminal,
    )


def _callback(progress: Progress, label: str) -> ProgressCallback:
    task = progress.add_task(label, total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return advance


@click.command()
@json_option
@pass_context
def verify(ctx: Context) -> None:
    """Re-hash every segment and cross-check index and raw; exits 1 on any problem."""
    with ctx.engine() as engine, _progress(ctx, "verifying") as progress:
        report = engine.verify(_callback(progress, "verify"))
    if ctx.as_json:
        ctx.emit(verify_document(report))
    else:
        verdict = "[green]ok[/green]" if report.ok else "[red]PROBLEMS FOUND[/red]"
        ctx.out.print(
            f"{verdict}: {report.segments} segment(s), {report.events} event(s), "
            f"{report.bytes_checked} bytes re-hashed"
        )
        if report.problems:
            table = Table()
            for name in ("severity", "kind", "segment", "offset", "detail"):
                table.add_column(name)
            for p in report.problems:
                table.add_row(
                    p.severity,
                    p.kind,
                    p.segment or "-",
                    "-" if p.offset is None else str(p.offset),
                    Text(inert(p.message)),
                )
            ctx.out.print(table)
        if not report.ok:
            repair = (
                "a stack's index is restored with point-in-time recovery (docs/deploy.md, "
                '"Recovering the index")'
                if ctx.stack
                else "the index can be rebuilt from raw with `pik reindex`"
            )
            ctx.err.print(
                f"{repair}; damaged raw bytes cannot be repaired, only reported",
                markup=False,
                highlight=False,
            )
    if not report.ok:
        sys.exit(1)


@click.command()
@json_option
@pass_context
def reindex(ctx: Context) -> None:
    """Rebuild the index from the segment files alone (after loss or corruption)."""
    ctx.local_only(
        "reindex",
        "a stack's index is restored with DynamoDB point-in-time recovery "
        '(docs/deploy.md, "Recovering the index")',
    )
    try:
        with _progress(ctx, "reindexing") as progress:
            damages = rebuild_index(ctx.store_path, progress=_callback(progress, "reindex"))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except (StoreFullError, StoreUnavailableError, sqlite3.Error) as exc:
        raise click.ClickException(
            f"reindex failed ({exc}); the index in use is unchanged. Rebuilding needs room "
            "for a second index, and the copy over the live one about as much again"
        ) from None
    with ctx.engine() as engine:
        counts = engine.counts()
    damaged = [
        {"segment": segment_name(d.segment_id), "offset": d.offset, "resumes": d.resumes}
        for d in damages
    ]
    if ctx.as_json:
        ctx.emit({"reindexed": True, **counts, "damaged": damaged})
    else:
        ctx.out.print(
            f"index rebuilt: {counts['events']} event(s), {counts['entities']} entit(ies)"
        )
    for d in damaged:
        ctx.err.print(
            Text(
                f"{d['segment']}: damaged from byte {d['offset']}; valid frames follow from byte"
                f" {d['resumes']}, and the events in them are not indexed. Keep a copy of the"
                " segment; `pik verify` reports it until the damage is dealt with"
            )
        )
    if damaged:
        sys.exit(1)


@click.command()
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where to build the demo store [default: --store if given, else {demo_store()}].",
)
@click.option("--reset", is_flag=True, help="Delete and rebuild the demo store (demo only).")
@json_option
@pass_context
def demo(ctx: Context, path: Path | None, reset: bool) -> None:
    """Build a demo store with an incident planted in it, then show how to explore it.

    A store that is not a demo store is never written to nor replaced."""
    if path is None:
        # `pik --store DIR demo` means DIR; $PIK_STORE (usually a real store) does not.
        given = click.get_current_context().find_root().get_parameter_source("store")
        path = ctx.store_path if given == ParameterSource.COMMANDLINE else demo_store()
    try:
        built = build_demo(path, reset)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if ctx.as_json:
        ctx.emit({"store": str(path), "built": built})
        return
    ctx.out.print(Text(f"demo store {'built' if built else 'already present'} at {path}"))
    ctx.out.print(
        Text(
            f"try:  pik --store {path} entities\n"
            f"      pik --store {path} timeline customer-0007 --from -3d\n"
            f"      pik --store {path} coverage --by hour --entity customer-0007 --from -3d\n"
            f"      pik --store {path} rates --since -10m\n"
            f"      pik --store {path} verify"
        )
    )


COMMANDS = [verify, reindex, demo]
