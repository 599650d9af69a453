"""Logs and metrics of the Lambda handlers: one JSON logger, one EMF metrics sink.

Logs are Powertools JSON lines on stdout, each with the invocation's request id (and, for
the API, API Gateway's request id as ``correlation_id``). Nothing of a request's headers,
body or path is ever logged: only counts, stable codes, statuses and error types.

Metrics are CloudWatch EMF (namespace ``$POWERTOOLS_METRICS_NAMESPACE``, default
``PipelineInvestigationKit``) with one dimension, ``service`` (``$POWERTOOLS_SERVICE_NAME``,
default ``pik``). Nothing a producer sends (source, entity, event type) ever becomes a
dimension, so 10k sources make no more metric streams than one; per-source numbers live in
the store's own counters (``pik rates --source``).
"""

from __future__ import annotations

import os
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from pik.domain.outcome import Outcome, Status

DEFAULT_NAMESPACE = "PipelineInvestigationKit"
DEFAULT_SERVICE = "pik"
MAX_LAG_VALUES = 100
"""LagMs values added per invocation: EMF takes at most 100 values per metric in one blob."""

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
    service=SERVICE,
)


@dataclass(slots=True)
class IngestSummary:
    """What one invocation ingested, in the terms of the store's own counters."""

    late_after_us: int
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    late: int = 0
    lags_ms: list[int] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    """Rejection codes: a fixed vocabulary, never anything the producer wrote."""

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.status is Status.ACCEPTED:
                self.accepted += 1
                if outcome.lag_ms is not None:
                    self.lags_ms.append(outcome.lag_ms)
                    # The store's rule (lag > late_after), at the millisecond resolution the
                    # outcome reports.
                    if outcome.lag_ms * 1000 > self.late_after_us:
                        self.late += 1
            elif outcome.status is Status.DUPLICATE:
                self.duplicate += 1
            else:
                self.rejected += 1
                if outcome.rejection is not None:
                    self.codes[outcome.rejection.code] += 1

    def log_fields(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "late": self.late,
            "rejection_codes": dict(self.codes),
        }


def lag_sample(lags_ms: Sequence[int], limit: int = MAX_LAG_VALUES) -> list[int]:
    """At most ``limit`` lags that keep the distribution's shape.

    Up to ``limit`` lags are all kept. Beyond that, evenly spaced order statistics of the
    sorted lags (the minimum and the maximum always among them), so percentiles computed
    by CloudWatch stay close to the true ones while one request adds a bounded blob.
    """
    if len(lags_ms) <= limit:
        return list(lags_ms)
    ordered = sorted(lags_ms)
    last = len(ordered) - 1
    return [ordered[round(i * last / (limit - 1))] for i in range(limit)]


def record_ingest(summary: IngestSummary) -> None:
    """Add one invocation's ingest metrics (flushed by :func:`flush_metrics`)."""
    metrics.add_metric(name="Accepted", unit=MetricUnit.Count, value=summary.accepted)
    metrics.add_metric(name="Duplicate", unit=MetricUnit.Count, value=summary.duplicate)
    metrics.add_metric(name="Rejected", unit=MetricUnit.Count, value=summary.rejected)
    metrics.add_metric(name="Late", unit=MetricUnit.Count, value=summary.late)
    # Last, because Powertools publishes the blob by itself when a metric reaches 100 values.
    for lag in lag_sample(summary.lags_ms):
        metrics.add_metric(name="LagMs", unit=MetricUnit.Milliseconds, value=lag)


def record_count(name: str, value: int) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush_metrics() -> None:
    """Publish this invocation's metrics, if it has any.

    Used instead of ``log_metrics``, which warns on stderr (a line outside the JSON log) on
    every invocation that emitted nothing, such as a query.
    """
    if metrics.metric_set:
        metrics.flush_metrics()


def log_failure(message: str, error: BaseException) -> None:
    """Log an unexpected error by type and code location only.

    An exception's message can quote the input that caused it; the frames name only our code.
    """
    logger.error(
        message,
        extra={
            "error_type": type(error).__name__,
            "stack": traceback.format_tb(error.__traceback__),
        },
    )
