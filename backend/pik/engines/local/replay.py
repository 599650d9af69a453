"""Replay on the local engine: the store read-only, the ledger beside it, runs sent at once
by the process that confirmed (or resumes) them, into a file (``file:PATH``) or straight
into the processor (``processor:<hour|day>[:<pointer>]``, see docs/processor.md).

One process at a time sends a run: a second `pik replay resume` of a run another process
is still sending is refused, instead of sending every remaining message twice. The lock is
an advisory lock on a file per run, released by the kernel when its holder dies, so a
crashed run can be resumed at once.
"""

from __future__ import annotations

import fcntl
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pik.domain import replay
from pik.domain.replay import REPLAY_ID, AuditRecord, ReplayError, ReplayRun, replay_not_found
from pik.domain.versions import SpecError, processor_target
from pik.engines.local.engine import LocalEngine
from pik.engines.local.layout import REPLAY_LOCKS as LOCKS
from pik.engines.local.ledger import LocalReplayLedger
from pik.engines.local.versions import LocalVersionStore
from pik.ports import EventStore, Progress, ReplayLedger, ReplaySink
from pik.services.processor import ProcessorSink
from pik.services.replay import SYSTEM_CLOCK, Clock, execute_replay, take_rate
from pik.sinks import FILE_SCHEME, FileSink, file_target, target_path


def os_user() -> str:
    """The acting OS user, as audited."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        name = ""
    return name or f"uid-{os.getuid()}"


class LocalReplayBackend:
    """A :class:`~pik.services.replay.ReplayBackend` on a local store."""

    def __init__(
        self,
        store: LocalEngine,
        ledger: LocalReplayLedger,
        who: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store: EventStore = store
        self.ledger: ReplayLedger = ledger
        self.who = who or os_user()
        self.clock = clock
        self._root = store.layout.root

    @classmethod
    def open(cls, store_dir: Path, who: str | None = None) -> LocalReplayBackend:
        """The backend of the store at ``store_dir`` (which must exist), read-only but for
        its ledger."""
        store = LocalEngine(Path(store_dir), create=False, read_only=True)
        return cls(store, LocalReplayLedger(Path(store_dir)), who)

    def check_target(self, target: str) -> str:
        try:
            spec = processor_target(target)
        except SpecError as exc:
            raise replay.invalid("target", str(exc)) from None
        if spec is not None:
            return target
        if not target.startswith(FILE_SCHEME):
            raise replay.invalid(
                "target",
                "a local store sends to file:PATH (NDJSON appended to a file) or to "
                "processor:<hour|day>[:/pointer] (the processor's versions)",
            )
        return file_target(target)

    def _sink(self, target: str) -> ReplaySink:
        spec = processor_target(target)
        if spec is not None:
            versions = LocalVersionStore(self._root)
            return ProcessorSink(self.store, versions, spec, self.clock)
        return FileSink(target_path(target))

    def start(self, run: ReplayRun, progress: Progress | None = None) -> ReplayRun:
        """Send the run now, in this process, until it completes, is cancelled or fails."""
        with self._sending(run):
            take_rate(self.ledger, run)
            sink = self._sink(run.target)
            try:
                return execute_replay(
                    self.store, self.ledger, sink, run.replay_id, self.who, self.clock, progress
                )
            finally:
                sink.close()

    @contextmanager
    def _sending(self, run: ReplayRun) -> Iterator[None]:
        # The lock file is named after the replay id, which this engine made (hex): checked
        # all the same, since no name under the store is ever taken from input unchecked.
        if not REPLAY_ID.fullmatch(run.replay_id):
            raise replay_not_found(run.replay_id)
        locks = self._root / LOCKS
        locks.mkdir(exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
        fd = os.open(locks / f"{run.replay_id}.lock", flags, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._in_progress(run) from None
            yield
        finally:
            os.close(fd)

    def _in_progress(self, run: ReplayRun) -> ReplayError:
        error = ReplayError(
            "replay_in_progress",
            f"replay {run.replay_id} is being sent by another process; follow it with "
            "`pik replay status`, or stop it with `pik replay cancel`",
            409,
            "replay_id",
        )
        self.ledger.audit(
            AuditRecord(
                self.clock.now_us(),
                self.who,
                replay.REFUSED,
                run.plan_id,
                run.replay_id,
                error.code,
                {"message": str(error)},
            )
        )
        return error

    def close(self) -> None:
        try:
            self.ledger.close()
        finally:
            self.store.close()
