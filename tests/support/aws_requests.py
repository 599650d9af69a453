"""Count and fail AWS requests at the SDK's edge (botocore's before-call hook).

Used by the AWS engine's tests and by the request-count benchmark. The hook sees every
request the engine makes, after the SDK has built it, so the counts are what AWS would
bill and the limits are checked on what would really be sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse


class RequestLog:
    """Every request a session's clients make: (service, operation, params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self._pending: dict[str, Any] = {}
        self.fail: Callable[[int, str, str], str | dict[str, Any] | None] | None = None
        """Called with (call number from 1, service, operation): an error code fails it;
        so does an error body ({"Code": ..., and what else the answer carries, such as a
        cancelled transaction's CancellationReasons})."""

    def session(self) -> Any:
        session = boto3.session.Session()
        session.events.register("before-parameter-build.*.*", self._parameters)
        session.events.register("before-call.*.*", self._before_call)
        return session

    def _parameters(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self._pending = dict(params)

    def _before_call(self, model: Any, **_: Any) -> Any:
        service = model.service_model.service_name
        self.calls.append((service, model.name, self._pending))
        failure = self.fail(len(self.calls), service, model.name) if self.fail else None
        if failure is None:
            return None
        extra = dict(failure) if isinstance(failure, dict) else {"Code": failure}
        code = extra.pop("Code")
        status = 503 if code in {"SlowDown", "ServiceUnavailable", "InternalError"} else 400
        response = AWSResponse("https://aws.invalid", status, {}, None)
        return response, {
            "Error": {"Code": code, "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
            **extra,
        }

    def by_operation(self) -> Counter[str]:
        return Counter(f"{service}:{operation}" for service, operation, _ in self.calls)

    def clear(self) -> None:
        self.calls.clear()


class CapacityCancellations:
    """A ``RequestLog.fail``: after ``skip`` transactions, the next ``times`` are cancelled
    as a provisioned table over its capacity cancels them (moto never throttles)."""

    def __init__(self, skip: int, times: int) -> None:
        self.skip, self.times = skip, times
        self.transactions = 0
        self.cancelled = 0

    def __call__(self, _n: int, _service: str, operation: str) -> dict[str, Any] | None:
        if operation != "TransactWriteItems":
            return None
        self.transactions += 1
        if not self.skip < self.transactions <= self.skip + self.times:
            return None
        self.cancelled += 1
        return {
            "Code": "TransactionCanceledException",
            "CancellationReasons": [{"Code": "ProvisionedThroughputExceeded"}, {"Code": "None"}],
        }
