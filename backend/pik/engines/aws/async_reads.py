"""The AWS engine's reads from async code (the TUI): the plans of ``plans`` on aiobotocore.

The plans, and so the requests and the records they make, are the ones the blocking
``reads.Reader`` runs; only sending differs. Every call of a plan's step is in flight at
once, up to a bound: a coverage grid of 90 days is 720 queries, and a bounded number of
connections keeps them from queueing on the connection pool or tripping throttling
together.

aiobotocore rather than aioboto3: aioboto3 is a thin layer over aiobotocore and pins an
older boto3 than the engine's, while aiobotocore follows botocore closely.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from pik.engines.aws.clients import (
    ATTEMPTS,
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    unavailable_on_failure,
)
from pik.engines.aws.plans import (
    DEFERRED_ATTEMPTS,
    Answer,
    AsyncReads,
    Call,
    Plan,
    ReadPlans,
    Running,
    deferred,
    deferred_pause_s,
    gave_up,
    merged,
)

if TYPE_CHECKING:
    from pik.engines.aws.engine import AwsConfig

T = TypeVar("T")

IN_FLIGHT = 32
"""Calls sent at once by one reader."""


class AsyncAwsReader(AsyncReads):
    """Every read of the port as a coroutine: ``await reader.timeline(...)``.

    Clients are made on first use, inside the event loop that awaits them, and belong to
    that loop: use one reader from one loop, and ``await close()`` (or ``async with``)
    in it to release their connections.
    """

    def __init__(
        self, config: AwsConfig, *, session: Any = None, in_flight: int = IN_FLIGHT
    ) -> None:
        self.plans = ReadPlans(config.table, config.bucket)
        self._config = config
        self._session = session
        self._in_flight = in_flight
        self._slots = asyncio.Semaphore(in_flight)
        self._making = asyncio.Lock()
        self._clients: dict[str, Any] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> AsyncAwsReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the clients and their connections; a later read makes new ones."""
        async with self._making:
            stack, self._stack, self._clients = self._stack, AsyncExitStack(), {}
            await stack.aclose()

    async def run(self, plan: Plan[T]) -> T:
        running = Running(plan)
        while not running.done:
            running.answer(await self._send_all(running.calls))
        return running.result

    async def _send_all(self, calls: list[Call]) -> list[Answer]:
        try:
            # A task group cancels the other calls as soon as one fails: nobody will
            # read their answers.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._send(call)) for call in calls]
        except* Exception as failed:
            # The first failure, as the blocking reader raises it (its cause chain says
            # why, e.g. missing credentials under a StoreUnavailableError).
            raise failed.exceptions[0] from failed.exceptions[0].__cause__
        return [task.result() for task in tasks]

    async def _send(self, call: Call) -> Answer:
        answer = await self._send_once(call)
        tries = 0
        while (again := deferred(call, answer)) is not None:
            if tries == DEFERRED_ATTEMPTS:
                raise gave_up(call)
            await asyncio.sleep(deferred_pause_s(tries))
            tries += 1
            answer = merged(answer, await self._send_once(again))
        return answer

    async def _send_once(self, call: Call) -> Answer:
        client = await self._client(call.service)
        async with self._slots:
            with unavailable_on_failure(call.what):
                answer: Answer = await getattr(client, call.operation)(**call.request)
                if "Body" in answer:
                    async with answer["Body"] as body:
                        answer["Body"] = await body.read()
        return answer

    async def _client(self, service: str) -> Any:
        async with self._making:
            if service not in self._clients:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                session = self._session or get_session()
                made = session.create_client(
                    service,
                    region_name=self._config.region,
                    endpoint_url=self._config.endpoint_url,
                    config=AioConfig(
                        retries={"mode": "standard", "max_attempts": ATTEMPTS},
                        max_pool_connections=self._in_flight,
                        connect_timeout=CONNECT_TIMEOUT_S,
                        read_timeout=READ_TIMEOUT_S,
                    ),
                )
                self._clients[service] = await self._stack.enter_async_context(made)
            return self._clients[service]
