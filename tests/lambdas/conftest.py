"""Lambda handlers against a real local store: a context, envelopes, log and EMF capture.

Shared pieces are fixtures (test modules are imported in isolation, not as a package).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_requests import RequestLog
from lambda_context import FakeContext

from pik.domain.limits import DEFAULT_LIMITS, Limits
from pik.lambdas.observability import logger

CANARY = "CANARY-5f1c-do-not-log"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(
    entity_id: str = "customer-1",
    source: str = "checkout",
    ago: timedelta = timedelta(seconds=1),
    payload: Any = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "event_type": "order.created",
        "entity_id": entity_id,
        "event_time": iso(datetime.now(UTC) - ago),
        "payload": {"amount": 1} if payload is None else payload,
    }


class Logs:
    """The handlers' log output, captured from the Powertools logger's own handler."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def logs() -> Iterator[Logs]:
    captured = Logs()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(captured.stream)
    yield captured
    handler.setStream(previous)


class Emf:
    """The EMF documents printed on stdout since the last read (one JSON object a line)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.blobs: list[dict[str, Any]] = []

    def read(self) -> dict[str, list[float]]:
        self.blobs = emf_blobs(self.capsys.readouterr().out)
        return metric_values(self.blobs)


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents printed on stdout (one JSON object a line)."""
    blobs = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [blob for blob in blobs if "_aws" in blob]


def metric_values(blobs: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Every metric's values over all blobs (Powertools may split a large set)."""
    values: dict[str, list[float]] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(
                    value if isinstance(value, list) else [value]
                )
    return values


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Emf:
    capsys.readouterr()  # start clean
    return Emf(capsys)


@pytest.fixture
def canary() -> str:
    return CANARY


@pytest.fixture
def make_envelope() -> Callable[..., dict[str, Any]]:
    return envelope


@pytest.fixture
def aws_store(aws_config: Any) -> Callable[..., tuple[Any, RequestLog]]:
    """Makes the AWS engine on the template's stack in moto, with its requests logged and,
    where a test says, refused as AWS refuses them: AWS is the one part a test may fake,
    so a store failing under a handler is this real engine meeting a failing AWS."""
    from pik.engines.aws import AwsEngine

    def make(limits: Limits = DEFAULT_LIMITS) -> tuple[Any, RequestLog]:
        log = RequestLog()
        return AwsEngine(aws_config, session=log.session(), limits=limits), log

    return make
