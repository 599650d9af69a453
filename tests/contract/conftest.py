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
from pik.ports import EventStore

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
