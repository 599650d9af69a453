"""The store a Lambda function uses: made on first use, kept for the execution environment.

Creating it lazily keeps the import (the cold start's init phase) free of SDK clients and
network calls, and lets tests hand the handlers any store through a factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from pik.ports import EventStore

if TYPE_CHECKING:
    from pik.engines.aws.replay_backend import AwsReplayBackend

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by ``factory`` on first :meth:`get`, then reused.

    A factory that raises is tried again on the next call, so a transient failure at start-up
    (the store's service unreachable) does not poison the execution environment. Lambda runs
    one invocation at a time per environment, so no lock is needed.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._factory()
        return self._value


def store_from_env() -> EventStore:
    """The AWS engine named by ``PIK_TABLE`` and ``PIK_BUCKET`` (region from the AWS env).

    Imported here, not at the top: the AWS engine and boto3 load when a function first
    needs its store, not while the runtime imports the handler module.
    """
    from pik.engines.aws import AwsEngine

    return AwsEngine.from_env()


def replay_backend_from_env() -> AwsReplayBackend:
    """The stack's replay backend, named by the function's environment (imported here, as
    the engine is)."""
    from pik.engines.aws.replay_backend import AwsReplayBackend

    return AwsReplayBackend.from_env()
