"""What every `pik` command shares: the chosen store, output mode, consoles and errors."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from pik.domain.instants import TimeFormatError, parse_query_time
from pik.engines.local import LocalEngine
from pik.engines.local.index import IndexCorruptError
from pik.engines.local.layout import StoreError
from pik.engines.local.segments import StorageFullError


@dataclass
class Context:
    store_path: Path
    as_json: bool
    out: Console
    err: Console

    @contextmanager
    def engine(self, create: bool = False) -> Iterator[LocalEngine]:
        """Open the store (read-only unless creating it), turning storage failures into
        messages that say what to do."""
        try:
            engine = LocalEngine(self.store_path, create=create, read_only=not create)
        except (StoreError, IndexCorruptError) as exc:
            raise click.ClickException(str(exc)) from None
        try:
            yield engine
        except IndexCorruptError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(
                f"the index cannot be read ({exc}); rebuild it with `pik reindex`"
            ) from None
        except StorageFullError as exc:
            raise click.ClickException(
                f"{exc}; nothing in the failed batch was acknowledged"
            ) from None
        finally:
            engine.close()

    def emit(self, document: dict[str, Any]) -> None:
        """Print a JSON document on stdout (for --json)."""
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def time_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_query_time(value)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


pass_context = click.make_pass_decorator(Context)
