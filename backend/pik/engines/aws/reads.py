"""The AWS engine's reads on boto3 (Lambda, the CLI): the plans of ``plans``, blocking.

What to ask and how to fold the answers is decided in ``plans``, shared with the TUI's
async reader; this module only sends the calls.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from pik.engines.aws.clients import Clients, unavailable_on_failure
from pik.engines.aws.plans import (
    DEFERRED_ATTEMPTS,
    Answer,
    BlockingReads,
    Call,
    Plan,
    ReadPlans,
    Running,
    deferred,
    deferred_pause_s,
    gave_up,
    merged,
)

if TYPE_CHECKING:
    from pik.engines.aws.engine import AwsConfig

T = TypeVar("T")

PARALLEL_QUERIES = 16


class Reader(BlockingReads):
    """Every read of the port; the calls of one step run in up to 16 threads at once."""

    def __init__(self, clients: Clients, config: AwsConfig) -> None:
        self.plans = ReadPlans(config.table, config.bucket)
        self._clients = clients

    def run(self, plan: Plan[T]) -> T:
        running = Running(plan)
        while not running.done:
            running.answer(self._send_all(running.calls))
        return running.result

    def _send_all(self, calls: list[Call]) -> list[Answer]:
        if len(calls) <= 1:
            return [self._send(call) for call in calls]
        with ThreadPoolExecutor(min(PARALLEL_QUERIES, len(calls))) as pool:
            return list(pool.map(self._send, calls))

    def _send(self, call: Call) -> Answer:
        answer = self._send_once(call)
        tries = 0
        while (again := deferred(call, answer)) is not None:
            if tries == DEFERRED_ATTEMPTS:
                raise gave_up(call)
            time.sleep(deferred_pause_s(tries))
            tries += 1
            answer = merged(answer, self._send_once(again))
        return answer

    def _send_once(self, call: Call) -> Answer:
        client = getattr(self._clients, call.service)
        with unavailable_on_failure(call.what):
            answer: Answer = getattr(client, call.operation)(**call.request)
            if "Body" in answer:
                body = answer["Body"]
                try:
                    answer["Body"] = body.read()
                finally:
                    body.close()
        return answer
