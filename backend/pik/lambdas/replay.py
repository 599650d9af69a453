"""The replay function: sends confirmed replays, one work item (one run) per invocation.

A work item is ``{"replay_id": ...}`` on the replay work queue (batch size 1), put there by
``AwsReplayBackend.start`` once an operator confirmed a plan, and by this function itself
when it pauses. For each:

* a run another invocation is sending (it holds the run in the ledger, until its own
  timeout at the latest) is put back on the work queue for when that hold ends, and the
  item acknowledged: one invocation at a time sends a run;
* the run is sent from where its ledger says it got to (``execute_replay``) until it
  completes, is cancelled, or the invocation has less than a minute left: then a
  continuation item goes on the work queue and this one is acknowledged;
* the store, the ledger or a queue unavailable (``StoreUnavailableError``): a batch item
  failure. SQS delivers the item again, after a delay that grows with each try (set here,
  shorter than the queue's visibility timeout), and after five tries moves it to the
  work queue's dead-letter queue; the run resumes from its ledger either way;
* a refusal (``ReplayError``: the run ended or is unknown, its events changed since the
  plan, raw bytes that do not verify, a message the queue refuses, a target no longer
  allowed): logged with its code and acknowledged, since no retry can fix it. A run still
  running is ended as failed, and that is audited;
* a body that is not a work item: logged and acknowledged;
* anything else is a bug: the invocation fails and SQS delivers the item again.

Nothing of an event is logged: replay ids, counts, codes and error types only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pik.domain import replay
from pik.domain.numbers import whole_number
from pik.domain.replay import REPLAY_ID, AuditRecord, ReplayError
from pik.lambdas.observability import log_failure, logger, record_count
from pik.lambdas.sqs import Handler, batch_handler
from pik.lambdas.store import Lazy, replay_backend_from_env
from pik.services.replay import SYSTEM_CLOCK, Clock, execute_replay
from pik.storage_errors import StoreUnavailableError

if TYPE_CHECKING:
    from pik.engines.aws.replay_backend import AwsReplayBackend

PAUSE_WITH_MS_LEFT = 60_000
"""Stop sending when less than this is left before the function's timeout."""
HOLD_MARGIN_MS = 10_000
"""A hold outlasts its invocation's timeout by this much (clocks of invocations differ)."""
MAX_INVOCATION_MS = 900_000
"""No Lambda invocation runs longer (15 minutes)."""
RETRY_DELAYS_S = (60, 120, 240, 480)
"""When a failed work item is tried again, by the number of tries so far."""


def replay_id_of(body: object) -> str | None:
    """The run a work item names, or None for a body that is not a work item."""
    try:
        document = json.loads(body) if isinstance(body, str) else None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
        return None
    replay_id = document.get("replay_id") if isinstance(document, dict) else None
    return replay_id if isinstance(replay_id, str) and REPLAY_ID.fullmatch(replay_id) else None


def retry_delay(record: dict[str, Any]) -> int:
    tries = str((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
    count = whole_number(tries, digits=8) or 1
    return RETRY_DELAYS_S[min(max(count, 1), len(RETRY_DELAYS_S)) - 1]


@dataclass(slots=True)
class _Invocation:
    """The context of the invocation being handled (the Batch utility's work sees only
    the records): its deadline decides when a run pauses."""

    context: LambdaContext | None = None

    def near_deadline(self) -> bool:
        return (
            self.context is not None
            and self.context.get_remaining_time_in_millis() < PAUSE_WITH_MS_LEFT
        )

    def request_id(self) -> str:
        found = getattr(self.context, "aws_request_id", None)
        return str(found) if found else uuid.uuid4().hex

    def hold_us(self) -> int:
        """How long this invocation may hold a run: past its own timeout, it cannot be
        sending any more."""
        left_ms = MAX_INVOCATION_MS
        if self.context is not None:
            left_ms = self.context.get_remaining_time_in_millis()
        return (left_ms + HOLD_MARGIN_MS) * 1000


def _fail_run(backend: AwsReplayBackend, replay_id: str, error: ReplayError, clock: Clock) -> None:
    """End a run a refusal stopped (a refused message, a target no longer allowed); runs
    the service ended already, and unknown ones, are left as they are."""
    run = backend.ledger.run(replay_id)
    if run is None or run.status != replay.RUNNING:
        return
    at_us = clock.now_us()
    audit = AuditRecord(
        at_us,
        backend.who,
        replay.FAILED,
        run.plan_id,
        replay_id,
        error.code,
        {"sent": run.sent, "message": str(error)},
    )
    backend.ledger.finish(replay_id, replay.FAILED, at_us, audit)


def _send(
    backend: AwsReplayBackend, replay_id: str, invocation: _Invocation, clock: Clock
) -> dict[str, Any]:
    """Send one run as far as this invocation gets; what to log about it.

    The invocation holds the run while it sends it, until its own timeout at the latest:
    a work item delivered twice, or a resume while the run is sent, finds it held and is
    put back for when that hold ends, instead of sending the same messages alongside. Put
    back rather than dropped: it may be the continuation of an invocation whose release
    failed, and then nobody else would go on with the run.
    """
    now_us = clock.now_us()
    holder = invocation.request_id()
    busy_until = backend.hold(replay_id, holder, now_us + invocation.hold_us(), now_us)
    if busy_until is not None:
        delay_s = -(-(busy_until - now_us) // 1_000_000)
        backend.enqueue(replay_id, delay_s)
        record_count("ReplayBusy", 1)
        return {"status": "held elsewhere", "held_for_s": delay_s}
    try:
        run = backend.ledger.run(replay_id)
        if run is not None and run.status != replay.RUNNING:
            # A redelivered or late work item of a run that has ended: nothing was asked of
            # anyone, so nothing is refused or audited; the item is only dropped.
            record_count("ReplayWorkStale", 1)
            return {"status": run.status, "sent": run.sent, "total": run.total, "stale": True}
        before = run.sent if run is not None else 0
        # An unknown run is refused (and audited) by execute_replay before anything is sent.
        sink = backend.sink_for(run.target if run is not None else "queue")
        try:
            after = execute_replay(
                backend.store,
                backend.ledger,
                sink,
                replay_id,
                backend.who,
                clock,
                should_pause=invocation.near_deadline,
            )
        finally:
            sink.close()
    finally:
        backend.release(replay_id, holder)
    if after.status == replay.RUNNING:
        backend.enqueue(replay_id)
        record_count("ReplayContinued", 1)
    record_count("ReplayMessagesSent", max(after.sent - before, 0))
    return {"status": after.status, "sent": after.sent, "total": after.total}


def make_handler(
    backend_factory: Callable[[], AwsReplayBackend], clock: Clock = SYSTEM_CLOCK
) -> Handler:
    """The work queue's handler, sending runs with the backend ``backend_factory`` makes
    (on the first invocation; kept for later ones)."""
    backend_of = Lazy(backend_factory)
    invocation = _Invocation()

    def work(records: list[dict[str, Any]]) -> tuple[set[str], dict[str, Any]]:
        retry: set[str] = set()
        runs: list[dict[str, Any]] = []
        for record in records:
            message_id = str(record.get("messageId"))
            replay_id = replay_id_of(record.get("body"))
            if replay_id is None:
                logger.warning("not a replay work item; dropped", extra={"message_id": message_id})
                record_count("ReplayWorkMalformed", 1)
                continue
            fields: dict[str, Any] = {"replay_id": replay_id}
            backend: AwsReplayBackend | None = None
            try:
                backend = backend_of.get()
                try:
                    fields |= _send(backend, replay_id, invocation, clock)
                except ReplayError as error:
                    fields |= {"status": "refused", "code": error.code}
                    record_count("ReplayRefused", 1)
                    _fail_run(backend, replay_id, error, clock)
            except StoreUnavailableError as exc:
                log_failure("replay interrupted; the work item goes back to the queue", exc)
                fields["status"] = "retry"
                retry.add(message_id)
                if backend is not None:
                    backend.shorten_retry(str(record.get("receiptHandle")), retry_delay(record))
            runs.append(fields)
        return retry, {"runs": runs}

    inner = batch_handler("replay", work)

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        invocation.context = context
        try:
            return inner(event, context)
        finally:
            invocation.context = None

    return handler


handler = make_handler(replay_backend_from_env)
