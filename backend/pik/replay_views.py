"""How plans, runs and audit records look to a person: in `pik replay` (--json aside) and
on pik-tui's replay screen.

Entity ids, sources, targets and identities come from outside: each is made inert
(control characters escaped) and wrapped in ``Text``, never read as markup.
"""

from __future__ import annotations

import json

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from pik.domain import replay as model
from pik.domain.instants import format_instant
from pik.domain.replay import AuditRecord, Plan, ReplayRun
from pik.textsafe import inert

SHOWN_BREAKDOWN = 10


def cell(value: str, limit: int = 120) -> Text:
    return Text(inert(value, limit=limit))


def size(count: int) -> str:
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """How long, for a person: ``about 4 min``; ``under a second``."""
    if seconds < 1:
        return "under a second"
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def _card(kind: str, identifier: str) -> Table:
    """A two-column table of names and values, titled by what it shows (the id inert: on
    a stack it comes from the API)."""
    table = Table(
        show_header=False, title=Text(f"{kind} {inert(identifier, limit=64)}"), title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def plan_table(plan: Plan) -> Table:
    selection = plan.selection
    table = _card("replay plan", plan.plan_id)
    table.add_row("events", f"{plan.events:,} ({size(plan.bytes)})")
    window = f"[{format_instant(selection.start_us)}, {format_instant(selection.end_us)})"
    table.add_row("window", Text(window))
    if plan.first_event_us is not None and plan.last_event_us is not None:
        table.add_row(
            "span",
            f"{format_instant(plan.first_event_us)} … {format_instant(plan.last_event_us)}",
        )
    table.add_row("entities", cell(", ".join(selection.entity_ids), limit=200))
    table.add_row("sources", cell(", ".join(selection.sources) or "all"))
    table.add_row("event types", cell(", ".join(selection.event_types) or "all"))
    table.add_row("target", cell(selection.target, limit=400))
    table.add_row("planned", cell(f"{format_instant(plan.created_us)} by {plan.created_by}"))
    table.add_row("expires", format_instant(plan.expires_us))
    return table


def breakdown_table(name: str, counts: tuple[tuple[str, int], ...]) -> Table:
    table = Table(title=f"by {name}", title_justify="left")
    table.add_column(name, overflow="fold")
    table.add_column("events", justify="right")
    ranked = sorted(counts, key=lambda item: (-item[1], item[0]))
    for key, count in ranked[:SHOWN_BREAKDOWN]:
        table.add_row(cell(key), f"{count:,}")
    if len(ranked) > SHOWN_BREAKDOWN:
        rest = sum(count for _, count in ranked[SHOWN_BREAKDOWN:])
        table.add_row(Text(f"… {len(ranked) - SHOWN_BREAKDOWN} more"), f"{rest:,}")
    return table


def unmatched(plan: Plan) -> list[tuple[str, tuple[str, ...]]]:
    """What the selection names that no planned event has: a mistyped id shows here,
    where it would otherwise only be missing from the counts."""
    selection = plan.selection
    found = [
        ("entities", selection.entity_ids, plan.by_entity),
        ("sources", selection.sources, plan.by_source),
        ("event types", selection.event_types, plan.by_event_type),
    ]
    missing = []
    for name, asked, counts in found:
        seen = {key for key, _ in counts}
        absent = tuple(value for value in asked if value not in seen)
        if absent:
            missing.append((name, absent))
    return missing


def plan_views(plan: Plan) -> list[RenderableType]:
    """The plan as a person reads it: its table, what the selection names that no event
    has, the breakdowns and a sample of ids."""
    views: list[RenderableType] = [plan_table(plan)]
    for name, absent in unmatched(plan):
        views.append(
            Text(
                f"no event in this window of {name}: {inert(', '.join(absent), limit=300)} "
                "(a typo? `pik entities` and `pik rates` list what the store holds)",
                style="yellow",
            )
        )
    if not plan.events:
        return views
    for name, counts in (
        ("entity", plan.by_entity),
        ("source", plan.by_source),
        ("event type", plan.by_event_type),
    ):
        views.append(breakdown_table(name, counts))
    views.append(Text("sample event ids: " + inert(" ".join(plan.sample), limit=2000)))
    return views


def show_plan(console: Console, plan: Plan) -> None:
    for view in plan_views(plan):
        console.print(view, soft_wrap=isinstance(view, Text))


def run_table(run: ReplayRun) -> Table:
    table = _card("replay", run.replay_id)
    table.add_row("status", status_text(run))
    table.add_row("sent", f"{run.sent:,} of {run.total:,}")
    table.add_row("plan", cell(run.plan_id, limit=64))
    table.add_row("target", cell(run.target, limit=400))
    table.add_row("rate", f"{run.rate:,} events/s")
    table.add_row("confirmed", cell(f"{format_instant(run.started_us)} by {run.confirmed_by}"))
    table.add_row("updated", format_instant(run.updated_us))
    return table


def status_text(run: ReplayRun) -> Text:
    words = run.status
    if run.status == model.RUNNING and run.cancel_requested:
        words += " (cancel requested)"
    if run.detail:
        words += f" ({inert(run.detail, limit=200)})"
    return Text(words, style={"completed": "green", "running": "yellow"}.get(run.status, "red"))


def audit_line(record: AuditRecord) -> Text:
    """One record a line, so the log reads (and greps) at any terminal width."""
    line = Text(format_instant(record.at_us)[:19] + "Z  ")
    line.append(inert(record.who, limit=80) + "  ")
    line.append(record.action, style="bold")
    if record.outcome != "ok":
        line.append(f"  {record.outcome}", style="red")
    for name, value in (("plan", record.plan_id), ("replay", record.replay_id)):
        if value:
            line.append(f"  {name}={inert(value, limit=80)}")
    for name, value in sorted(record.detail.items()):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        line.append(f"  {name}={inert(shown, limit=400)}", style="dim")
    return line
