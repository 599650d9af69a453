"""Shared fixtures: a real local store in a temporary directory, and event builders."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from pik.engines.local import LocalEngine

EventFactory = Callable[..., bytes]

# Property tests: ~200 examples each in CI; PIK_HYPOTHESIS=long explores ten times more.
settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("long", max_examples=2_000, deadline=None)
settings.load_profile(os.environ.get("PIK_HYPOTHESIS", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow fault-injection and scale tests run only with PIK_SLOW=1 (CI runs a bounded set)."""
    if os.environ.get("PIK_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; run with PIK_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def engine(store_path: Path) -> Iterator[LocalEngine]:
    store = LocalEngine(store_path)
    yield store
    store.close()


def envelope(
    entity_id: str = "customer-1",
    event_time: str = "2026-11-01T10:00:00Z",
    payload: Any = None,
    source: str = "checkout",
    event_type: str = "order.created",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "source": source,
        "event_type": event_type,
        "entity_id": entity_id,
        "event_time": event_time,
        "payload": {"amount": 1} if payload is None else payload,
        **extra,
    }


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.fixture
def make_event() -> EventFactory:
    def build(**fields: Any) -> bytes:
        return encode(envelope(**fields))

    return build


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS, with fake credentials so nothing can reach a real account."""
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # moto's in-process backends are not thread-safe (concurrent transactions corrupt its
    # dictionaries), while every real AWS request is applied atomically. Serialising the
    # emulated requests restores that; our own code still runs fully concurrently.
    from moto.core.botocore_stubber import BotocoreStubber

    emulate = BotocoreStubber.process_request
    lock = threading.Lock()

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return emulate(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    patch_moto_transactions(monkeypatch)
    with mock_aws():
        yield


def patch_moto_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto backs a table up before *each action* of a transaction (100 deep copies of the
    whole table for one TransactWriteItems): one backup per table per transaction rolls
    back the same, and keeps a 1,000-event batch from taking minutes."""
    import copy
    import types

    from moto.dynamodb import models

    transact = models.DynamoDBBackend.transact_write_items

    def backed_up_once(self: Any, transact_items: Any) -> Any:
        copies: dict[int, Any] = {}

        def deepcopy(value: Any, memo: Any = None) -> Any:
            if not isinstance(value, models.Table):
                return copy.deepcopy(value, memo)
            if id(value) not in copies:  # the table outlives the transaction: ids stay unique
                copies[id(value)] = copy.deepcopy(value, memo)
            return copies[id(value)]

        monkeypatch.setattr(
            models, "copy", types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)
        )
        try:
            return transact(self, transact_items)
        finally:
            monkeypatch.setattr(models, "copy", copy)

    monkeypatch.setattr(models.DynamoDBBackend, "transact_write_items", backed_up_once)


STACK_NAME = "pik-contract"


@pytest.fixture
def aws_config(moto_aws: None) -> Any:
    """The AWS engine's resources as the CLI finds them: template.yaml, transformed and
    created in moto's CloudFormation, then discovered by the stack's name alone."""
    from moto_stack import create_stack

    from pik.engines.aws.discovery import discover

    create_stack(STACK_NAME, "us-east-1")
    return discover(STACK_NAME, region="us-east-1")


@pytest.fixture
def aws_engine(aws_config: Any) -> Iterator[Any]:
    from pik.engines.aws import AwsEngine

    engine = AwsEngine(aws_config)
    yield engine
    engine.close()
