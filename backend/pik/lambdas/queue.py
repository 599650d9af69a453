"""The SQS ingest consumer: events delivered through a queue, stored exactly once.

A record's body is one event envelope (formatted any way) or NDJSON, one envelope a line.

One commit per invocation. The cost model rests on batching (one raw object and one index
write per batch), so every event of every record of an invocation goes to the store in
a single ``commit`` (split only past the store's batch limit, at record boundaries where
possible). The Batch utility's per-record handler would commit record by record; instead
the whole invocation is ingested first, and the Batch utility then walks the records only
to report each one's fate in the ``batchItemFailures`` shape it produces
(ReportBatchItemFailures must be enabled on the event source mapping):

* a bad envelope, a body that is not UTF-8 or not JSON, an empty body: a *rejection*,
  recorded and counted by the store like any other, and the record is done — a retry
  could not fix it;
* the store unavailable or full while committing: nothing of that commit was acknowledged,
  so every record with events in it is a batch item failure and SQS delivers it again
  (after the queue's visibility timeout; after ``maxReceiveCount`` tries, to its
  dead-letter queue). Rejections are part of the commit, so a record of nothing but bad
  envelopes goes back too, and is counted once the store takes it. Redelivery is safe:
  event ids are derived from the envelope, so events stored before the failure come back
  DUPLICATE;
* any other error is a bug: the invocation fails (with a message that quotes nothing of the
  input), and SQS delivers the whole batch again.

Even when every record fails the response lists them all rather than raising, so the
metrics and the log line of the invocation are still written. The price: Lambda slows an
event source mapping down after failed invocations, not after partial responses, so during
an outage the queue's visibility timeout alone paces the retries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pik.lambdas.observability import IngestSummary, log_failure, record_ingest
from pik.lambdas.sqs import Handler, batch_handler
from pik.lambdas.store import Lazy, store_from_env
from pik.ports import EventStore
from pik.services.ingest import ingest_batch
from pik.storage_errors import StoreFullError, StoreUnavailableError

ORIGIN = "sqs"
RETRYABLE = (StoreUnavailableError, StoreFullError)


def record_items(body: object) -> list[bytes]:
    """The events of one record body: one item, or one per NDJSON line.

    A body whose first line is not a complete JSON object (``{`` … ``}``) is one event
    spread over several lines (pretty-printed), not NDJSON. Text that cannot be UTF-8 (lone
    surrogates) is kept as the invalid bytes it is, so validation rejects it with its code.
    """
    text = body if isinstance(body, str) else ""
    raw = text.encode("utf-8", "surrogatepass").strip()
    lines = [line.strip() for line in raw.split(b"\n")]
    lines = [line for line in lines if line]
    if len(lines) > 1 and lines[0].startswith(b"{") and lines[0].endswith(b"}"):
        return lines
    return [raw]  # possibly empty: validation rejects it as such


@dataclass(slots=True)
class _Chunk:
    items: list[bytes] = field(default_factory=list)
    owners: set[str] = field(default_factory=set)
    """Message ids of the records with events in this chunk."""


def _chunks(records: Sequence[dict[str, Any]], limit: int) -> list[_Chunk]:
    """The records' events in as few store batches as the batch limit allows.

    A record larger than the limit is split over several batches; any other record stays
    within one, so a failed commit sends back as few records as possible.
    """
    chunks = [_Chunk()]
    for record in records:
        message_id = str(record.get("messageId"))
        items = record_items(record.get("body"))
        if chunks[-1].items and len(chunks[-1].items) + len(items) > limit:
            chunks.append(_Chunk())
        for start in range(0, len(items), limit):
            if len(chunks[-1].items) >= limit:
                chunks.append(_Chunk())
            chunks[-1].items.extend(items[start : start + limit])
            chunks[-1].owners.add(message_id)
    return [chunk for chunk in chunks if chunk.items]


def _ingest(
    store_of: Lazy[EventStore], records: Sequence[dict[str, Any]]
) -> tuple[set[str], IngestSummary]:
    """Commit the records' events; the message ids to retry, and what was stored."""
    try:
        store = store_of.get()
    except RETRYABLE as exc:
        log_failure("store unavailable; records go back to the queue", exc)
        return {str(r.get("messageId")) for r in records}, IngestSummary(0)
    retry: set[str] = set()
    summary = IngestSummary(store.limits.late_after_us)
    for chunk in _chunks(records, store.limits.max_batch_events):
        if retry:  # the store just failed: do not hammer it, send the rest back too
            retry |= chunk.owners
            continue
        try:
            summary.add(ingest_batch(store, chunk.items, ORIGIN))
        except RETRYABLE as exc:
            log_failure("store unavailable; records go back to the queue", exc)
            retry |= chunk.owners
    return retry, summary


def make_handler(store_factory: Callable[[], EventStore]) -> Handler:
    """An SQS event source handler ingesting into the store ``store_factory`` makes.

    The factory runs on the first invocation; its store is reused by later ones.
    """
    store_of = Lazy(store_factory)

    def work(records: list[dict[str, Any]]) -> tuple[set[str], dict[str, Any]]:
        retry, summary = _ingest(store_of, records)
        record_ingest(summary)
        return retry, {"origin": ORIGIN, **summary.log_fields()}

    return batch_handler("ingest", work)


handler = make_handler(store_from_env)
