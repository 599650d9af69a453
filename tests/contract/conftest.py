"""The contract suite: every test here runs against each engine behind the storage port.

Today that is the local engine; the AWS engine (under moto) joins the parameter list, and a
test that passes on one engine only means the engines have drifted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pik.engines.local import LocalEngine
from pik.ports import EventStore

ENGINES = ["local"]


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "local":
        engine = LocalEngine(tmp_path / "store")
        yield engine
        engine.close()
        return
    raise AssertionError(f"no fixture for engine {request.param}")
