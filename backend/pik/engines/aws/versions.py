"""Aggregate versions on the AWS engine: items of the index table, written once each.

One partition per spec and entity, one item per version, sorted by window then version::

    V#<spec id>#<entity>    <window start us>!<version, 10 digits>

``add`` is a put on the condition that the item does not exist, so two processors that
compute one window at once never both write version *n*. The input ids are kept as
packed binary (16 bytes an event). An item holds at most 400 KB — about 20,000 events'
ids, fewer when the window has many event types or sources — so a larger version is
refused with a message to use hourly windows, rather than written without its inputs.
"""

from __future__ import annotations

from typing import Any

import orjson

from pik.domain.versions import Version
from pik.engines.aws import shapes
from pik.engines.aws.clients import Clients, error_code, unavailable_on_failure
from pik.storage_errors import StoreUnavailableError


class WindowTooLargeError(ValueError):
    code = "window_too_large"


def _too_large(version: Version, size: int | None) -> WindowTooLargeError:
    measured = "" if size is None else f" ({size:,} bytes)"
    return WindowTooLargeError(
        f"the version of {len(version.input_ids):,} events is larger than a DynamoDB item "
        f"can hold{measured}; compute hourly windows instead"
    )


class AwsVersionStore:
    """A :class:`~pik.ports.VersionStore` in the stack's index table."""

    def __init__(self, clients: Clients, table: str) -> None:
        self._clients = clients
        self._table = table

    def latest(self, spec_id: str, entity_id: str, window_start_us: int) -> Version | None:
        request = shapes.versions_of_window(self._table, spec_id, entity_id, window_start_us)
        request.update(ScanIndexForward=False, Limit=1)
        with unavailable_on_failure("reading aggregate versions"):
            items = self._clients.dynamodb.query(**request).get("Items", [])
        return _version(items[0]) if items else None

    def add(self, version: Version) -> bool:
        request = shapes.put_version(self._table, version)
        size = shapes.item_bytes(request["Item"])
        if size > shapes.ITEM_LIMIT_BYTES:
            raise _too_large(version, size)
        from botocore.exceptions import ClientError

        try:
            with unavailable_on_failure("writing an aggregate version"):
                self._clients.dynamodb.put_item(**request)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            if error_code(exc) == "ValidationException" and "size" in str(exc):
                raise _too_large(version, None) from None  # counted differently from ours
            raise
        return True

    def _query(self, request: dict[str, Any]) -> list[Version]:
        found: list[Version] = []
        while True:
            with unavailable_on_failure("reading aggregate versions"):
                answer = self._clients.dynamodb.query(**request)
            found.extend(_version(item) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return found
            request = {**request, "ExclusiveStartKey": last}

    def history(self, spec_id: str, entity_id: str, window_start_us: int) -> list[Version]:
        return self._query(
            shapes.versions_of_window(self._table, spec_id, entity_id, window_start_us)
        )

    def windows(self, spec_id: str, entity_id: str, start_us: int, end_us: int) -> list[Version]:
        if end_us <= start_us:
            return []  # DynamoDB refuses a BETWEEN whose bounds are reversed
        latest: dict[int, Version] = {}
        for v in self._query(
            shapes.versions_between(self._table, spec_id, entity_id, start_us, end_us)
        ):
            latest[v.window_start_us] = v  # ascending: the last one seen is the newest
        return [latest[w] for w in sorted(latest)]

    def close(self) -> None:
        """Nothing to release: clients hold pooled connections only."""


def _version(item: dict[str, Any]) -> Version:
    try:
        document = orjson.loads(item["doc"]["S"])
        packed = bytes(item["ids"]["B"]) if "ids" in item else b""
    except (KeyError, orjson.JSONDecodeError) as exc:
        raise StoreUnavailableError(f"an aggregate version item cannot be read: {exc}") from None
    document["input_ids"] = [packed[i : i + 16].hex() for i in range(0, len(packed), 16)]
    return Version.from_document(document)
