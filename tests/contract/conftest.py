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

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from tamper import AlterRaw

from pik.domain.records import EventRecord
from pik.engines.local import LocalEngine
from pik.engines.local.ledger import LocalReplayLedger
from pik.ports import EventStore, ReplayLedger, VersionStore

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


@pytest.fixture
def open_versions(
    store: EventStore, request: pytest.FixtureRequest
) -> Iterator[Callable[[], VersionStore]]:
    """Opens version stores of the same engine as ``store`` (several: one a processor)."""
    opened: list[Any] = []

    def open_one() -> VersionStore:
        if isinstance(store, LocalEngine):
            from pik.engines.local.versions import LocalVersionStore

            found: Any = LocalVersionStore(store.layout.root)
        else:
            from pik.engines.aws.clients import Clients
            from pik.engines.aws.versions import AwsVersionStore

            config = request.getfixturevalue("aws_config")
            found = AwsVersionStore(Clients(config.region), config.table)
        opened.append(found)
        return found  # type: ignore[no-any-return]

    yield open_one
    for found in opened:
        found.close()


@pytest.fixture
def versions(open_versions: Callable[[], VersionStore]) -> VersionStore:
    return open_versions()


@pytest.fixture
def alter_raw(store: EventStore, request: pytest.FixtureRequest) -> AlterRaw:
    """Replaces the first ``old`` in one event's raw bytes by ``new``: a failing disk, or
    on S3 a hand the bucket policy would stop (moto's stack runs without it)."""

    def alter(record: EventRecord, old: bytes, new: bytes) -> None:
        if isinstance(store, LocalEngine):
            path = store.layout.segment(int(record.segment))
            data = path.read_bytes()
            path.chmod(0o644)
        else:
            bucket = request.getfixturevalue("aws_config").bucket
            s3 = boto3.client("s3")
            data = s3.get_object(Bucket=bucket, Key=record.segment)["Body"].read()
        at = data.index(old, record.offset)
        changed = data[:at] + new + data[at + len(old) :]
        if isinstance(store, LocalEngine):
            path.write_bytes(changed)
        else:
            s3.put_object(Bucket=bucket, Key=record.segment, Body=changed)

    return alter
