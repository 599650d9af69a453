"""`pik replay`: preview a slice as a plan, confirm it once, send it; resume, cancel, status,
audit. See docs/replay.md."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pik import replay_views as show
from pik.cli.context import Context, pass_context, time_option
from pik.cli.options import EXIT_INTERRUPTED, json_option
from pik.domain import replay as model
from pik.domain.instants import format_instant, now_us
from pik.domain.replay import Plan, ReplayError, ReplayRun, Selection
from pik.ports import Progress as ProgressCallback
from pik.services.replay_control import ReplayControl
from pik.storage_errors import StoreFullError, StoreUnavailableError
from pik.textsafe import inert


def _an_id(_: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A plan or replay id as the kit prints them, or a usage error (exit 2) before any
    ledger is asked or any refusal audited."""
    if value is not None and not model.is_id(value):
        raise click.BadParameter(
            "32 hex digits, as `pik replay plan` and `pik replay status` print it"
        )
    return value


def _command(ctx: Context, *args: str) -> str:
    """The exact `pik` command line for this store or stack."""
    where = ["--stack", ctx.stack] if ctx.stack else ["--store", os.path.abspath(ctx.store_path)]
    return shlex.join(["pik", *where, "replay", *args])


@contextmanager
def _replay_control(ctx: Context) -> Iterator[ReplayControl]:
    """The control, with refusals and storage failures turned into messages and exit 1."""
    try:
        with ctx.replay_control() as control:
            yield control
    except ReplayError as exc:
        raise click.ClickException(f"{inert(str(exc))} [{exc.code}]") from None
    except StoreFullError as exc:
        raise click.ClickException(f"{exc} [storage_full]") from None
    except StoreUnavailableError as exc:
        raise click.ClickException(f"{exc} [{exc.code}]") from None


# --- sending -----------------------------------------------------------------------------------


@contextmanager
def _progress(ctx: Context, run: ReplayRun) -> Iterator[ProgressCallback]:
    columns = (
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(
        *columns, console=ctx.err, transient=True, disable=ctx.as_json or not ctx.err.is_terminal
    ) as progress:
        task = progress.add_task("replay", total=run.total, completed=run.sent)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def _send(ctx: Context, control: ReplayControl, run: ReplayRun) -> ReplayRun:
    """Start the run; a failure or Ctrl-C leaves it open, and the message says how to go on."""
    resume = _command(ctx, "resume", run.replay_id)
    try:
        with _progress(ctx, run) as advance:
            return control.start(run, advance)
    except KeyboardInterrupt:
        sent = _sent(control, run)
        ctx.err.print(
            Text(
                f"interrupted: {sent:,} of {run.total:,} messages sent and recorded; replay "
                f"{run.replay_id} is still open.\n"
                f"  resume it: {resume}\n"
                f"  or stop it: {_command(ctx, 'cancel', run.replay_id)}"
            ),
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except (StoreUnavailableError, StoreFullError) as exc:
        raise click.ClickException(
            f"{exc}. Replay {run.replay_id} stopped with its progress kept; once the ledger "
            f"can be written again: {resume}"
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"sending to {inert(run.target)} failed ({exc}); replay {run.replay_id} stopped "
            f"after {_sent(control, run):,} of {run.total:,} messages. Fix the target, then: "
            f"{resume}"
        ) from None


def _sent(control: ReplayControl, run: ReplayRun) -> int:
    try:
        current = control.run(run.replay_id)
    except (StoreUnavailableError, StoreFullError):
        return run.sent
    return current.sent if current else run.sent


def _report(ctx: Context, run: ReplayRun) -> None:
    """Print where a run stands after sending; exit 1 unless it completed or goes on."""
    if ctx.as_json:
        ctx.emit(run.to_document())
    elif run.status == model.COMPLETED:
        ctx.out.print(
            Text(
                f"sent {run.sent:,} of {run.total:,} message(s) to {inert(run.target)}; "
                f"replay {run.replay_id} completed"
            )
        )
    elif run.status == model.RUNNING:
        ctx.out.print(
            Text(
                f"replay {run.replay_id} is running ({run.sent:,} of {run.total:,} sent); "
                f"follow it with: {_command(ctx, 'status', run.replay_id)}"
            ),
            soft_wrap=True,
        )
    if run.status in (model.CANCELLED, model.FAILED):
        ctx.err.print(
            Text(
                f"replay {run.replay_id} {run.status} after {run.sent:,} of {run.total:,} "
                "message(s)" + (f" ({run.detail})" if run.detail else ""),
                style="yellow",
            )
        )
        sys.exit(1)


def _confirmation(ctx: Context, plan: Plan, rate: int) -> None:
    """Ask on a terminal (default No); anywhere else, refuse: a replay is never sent
    without an explicit yes."""
    question = (
        f"Send {plan.events:,} event(s) to {inert(plan.selection.target)} "
        f"at up to {rate:,}/s ({show.duration(plan.events / max(rate, 1))})?"
    )
    if not sys.stdin.isatty():
        raise click.ClickException(
            "not confirmed, nothing was sent: add --confirm to send it without being asked "
            f"({_command(ctx, 'run', plan.plan_id, '--confirm')})"
        )
    if not click.confirm(question, default=False, err=True):
        raise click.ClickException("not confirmed; nothing was sent")


# --- commands ----------------------------------------------------------------------------------


@click.group()
def replay() -> None:
    """Send a slice of stored events again: a plan (the dry-run) first, then a run of it,
    confirmed once. Runs are rate limited, resumable and audited (docs/replay.md)."""


@replay.command()
@click.argument("entities", nargs=-1, required=True, metavar="ENTITY...")
@click.option("--from", "start", required=True, metavar="T", help="Start of event time, inclusive.")
@click.option("--to", "end", required=True, metavar="T", help="End of event time, exclusive.")
@click.option(
    "--source", "sources", multiple=True, metavar="S", help="Only this source (repeatable)."
)
@click.option(
    "--type", "event_types", multiple=True, metavar="T", help="Only this event type (repeatable)."
)
@click.option(
    "--target",
    required=True,
    metavar="TARGET",
    help="Where a run of the plan sends its messages. On a local store: file:PATH (NDJSON, "
    "appended) or processor:<hour|day>[:/pointer]. On a stack (--stack): queue (the stack's "
    "ReplayQueue) or sqs:<queue ARN> for a queue the stack lists. See docs/replay.md.",
)
@json_option
@pass_context
def plan(
    ctx: Context,
    entities: tuple[str, ...],
    start: str,
    end: str,
    sources: tuple[str, ...],
    event_types: tuple[str, ...],
    target: str,
) -> None:
    """Preview a replay: the exact events of ENTITY... in [--from, --to) it would send, as a
    plan to run with `pik replay run PLAN_ID`. Nothing is sent."""
    start_us = time_option(start, "--from")
    end_us = time_option(end, "--to")
    assert start_us is not None and end_us is not None
    if start_us >= end_us:  # a wrong command line: nothing to plan, refuse or audit
        raise click.BadParameter("--from must be before --to", param_hint="--from")
    with _replay_control(ctx) as control:
        made = control.plan(
            Selection.build(entities, start_us, end_us, target, sources, event_types)
        )
    if ctx.as_json:
        ctx.emit(made.to_document())
        return
    show.show_plan(ctx.out, made)
    if not made.events:
        ctx.out.print("the selection holds no events: there is nothing to replay")
        return
    ctx.out.print(
        Text(f"to send it (asks first):  {_command(ctx, 'run', made.plan_id)}"), soft_wrap=True
    )
    ctx.out.print(
        Text(
            f"the plan expires {format_instant(made.expires_us)}; add --rate N to send "
            f"faster or slower than {model.DEFAULT_RATE:,} events/s"
        )
    )


@replay.command()
@click.argument("plan_id", callback=_an_id)
@click.option(
    "--rate",
    type=click.IntRange(model.MIN_RATE, model.MAX_RATE),
    default=model.DEFAULT_RATE,
    show_default=True,
    help=f"Events per second, {model.MIN_RATE} to {model.MAX_RATE:,}.",
)
@click.option("--confirm", "confirmed", is_flag=True, help="Send without asking (for scripts).")
@json_option
@pass_context
def run(ctx: Context, plan_id: str, rate: int, confirmed: bool) -> None:
    """Confirm plan PLAN_ID and send it now. Asks first on a terminal; elsewhere it needs
    --confirm. A plan runs once; Ctrl-C leaves the run resumable."""
    summary = ctx.err if ctx.as_json else ctx.out
    with _replay_control(ctx) as control:
        found = control.find_plan(plan_id)
        # An unknown plan is refused (and audited) by the confirmation itself: there is
        # nothing to ask about. A plan this machine's clock calls expired is still asked
        # about: the store judges expiry by its own clock, and a yes is never skipped.
        if found is not None:
            show.show_plan(summary, found)
            if found.expired(now_us()):
                summary.print(
                    Text("the plan looks expired by this machine's clock; the store decides")
                )
            if not confirmed:
                _confirmation(ctx, found, rate)
        started = control.confirm(plan_id, rate)
        if not ctx.as_json:
            ctx.err.print(Text(f"confirmed: replay {started.replay_id}"))
        result = _send(ctx, control, started)
    _report(ctx, result)


@replay.command()
@click.argument("replay_id", callback=_an_id)
@click.option(
    "--rate",
    type=click.IntRange(model.MIN_RATE, model.MAX_RATE),
    default=None,
    help="Events per second from here on (default: the run's own rate). Audited.",
)
@json_option
@pass_context
def resume(ctx: Context, replay_id: str, rate: int | None) -> None:
    """Send the rest of REPLAY_ID after a crash, an interruption or a failed target, from
    where its ledger says it got to (the last batch may be sent again)."""
    with _replay_control(ctx) as control:
        current = control.resume(replay_id, rate)
        if not ctx.as_json:
            ctx.err.print(
                Text(
                    f"resuming replay {replay_id} after {current.sent:,} of {current.total:,}"
                    f" at up to {current.rate:,} events/s"
                )
            )
        result = _send(ctx, control, current)
    _report(ctx, result)


@replay.command()
@click.argument("replay_id", callback=_an_id)
@json_option
@pass_context
def cancel(ctx: Context, replay_id: str) -> None:
    """Ask running replay REPLAY_ID to stop before its next batch."""
    with _replay_control(ctx) as control:
        current = control.cancel(replay_id)
    if ctx.as_json:
        ctx.emit(current.to_document())
        return
    ctx.out.print(
        Text(
            f"cancel requested: replay {replay_id} stops before its next batch "
            f"({current.sent:,} of {current.total:,} sent so far). If no process is sending it "
            f"(it was interrupted), it ends as cancelled once resumed: "
            f"{_command(ctx, 'resume', replay_id)}"
        ),
        soft_wrap=True,
    )


@replay.command()
@click.argument("replay_id", required=False, callback=_an_id)
@click.option("--limit", type=click.IntRange(1, 1_000), default=20, show_default=True)
@json_option
@pass_context
def status(ctx: Context, replay_id: str | None, limit: int) -> None:
    """One replay's progress, or the most recent replays (newest first)."""
    with _replay_control(ctx) as control:
        if replay_id is not None:
            found = control.run(replay_id)
            if found is None:
                raise model.replay_not_found(replay_id)
            runs = [found]
        else:
            runs = control.runs(limit)
    if ctx.as_json:
        ctx.emit(runs[0].to_document() if replay_id else {"runs": [r.to_document() for r in runs]})
        return
    if replay_id:
        ctx.out.print(show.run_table(runs[0]))
        return
    table = Table(title=f"{len(runs)} recent replay(s)", title_justify="left")
    table.add_column("replay", no_wrap=True, min_width=32)
    for name in ("status", "sent", "confirmed", "target"):
        table.add_column(name, justify="right" if name == "sent" else "left", overflow="fold")
    for r in runs:
        table.add_row(
            r.replay_id,
            show.status_text(r),
            f"{r.sent:,}/{r.total:,}",
            format_instant(r.started_us)[:19] + "Z",
            show.cell(r.target, limit=80),
        )
    ctx.out.print(table)
    if not runs:
        ctx.out.print("no replays yet: preview one with `pik replay plan`")


@replay.command()
@click.option("--since", "since", default="-7d", show_default=True, metavar="T")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@pass_context
def audit(ctx: Context, since: str, limit: int) -> None:
    """Who planned, confirmed, resumed, cancelled or was refused what, oldest first."""
    since_us = time_option(since, "--since")
    assert since_us is not None
    with _replay_control(ctx) as control:
        found = control.audit_log(since_us, limit + 1)
    records = found[:limit]
    # --since is inclusive: the next page starts at the first record not shown here.
    next_since = format_instant(found[limit].at_us) if len(found) > limit else None
    if ctx.as_json:
        ctx.emit(
            {
                "since": format_instant(since_us),
                "records": [r.to_document() for r in records],
                "more": next_since is not None,
                "next_since": next_since,
            }
        )
        return
    ctx.out.print(f"replay audit since {format_instant(since_us)}: {len(records)} record(s)")
    for r in records:
        ctx.out.print(show.audit_line(r), soft_wrap=True)
    if next_since is not None:
        ctx.out.print(Text(f"more records follow: pass --since {next_since} or a larger --limit"))


COMMANDS = [replay]
