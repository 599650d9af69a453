"""The TUI on a deployed stack (``pik-tui --stack NAME``), read through aiobotocore.

The panes call the backend from Textual's worker threads, as on a local store, and the
same query services answer them. Underneath, every read is the AWS engine's plan run by
:class:`~pik.engines.aws.async_reads.AsyncAwsReader` on an event loop this backend owns:
a coverage grid's hundreds of queries are in flight at once, and neither waiting on AWS
nor parsing its answers ever takes time on the UI's loop. The loop also outlives any one
screen, so clients and their pooled connections are made once and closed with the
backend.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pik.domain.arrivals import Arrival
from pik.domain.limits import DEFAULT_LIMITS
from pik.domain.outcome import Outcome
from pik.domain.records import VerifyReport
from pik.engines.aws import AwsConfig
from pik.engines.aws.async_reads import AsyncAwsReader
from pik.engines.aws.discovery import discover
from pik.engines.aws.explain import READING, REPLAYING, explain
from pik.engines.aws.plans import BlockingReads, Plan
from pik.engines.aws.replay_api import ApiReplayControl
from pik.ports import EventStore, Progress
from pik_tui.backend import ServiceBackend, StoreUnavailable
from pik_tui.replaying import STACK_TARGETS, ReplayDesk

T = TypeVar("T")

PROBE_EVENT = bytes(16)
"""An id no event has: reading it proves credentials and table access with one GetItem."""


class StackReads(BlockingReads):
    """The async reader as a blocking, read-only ``EventStore`` for the query services:
    the calling (worker) thread waits while the read runs on the backend's loop."""

    limits = DEFAULT_LIMITS

    def __init__(self, reader: AsyncAwsReader, loop: asyncio.AbstractEventLoop) -> None:
        self.plans = reader.plans
        self._reader = reader
        self._loop = loop
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def run(self, plan: Plan[T]) -> T:
        future = asyncio.run_coroutine_threadsafe(self._reader.run(plan), self._loop)
        with self._lock:
            self._running.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise StoreUnavailable("the stack's reader is closed") from None
        finally:
            with self._lock:
                self._running.discard(future)

    def cancel_running(self) -> None:
        """Cancel the reads in flight, so no worker thread waits on a loop that is stopping
        (a thread blocked for ever would keep the process from exiting)."""
        with self._lock:
            running = list(self._running)
        for future in running:
            future.cancel()

    def commit(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        raise StoreUnavailable("pik-tui only reads a stack; ingest with `pik --stack NAME`")

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        raise StoreUnavailable("verify a stack with `pik --stack NAME verify`")

    def close(self) -> None:
        """The backend owns the reader and closes it."""


class AwsBackend(ServiceBackend):
    """A :class:`~pik_tui.backend.Backend` over a deployed stack: reads straight from its
    table and bucket, replays through its IAM-authorised API."""

    def __init__(
        self,
        config: AwsConfig,
        label: str,
        *,
        session: Any = None,
        command: str = "pik",
        stack_name: str | None = None,
    ) -> None:
        self.label = label
        self.stack_name = stack_name
        self.command = command
        self.late_after_us = DEFAULT_LIMITS.late_after_us
        self.reader = AsyncAwsReader(config, session=session)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pik-tui-aws", daemon=True
        )
        self._thread.start()
        self._store: StackReads | None = StackReads(self.reader, self._loop)

    @classmethod
    def open(cls, stack_name: str, *, region: str | None = None) -> AwsBackend:
        """Find the stack by its outputs and check that it can be read; raises
        :class:`StoreUnavailable` with what to do (no stack, credentials, access)."""
        with explained():
            config = discover(stack_name, region=region)
        backend = cls(
            config,
            f"stack {stack_name}",
            command=f"pik --stack {shlex.quote(stack_name)}",
            stack_name=stack_name,
        )
        try:
            backend._call(lambda store: store.event(PROBE_EVENT))
        except StoreUnavailable:
            backend.close()
            raise
        return backend

    def _call(self, read: Callable[[EventStore], T]) -> T:
        store = self._store
        if store is None:
            raise StoreUnavailable("the stack's reader is closed")
        with explained():
            return read(store)

    def replays(self) -> ReplayDesk:
        if self.stack_name is None:
            raise StoreUnavailable("replays need the stack's name: open it with --stack NAME")
        return stack_replays(self.stack_name, self.command)

    def close(self) -> None:
        store, self._store = self._store, None
        if store is None:
            return
        store.cancel_running()
        asyncio.run_coroutine_threadsafe(self.reader.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def stack_replays(stack_name: str, command: str) -> ReplayDesk:
    """The stack's replay API, signed as the caller: the stack's function audits, records
    and sends every run. Raises :class:`StoreUnavailable` with what to do."""
    with explained(REPLAYING):
        remote = ApiReplayControl.open(stack_name)
    return ReplayDesk(
        remote,
        target="queue",
        targets=STACK_TARGETS,
        command=f"{command} replay",
        sends_here=False,
        close=remote.close,
        explain=lambda exc: explain(exc, REPLAYING),
    )


@contextmanager
def explained(needs: str = READING) -> Iterator[None]:
    """AWS failures become :class:`StoreUnavailable` saying what to do (naming the policy
    that grants what is ``needs``); others pass."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        text = explain(exc, needs)
        if text is None:
            raise
        raise StoreUnavailable(text) from None
