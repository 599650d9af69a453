"""The contract suite: every test here runs against each engine behind the storage port.

``local`` is the embedded engine on a temporary directory. ``aws`` is the AWS engine on
S3 and DynamoDB as moto emulates them. A test that passes on one engine only means the
engines have drifted.

Where the engines may differ by design, the test says so: the AWS engine's timelines and
entity directory come from global secondary indexes, which DynamoDB keeps eventually
consistent. moto applies them at once, so the contract tests read them straight after a
write; against real AWS a reader may see an acknowledged event a moment later.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pik.engines.local import LocalEngine
from pik.engines.local.ledger import LocalReplayLedger
from pik.ports import EventStore, ReplayLedger

ENGINES = ["local", "aws"]


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "local":
        engine = LocalEngine(tmp_path / "store")
        yield engine
        engine.close()
        return
    if request.param == "aws":
        yield request.getfixturevalue("aws_engine")
        return
    raise AssertionError(f"no fixture for engine {request.param}")


@pytest.fixture
def ledger(request: pytest.FixtureRequest, store: EventStore) -> Iterator[ReplayLedger]:
    """The replay ledger of the same engine as ``store``."""
    if isinstance(store, LocalEngine):
        local = LocalReplayLedger(store.layout.root)
        yield local
        local.close()
        return
    from pik.engines.aws.ledger import AwsReplayLedger

    aws = AwsReplayLedger(request.getfixturevalue("aws_config"))
    yield aws
    aws.close()
