"""AWS clients, created on first use, and what their failures mean to a caller.

Clients are made lazily: importing the engine, or a Lambda cold start that never touches
S3, costs nothing, and tests can enter moto before the first client exists.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pik.storage_errors import StoreUnavailableError

RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "TransactionInProgressException",
        "TransactionConflictException",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestThrottled",  # SQS
        "KmsThrottled",  # SQS, on an encrypted queue (moto's name)
        "KMS.ThrottlingException",  # the same, as SQS's JSON protocol reports it
        "ConditionalRequestConflict",  # S3: another conditional write to the key in flight
        "500",
        "502",  # a gateway on the way failed; the service may not have seen the call
        "503",
        "504",
    }
)
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
"""botocore waits 60 s for each by default, three tries over: a stalled connection would
outlast an API function's 30 s (API Gateway's bare 504 instead of our 503) and the replay
function's minute of headroom before its deadline. No call here long-polls."""
ATTEMPTS = 3
MISSING = frozenset({"NoSuchKey", "404"})
# Why a transaction was cancelled, when trying again later can succeed: another
# transaction held an item, or the table (provisioned capacity) or a partition was over
# its throughput. A refused condition is an answer, not one of these.
RETRYABLE_CANCELLATIONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


class Clients:
    """One boto3 session's clients, made on first use (thread-safe once made)."""

    def __init__(
        self, region: str | None = None, session: Any = None, endpoint_url: str | None = None
    ) -> None:
        self._region = region
        self._session = session
        self._endpoint_url = endpoint_url
        self._made: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self._region)
        client = self._made.get(key)
        if client is not None:
            return client
        with self._lock:
            if key not in self._made:
                import boto3
                from botocore.config import Config

                session = self._session or boto3.session.Session()
                self._made[key] = session.client(
                    service,
                    region_name=key[1],
                    endpoint_url=self._endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": ATTEMPTS},
                        max_pool_connections=32,
                        connect_timeout=CONNECT_TIMEOUT_S,
                        read_timeout=READ_TIMEOUT_S,
                    ),
                )
            return self._made[key]

    @property
    def s3(self) -> Any:
        return self._client("s3")

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def sts(self) -> Any:
        return self._client("sts")

    def sqs_in(self, region: str | None) -> Any:
        """An SQS client for a queue of another region (a replay target's ARN names it)."""
        return self._client("sqs", region)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _server_failed(exc: BaseException) -> bool:
    """Whether AWS answered with a 5xx: its failure, whatever the code names it (services
    name theirs differently: InternalFailure, ServiceUnavailableException, …)."""
    response = getattr(exc, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if response else None
    return isinstance(status, int) and status >= 500


@contextmanager
def unavailable_on_failure(what: str, *, ingest: bool = False) -> Iterator[None]:
    """Turn throttling, 5xx and network failures (after the SDK's retries) into 503s.

    A missing S3 object becomes ``FileNotFoundError``. Configuration errors (no
    credentials, no region) pass through: retrying cannot fix
    them, and the caller names what to configure. ``ingest``: the failing call is part of
    taking events, and the message tells the producer nothing of its request was kept.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        FlexibleChecksumError,
        HTTPClientError,
        IncompleteReadError,
    )

    outcome = "nothing was acknowledged, retry the request" if ingest else "retry in a moment"
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in MISSING:
            # As the local engine's missing segment: callers handle one kind of absence.
            raise FileNotFoundError(f"{what}: the object is missing ({code})") from exc
        if code in RETRYABLE or _server_failed(exc):
            raise StoreUnavailableError(
                f"{what}: AWS is throttling or failing ({code}); {outcome}"
            ) from exc
        raise
    except (ConnectionError, HTTPClientError, IncompleteReadError, FlexibleChecksumError) as exc:
        # A body cut short or garbled on the way is a network failure too: the next read
        # or write can succeed.
        raise StoreUnavailableError(
            f"{what}: AWS could not be reached or its answer was cut short "
            f"({type(exc).__name__}); {outcome}"
        ) from exc
