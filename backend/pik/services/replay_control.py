"""What an operator can do with replays, as one interface for every edge.

:class:`ReplayControl` is what `pik replay` works through. On a local store it is a
:class:`LedgerControl`: the operator's own process plans, confirms and audits in the
ledger. On a stack the CLI gets a control that asks the stack's API, where the replay
control function runs a :class:`LedgerControl` as the IAM principal API Gateway
authenticated. So on AWS no operator writes a ledger item: plans, confirmations and audit
records are written by the function, on behalf of the caller the request proves.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from pik.domain import replay
from pik.domain.instants import now_us
from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun, Selection
from pik.ports import Progress
from pik.services.replay import ReplayBackend, cancel_replay, confirm_replay, plan_replay


class ReplayControl(Protocol):
    """Plan, confirm, start, resume and cancel replays; read the ledger."""

    @property
    def who(self) -> str:
        """The identity the audit records name."""
        ...

    def plan(self, selection: Selection) -> Plan:
        """The dry-run of ``selection``, saved as a plan (its target checked here)."""
        ...

    def confirm(self, plan_id: str, rate: int) -> ReplayRun:
        """Confirm a plan: a new run, audited, not yet sending."""
        ...

    def start(self, run: ReplayRun, progress: Progress | None = None) -> ReplayRun:
        """Send a confirmed or resumed run (at once locally; by the function on AWS)."""
        ...

    def resume(self, replay_id: str, rate: int | None = None) -> ReplayRun:
        """The open run to send the rest of, at ``rate`` events a second when given (else
        its own); refused (and audited) when it is not open."""
        ...

    def cancel(self, replay_id: str) -> ReplayRun: ...

    def find_plan(self, plan_id: str) -> Plan | None: ...

    def run(self, replay_id: str) -> ReplayRun | None: ...

    def runs(self, limit: int) -> list[ReplayRun]: ...

    def audit_log(self, since_us: int, limit: int) -> list[AuditRecord]: ...


class LedgerControl:
    """A :class:`ReplayControl` that writes the ledger itself, as ``who``."""

    def __init__(self, backend: ReplayBackend, who: str | None = None) -> None:
        self._backend = backend
        self._who = who

    @property
    def who(self) -> str:
        return self._who if self._who is not None else self._backend.who

    def plan(self, selection: Selection) -> Plan:
        backend = self._backend
        # Built again: the target in its recorded form must pass the selection's rules too.
        checked = Selection.build(
            selection.entity_ids,
            selection.start_us,
            selection.end_us,
            backend.check_target(selection.target),
            selection.sources,
            selection.event_types,
        )
        return plan_replay(backend.store, backend.ledger, checked, self.who)

    def confirm(self, plan_id: str, rate: int) -> ReplayRun:
        return confirm_replay(self._backend.store, self._backend.ledger, plan_id, self.who, rate)

    def start(self, run: ReplayRun, progress: Progress | None = None) -> ReplayRun:
        return self._backend.start(run, progress)

    def resume(self, replay_id: str, rate: int | None = None) -> ReplayRun:
        current = self._backend.ledger.run(replay_id)
        if current is None:
            raise self._refused(replay.replay_not_found(replay_id), None)
        if current.status != replay.RUNNING:
            raise self._refused(replay.replay_ended(replay_id, current.status), current)
        asked = current
        if rate is not None and rate != current.rate:
            try:
                asked = replace(current, rate=replay.check_rate(rate))
            except ReplayError as error:
                raise self._refused(error, current) from None
        changed = {"rate": asked.rate, "was": current.rate} if asked is not current else {}
        self._backend.ledger.audit(
            AuditRecord(
                now_us(),
                self.who,
                replay.RESUME_REQUESTED,
                current.plan_id,
                replay_id,
                detail=changed,
            )
        )
        # The rate is the sender's to record, once it holds the run (start): a resume
        # refused because another process is sending it changes nothing.
        return asked

    def cancel(self, replay_id: str) -> ReplayRun:
        cancel_replay(self._backend.ledger, replay_id, self.who)
        current = self._backend.ledger.run(replay_id)
        if current is None:  # cancel_replay refuses an unknown run, so it exists
            raise replay.replay_not_found(replay_id)
        return current

    def _refused(self, error: ReplayError, run: ReplayRun | None) -> ReplayError:
        """Audit a refusal decided here, then hand it back to be raised."""
        self._backend.ledger.audit(
            AuditRecord(
                now_us(),
                self.who,
                replay.REFUSED,
                run.plan_id if run else None,
                run.replay_id if run else None,
                error.code,
                {"message": str(error)},
            )
        )
        return error

    def find_plan(self, plan_id: str) -> Plan | None:
        return self._backend.ledger.plan(plan_id)

    def run(self, replay_id: str) -> ReplayRun | None:
        return self._backend.ledger.run(replay_id)

    def runs(self, limit: int) -> list[ReplayRun]:
        return self._backend.ledger.runs(limit)

    def audit_log(self, since_us: int, limit: int) -> list[AuditRecord]:
        return self._backend.ledger.audit_log(since_us, limit)
