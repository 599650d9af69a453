"""Replays on a deployed stack: what the replay control function and the replay function
run on.

An operator plans and confirms through the stack's API (:mod:`pik.engines.aws.replay_api`);
the replay control function does it with this backend, as the principal API Gateway
authenticated, and ``start`` hands the run to the replay function by putting
``{"replay_id": ...}`` on the replay work queue. The replay function sends the messages,
pauses before its deadline and continues itself, while the operator follows the run in the
ledger. Nothing is sent from the operator's machine, and a run survives the operator
closing their laptop.

Targets on AWS: ``queue`` (the stack's replay queue, the default) or ``sqs:<queue ARN>``
for a queue the deployer listed in the template's ``ReplayTargetQueueArns``; the replay
function's role may send there and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from pik.domain import replay
from pik.domain.replay import ReplayRun
from pik.engines.aws.clients import Clients, unavailable_on_failure
from pik.engines.aws.engine import AwsConfig, AwsEngine
from pik.engines.aws.ledger import AwsReplayLedger
from pik.engines.aws.sinks import QueueSink
from pik.ports import EventStore, Progress, ReplayLedger
from pik.services.replay import take_rate
from pik.storage_errors import StoreUnavailableError

QUEUE_TARGET = "queue"
SQS_PREFIX = "sqs:"
QUEUE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<name>[A-Za-z0-9_-]{1,80})"
)
"""A standard queue's ARN (a FIFO queue would need a message group per message)."""


def work_item(replay_id: str) -> str:
    """The body of a work queue message: which run the replay function is to send."""
    return json.dumps({"replay_id": replay_id})


def _shown(arn: str) -> str:
    """A queue ARN as an answer may repeat it: only one shaped like an ARN (a refusal is
    audited, and whatever else was typed there need not be kept)."""
    return repr(arn) if QUEUE_ARN.fullmatch(arn) else "that queue"


MAX_DELAY_S = 900
"""SQS delays a message by at most 15 minutes."""


class AwsReplayBackend:
    """A :class:`~pik.services.replay.ReplayBackend` on one stack."""

    def __init__(self, config: AwsConfig, *, session: Any = None, who: str | None = None) -> None:
        self.config = config
        self._clients = Clients(config.region, session, config.endpoint_url)
        self.store: EventStore = AwsEngine(config, session=session)
        self._ledger = AwsReplayLedger(config, clients=self._clients)
        self.ledger: ReplayLedger = self._ledger
        self._who = who

    @classmethod
    def open(
        cls, stack_name: str, *, region: str | None = None, session: Any = None
    ) -> AwsReplayBackend:
        """The backend of a deployed stack, found by its name (as ``pik --stack`` does)."""
        from pik.engines.aws.discovery import StackNotFoundError, discover

        config = discover(stack_name, session, region)
        if not (config.replay_queue_url and config.replay_work_queue_url):
            raise StackNotFoundError(
                f"stack {stack_name!r} has no replay function (outputs ReplayQueueUrl and "
                "ReplayWorkQueueUrl): update it to this version of the template "
                "(docs/deploy.md, Phase 2: replay)"
            )
        return cls(config, session=session)

    @classmethod
    def from_env(cls) -> AwsReplayBackend:
        """What the replay function runs on: the resources its environment names."""
        return cls(AwsConfig.from_env())

    @property
    def who(self) -> str:
        """The caller's IAM principal (``sts:GetCallerIdentity``, which needs no permission),
        asked once: an operator's user or role, or the replay function's role session."""
        if self._who is None:
            with unavailable_on_failure("finding the caller's identity"):
                self._who = str(self._clients.sts.get_caller_identity()["Arn"])
        return self._who

    @who.setter
    def who(self, value: str) -> None:
        self._who = value

    def check_target(self, target: str) -> str:
        if target == QUEUE_TARGET:
            return QUEUE_TARGET
        if isinstance(target, str) and target.startswith(SQS_PREFIX):
            arn = target.removeprefix(SQS_PREFIX)
            if arn and arn == self.config.replay_queue_arn:
                return QUEUE_TARGET
            if arn in self.config.replay_targets and QUEUE_ARN.fullmatch(arn):
                return target
            allowed = ", ".join(self.config.replay_targets) or "none are listed"
            raise replay.invalid(
                "target",
                f"the stack may not send replays to {_shown(arn)}: only to its replay queue "
                f"(`queue`) and to the queues listed in its ReplayTargetQueueArns parameter "
                f"({allowed})",
            )
        raise replay.invalid(
            "target",
            "that is no target on AWS: use `queue` (the stack's replay queue) or "
            "`sqs:<queue ARN>` of a queue listed in ReplayTargetQueueArns",
        )

    def sink_for(self, target: str) -> QueueSink:
        """Where a run of ``target`` sends its messages (checked against the stack again:
        the list of allowed queues may have changed since the plan)."""
        target = self.check_target(target)
        if target == QUEUE_TARGET:
            if not self.config.replay_queue_url:
                raise RuntimeError("PIK_REPLAY_QUEUE_URL is not set")
            return QueueSink(self.config.replay_queue_url, self._clients)
        found = QUEUE_ARN.fullmatch(target.removeprefix(SQS_PREFIX))
        assert found is not None  # check_target allows matching ARNs only
        region = found["region"]
        endpoint = self._clients.sqs_in(region).meta.endpoint_url.rstrip("/")
        url = f"{endpoint}/{found['account']}/{found['name']}"
        return QueueSink(url, self._clients, region=region)

    def start(self, run: ReplayRun, progress: Progress | None = None) -> ReplayRun:
        """Hand a confirmed run to the replay function; the run as the ledger has it. A rate
        a resume asked for is recorded first: the function reads it each time it takes the
        run up (an invocation sending it now keeps its rate until it next pauses)."""
        take_rate(self.ledger, run)
        self.enqueue(run.replay_id)
        try:
            return self.ledger.run(run.replay_id) or run
        except StoreUnavailableError:  # handed over all the same: say so, as it was
            return run

    def enqueue(self, replay_id: str, delay_s: int = 0) -> None:
        """Put a run on the work queue: to start it, or to continue it (the function,
        before its deadline or once another invocation's hold on it ends, or an operator
        resuming a run whose work item was lost), ``delay_s`` from now (at most 900)."""
        if not self.config.replay_work_queue_url:
            raise RuntimeError("the stack has no replay work queue (PIK_REPLAY_WORK_QUEUE_URL)")
        with unavailable_on_failure("putting the replay on the stack's work queue"):
            self._clients.sqs.send_message(
                QueueUrl=self.config.replay_work_queue_url,
                MessageBody=work_item(replay_id),
                DelaySeconds=min(max(delay_s, 0), MAX_DELAY_S),
            )

    def hold(self, replay_id: str, holder: str, until_us: int, now_us: int) -> int | None:
        """Take the right to send a run (see ``AwsReplayLedger.hold``)."""
        return self._ledger.hold(replay_id, holder, until_us, now_us)

    def release(self, replay_id: str, holder: str) -> None:
        self._ledger.release(replay_id, holder)

    def shorten_retry(self, receipt_handle: str, seconds: int) -> None:
        """Make a failed work item visible again after ``seconds`` rather than after the
        queue's visibility timeout. Best effort: if this fails too, the timeout applies."""
        with contextlib.suppress(Exception):
            self._clients.sqs.change_message_visibility(
                QueueUrl=self.config.replay_work_queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=seconds,
            )

    def close(self) -> None:
        self.store.close()
        self.ledger.close()
