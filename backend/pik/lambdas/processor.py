"""The processor function: replayed events in, new aggregate versions out.

Deployed only when the stack's ``EnableProcessor`` parameter is ``true``; it is the
consumer of the replay queue. Each record is one replay message. The windows an invocation
touches are recomputed once each (several messages of one window cost one computation),
then every record is reported on its own:

* a window that could not be computed because its store was unavailable, or because an
  input event's bytes are missing or altered, fails every record that touched it: SQS
  delivers them again and, after ``maxReceiveCount`` tries, to the dead-letter queue, whose
  alarm tells the operator;
* a record that is not a replay message fails the same way (it can never succeed; the
  dead-letter queue is where it is seen);
* a window whose inputs did not change gets no new version, so redelivery is harmless.

The spec comes from the function's environment: ``PIK_PROCESSOR_WINDOW`` (``hour`` or
``day``) and ``PIK_PROCESSOR_SUM`` (a JSON pointer into payloads, or empty).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pik.domain.versions import AggregateSpec
from pik.lambdas.observability import log_failure, record_count
from pik.lambdas.sqs import Handler, batch_handler
from pik.lambdas.store import Lazy
from pik.ports import EventStore, VersionStore
from pik.services.processor import MessageError, RawUnreadableError, recompute, touched
from pik.storage_errors import StoreFullError, StoreUnavailableError

Parts = tuple[EventStore, VersionStore]
FAILED_WINDOW = (StoreUnavailableError, StoreFullError, RawUnreadableError, ValueError)
"""Failures that send a window's records back (ValueError: a window too large to list)."""


def spec_from_env() -> AggregateSpec:
    return AggregateSpec(
        os.environ.get("PIK_PROCESSOR_WINDOW") or "day",
        os.environ.get("PIK_PROCESSOR_SUM") or None,
    )


def parts_from_env() -> Parts:
    """The stack's event store and version store, named by PIK_TABLE and PIK_BUCKET."""
    from pik.engines.aws import AwsEngine
    from pik.engines.aws.clients import Clients
    from pik.engines.aws.versions import AwsVersionStore

    engine = AwsEngine.from_env()
    clients = Clients(engine.config.region, None, engine.config.endpoint_url)
    return engine, AwsVersionStore(clients, engine.config.table)


def _process(
    parts: Lazy[Parts], spec: AggregateSpec, records: list[dict[str, Any]]
) -> tuple[set[str], int]:
    """Recompute the windows the records touch; the message ids to retry, versions written."""
    retry: set[str] = set()
    windows: dict[tuple[str, int], tuple[str | None, set[str], set[bytes]]] = {}
    for record in records:
        message_id = str(record.get("messageId"))
        try:
            touches = touched([str(record.get("body") or "").encode()], spec)
        except MessageError as exc:
            log_failure("not a replay message; it goes back to the queue", exc)
            retry.add(message_id)
            continue
        for touch in touches:
            key = (touch.entity_id, touch.window_start_us)
            window = windows.setdefault(key, (touch.replay_id, set(), set()))
            window[1].add(message_id)
            window[2].update(touch.event_ids)
    try:
        store, versions = parts.get()
    except (StoreUnavailableError, StoreFullError) as exc:
        log_failure("store unavailable; records go back to the queue", exc)
        return {str(r.get("messageId")) for r in records}, 0
    written = 0
    for (entity_id, window_start_us), (replay_id, owners, named) in sorted(windows.items()):
        if len(entity_id) > store.limits.max_entity_id_chars:
            # No stored event has such an id (and an index would refuse it as a key).
            log_failure(
                "not a replay message of this store; it goes back to the queue",
                MessageError(f"entity_id is over {store.limits.max_entity_id_chars} characters"),
            )
            retry |= owners
            continue
        try:
            if recompute(store, versions, spec, entity_id, window_start_us, replay_id, named=named):
                written += 1
        except FAILED_WINDOW as exc:
            log_failure("a window was not computed; its records go back to the queue", exc)
            retry |= owners
    return retry, written


def make_handler(
    parts_factory: Callable[[], Parts], spec_factory: Callable[[], AggregateSpec] = spec_from_env
) -> Handler:
    """An SQS handler computing versions in the stores ``parts_factory`` makes (once)."""
    parts = Lazy(parts_factory)

    def work(records: list[dict[str, Any]]) -> tuple[set[str], dict[str, Any]]:
        retry, written = _process(parts, spec_factory(), records)
        record_count("VersionsWritten", written)
        return retry, {"versions": written}

    return batch_handler("process", work)


handler = make_handler(parts_from_env)
