"""What every `pik` command shares: the chosen store, output mode, consoles and errors."""

from __future__ import annotations

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
from pik.engines.local.layout import StoreError
from pik.engines.local.ledger import LocalReplayLedger
from pik.engines.local.replay import LocalReplayBackend
from pik.ports import EventStore
from pik.services.replay_control import LedgerControl, ReplayControl
from pik.storage_errors import StoreFullError, StoreUnavailableError
from pik.textsafe import inert, json_text


@dataclass
class Context:
    store_path: Path
    as_json: bool
    out: Console
    err: Console
    stack: str | None = None
    """A deployed AWS stack to use instead of the local store."""
    _said_waiting: bool = False

    @property
    def store_label(self) -> str:
        return f"stack {self.stack}" if self.stack else str(self.store_path)

    def local_only(self, command: str, instead: str) -> None:
        if self.stack:
            raise click.UsageError(f"`pik {command}` works on a local store only; {instead}")

    @contextmanager
    def engine(self, create: bool = False) -> Iterator[EventStore]:
        """Open the store (read-only unless creating it), turning storage failures into
        messages that say what to do."""
        if self.stack:
            with _aws_engine(self.stack, writing=create) as aws:
                yield aws
            return
        with self.local_engine(create) as local:
            yield local

    def _say_waiting(self) -> None:
        if self._said_waiting:
            return
        self._said_waiting = True
        self.err.print(
            "waiting for another process to release the store (a `pik reindex` holds it "
            "until it ends; another writer only for a batch)…",
            style="yellow",
        )

    @contextmanager
    def local_engine(self, create: bool = False) -> Iterator[LocalEngine]:
        try:
            engine = LocalEngine(
                self.store_path,
                create=create,
                read_only=not create,
                on_lock_wait=self._say_waiting,
            )
        # The messages name the store's path, which may hold anything a file name can.
        except (StoreError, StoreUnavailableError) as exc:  # the index's faults included
            raise click.ClickException(inert(str(exc))) from None
        except StoreFullError as exc:  # opening for writing recovers what a crash left
            raise click.ClickException(inert(f"{exc}; make room, then try again")) from None
        try:
            yield engine
        except StoreUnavailableError as exc:
            raise click.ClickException(inert(f"{exc} [{exc.code}]")) from None
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(
                inert(f"the index cannot be read ({exc}); rebuild it with `pik reindex`")
            ) from None
        except StoreFullError as exc:
            raise click.ClickException(
                inert(f"{exc}; nothing in the failed batch was acknowledged")
            ) from None
        finally:
            engine.close()

    @contextmanager
    def replay_control(self) -> Iterator[ReplayControl]:
        """What `pik replay` works through: on a local store the ledger itself, as the OS
        user (a confirmed run is sent at once); on a stack the stack's API, as the caller's
        IAM principal (the replay function sends the run)."""
        if self.stack:
            # Imported only when a stack is named, as the AWS engine is.
            from pik.engines.aws.explain import REPLAYING
            from pik.engines.aws.replay_api import ApiReplayControl

            with aws_errors(REPLAYING):
                remote = ApiReplayControl.open(self.stack)
                try:
                    yield remote
                finally:
                    remote.close()
            return
        with self.local_engine() as engine:
            local = LocalReplayBackend(engine, LocalReplayLedger(self.store_path))
            try:
                yield LedgerControl(local)
            finally:
                local.ledger.close()

    def emit(self, document: dict[str, Any]) -> None:
        """Print a JSON document on stdout (for --json)."""
        sys.stdout.write(json_text(document, indent=2) + "\n")


@contextmanager
def _aws_engine(stack: str, writing: bool) -> Iterator[EventStore]:
    """The AWS engine of a deployed stack, found by its outputs."""
    from pik.engines.aws import AwsEngine
    from pik.engines.aws.discovery import discover
    from pik.engines.aws.explain import READING, WRITING

    with aws_errors(WRITING if writing else READING):
        yield AwsEngine(discover(stack))


@contextmanager
def aws_errors(needs: str) -> Iterator[None]:
    """AWS failures as messages that say what to do, naming the permissions the command
    ``needs`` (``explain``'s READING, REPLAYING or WRITING)."""
    from pik.engines.aws.explain import explain

    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        text = explain(exc, needs)
        if text is None:
            raise
        raise click.ClickException(text) from None


def time_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_query_time(value)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


pass_context = click.make_pass_decorator(Context)
