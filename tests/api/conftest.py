"""Fixtures of the `pik serve` tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_client import Client, serving

from pik.engines.local import LocalEngine


@pytest.fixture
def api(engine: LocalEngine) -> Iterator[Client]:
    with serving(engine) as server:
        yield Client(server.server_address[1])
