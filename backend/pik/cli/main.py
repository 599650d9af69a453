"""`pik`: the scriptable command line of the Pipeline Investigation Kit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from pik import __version__
from pik.cli import admin, ingest, queries, replay, serve, versions
from pik.cli.context import Context
from pik.paths import default_store

STORE_HELP = (
    f"Store directory. Defaults to $PIK_STORE, else the user data directory ({default_store()})."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PIK_STORE",
    default=default_store,
    show_default=False,
    help=STORE_HELP,
)
@click.option(
    "--stack",
    envvar="PIK_STACK",
    default=None,
    metavar="NAME",
    help="Use a deployed AWS stack (found by its name, in your AWS region) instead of a "
    "local store. Defaults to $PIK_STACK, unless --store is given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of tables.")
@click.version_option(__version__, prog_name="pik")
@click.pass_context
def cli(ctx: click.Context, store: Path, stack: str | None, as_json: bool) -> None:
    """Investigate a data pipeline's events: capture once, look up by entity and time.

    Every query command takes --json (before or after the command name) for scripts.
    """
    given = click.core.ParameterSource.COMMANDLINE
    store_given = ctx.get_parameter_source("store") == given
    if ctx.get_parameter_source("stack") == given and not (stack or "").strip():
        # An unset variable in `--stack "$STACK"` must not fall back to the local store.
        raise click.UsageError("--stack needs a stack's name")
    if store_given and ctx.get_parameter_source("stack") == given:
        raise click.UsageError("give --store or --stack, not both")
    if store_given:
        stack = None  # a store named on the command line wins over $PIK_STACK
    # Into a pipe or a file, lines are as long as their content (Rich would wrap at 80).
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    ctx.obj = Context(
        store, as_json, Console(width=4096 if piped else None), Console(stderr=True), stack
    )


for module in (ingest, queries, admin, serve, versions, replay):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="pik")
