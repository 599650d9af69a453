"""Shared fixtures: a real local store in a temporary directory, and event builders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from moto_patches import patch_moto_transactions, serialise_moto

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


@pytest.fixture(scope="session", autouse=True)
def no_real_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test can reach a real AWS account, whatever the caller's shell holds: the AWS
    environment is replaced by fake credentials and an empty configuration."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        patch.setenv("AWS_CONFIG_FILE", str(empty))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield


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
    serialise_moto(monkeypatch)
    patch_moto_transactions(monkeypatch)
    with mock_aws():
        yield


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
