"""A deterministic demo data set: an incident worth investigating, built in seconds.

Three sources feed orders, payments and shipments for 60 customers over the last three
days. Planted in it: late arrivals, retried (duplicate) deliveries, a producer that sent
malformed lines, an idempotency key reused with other content, and a customer whose
events stop for six hours (a gap).
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path

from pik.domain.instants import US_PER_HOUR, US_PER_MINUTE, floor_to, format_instant, now_us
from pik.engines.local import LocalEngine
from pik.engines.local.index import IndexCorruptError
from pik.engines.local.layout import Layout, StoreError
from pik.paths import demo_store
from pik.services.ingest import ingest_batch, ingest_ndjson

SOURCES = {
    "checkout": ("order.created", "order.updated", "cart.abandoned"),
    "payments": ("payment.authorized", "payment.captured", "payment.refunded"),
    "warehouse": ("shipment.packed", "shipment.sent"),
}
CUSTOMERS = 60
HOURS = 72
GAP_ENTITY = "customer-0007"
GAP_HOURS = range(30, 36)


def _envelope(
    source: str,
    event_type: str,
    entity: str,
    at_us: int,
    payload: dict[str, object],
    key: str | None = None,
) -> bytes:
    document: dict[str, object] = {
        "source": source,
        "event_type": event_type,
        "entity_id": entity,
        "event_time": format_instant(at_us),
        "payload": payload,
    }
    if key:
        document["idempotency_key"] = key
    return json.dumps(document, separators=(",", ":")).encode()


def demo_lines(seed: int = 7, end_us: int | None = None) -> Iterator[bytes]:
    """NDJSON lines of the demo, in the order a producer would have sent them."""
    rng = random.Random(seed)
    # Whole hours: demo hours then match clock hours, and the planted gap is the only one.
    end = floor_to(end_us if end_us is not None else now_us(), US_PER_HOUR)
    start = end - HOURS * US_PER_HOUR
    sent: list[bytes] = []
    for hour in range(HOURS):
        for customer in range(1, CUSTOMERS + 1):
            entity = f"customer-{customer:04d}"
            if entity == GAP_ENTITY and hour in GAP_HOURS:
                continue
            for _ in range(rng.randint(1, 3)):
                source = rng.choice(list(SOURCES))
                at = start + hour * US_PER_HOUR + rng.randrange(US_PER_HOUR)
                payload = {
                    "amount_cents": rng.randint(100, 90_000),
                    "currency": "EUR",
                    "region": rng.choice(["eu-west", "eu-central", "us-east"]),
                }
                line = _envelope(source, rng.choice(SOURCES[source]), entity, at, payload)
                sent.append(line)
                yield line
                if rng.random() < 0.03:  # an at-least-once producer retrying
                    yield line
        if hour % 12 == 5:
            yield b'{"source": "checkout", "event_type": "order.created", "entity_id": '
            yield b'{"source": "payments", "event_type": "payment.captured"}'
            yield (
                b'{"source":"warehouse","event_type":"shipment.sent","entity_id":"../etc",'
                b'"event_time":"2026-01-01T00:00:00Z","payload":{}}'
            )
    # A payment provider replays yesterday's batch: late duplicates.
    yield from sent[len(sent) // 3 : len(sent) // 3 + 40]
    # Late stragglers: events that happened hours ago and arrive only now.
    for customer in range(1, 11):
        at = end - rng.randint(3, 20) * US_PER_HOUR
        yield _envelope(
            "payments",
            "payment.captured",
            f"customer-{customer:04d}",
            at,
            {"amount_cents": 1_000 * customer, "currency": "EUR", "late": True},
        )
    # An idempotency key reused with different content: a conflict to explain.
    at = end - 2 * US_PER_HOUR
    yield _envelope(
        "checkout",
        "order.created",
        "customer-0042",
        at,
        {"amount_cents": 4_200, "currency": "EUR"},
        key="order-42",
    )
    yield _envelope(
        "checkout",
        "order.created",
        "customer-0042",
        at,
        {"amount_cents": 4_999, "currency": "EUR"},
        key="order-42",
    )


class NotADemoStoreError(StoreError):
    """A store of real data is where the demo was asked for; it is left untouched."""


def is_demo_store(path: Path) -> bool:
    """Whether the store at ``path`` holds generated demo data only: it carries the demo's
    mark, or it is the default demo store (made before stores were marked)."""
    return Layout(path).demo_marker.exists() or path.resolve() == demo_store().resolve()


def build_demo(path: Path, reset: bool = False) -> bool:
    """Create the demo store at ``path`` unless a usable one exists; returns whether it was built.

    A demo store this version cannot read (an older index schema) is rebuilt: it holds only
    generated data. A store that is not a demo store is never written to nor replaced.
    """
    layout = Layout(path)
    if layout.meta.exists() and not is_demo_store(path):
        raise NotADemoStoreError(
            f"{path} holds a store that is not the demo; the demo never writes to or replaces"
            " one. Choose another path for the demo (if this store's index is damaged,"
            f" `pik --store {path} reindex` rebuilds it from its raw segments)"
        )
    if layout.meta.exists() and not reset:
        try:
            LocalEngine(path, create=False, read_only=True).close()
        except IndexCorruptError:
            reset = True
    if reset and layout.meta.exists():
        with layout.removal():
            _remove_store(layout)
    if layout.meta.exists():
        return False
    engine = LocalEngine(path, create=True)
    try:
        layout.demo_marker.write_text("generated demo data: `pik demo --reset` may delete it\n")
        stream = io.BytesIO(b"\n".join(demo_lines()) + b"\n")
        ingest_ndjson(engine, stream, origin="demo")
    finally:
        engine.close()
    return True


def _remove_store(layout: Layout) -> None:
    # Only the demo store is ever removed, and only files this engine names itself.
    for segment_id in layout.segment_ids():
        layout.segment(segment_id).unlink()
    databases = (layout.index, layout.ledger, layout.versions)
    for database in databases:
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)
    locks = layout.replay_locks
    if locks.is_dir():
        for lock in locks.glob("*.lock"):
            lock.unlink()
        locks.rmdir()
    layout.lock.unlink(missing_ok=True)
    layout.meta.unlink(missing_ok=True)
    layout.demo_marker.unlink(missing_ok=True)
    layout.segments.rmdir()
    layout.root.rmdir()


def live_lines(rng: random.Random, now: int, count: int, sent: list[bytes]) -> list[bytes]:
    """What a live producer sends now: mostly fresh events, some late, a retry, a bad line."""
    lines: list[bytes] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05 and sent:
            lines.append(rng.choice(sent))  # an at-least-once retry
            continue
        if roll < 0.08:
            lines.append(b'{"source": "checkout", "event_type": "order.created"')  # cut off
            continue
        late = roll < 0.18
        lag = rng.randint(6 * US_PER_MINUTE, 3 * US_PER_HOUR) if late else rng.randint(0, 2_000_000)
        source = rng.choice(list(SOURCES))
        line = _envelope(
            source,
            rng.choice(SOURCES[source]),
            f"customer-{rng.randint(1, CUSTOMERS):04d}",
            now - lag,
            {"amount_cents": rng.randint(100, 90_000), "currency": "EUR", "live": True},
        )
        sent.append(line)
        del sent[:-200]
        lines.append(line)
    return lines


class LiveFeed:
    """Feeds a demo store a trickle of new events from a background thread, until stopped.

    It keeps the demo's live panes (rates, the newest timeline page) moving; it is only ever
    started on the demo store.
    """

    def __init__(self, path: Path, interval_s: float = 1.0, seed: int | None = None) -> None:
        self.path = path
        self.interval_s = interval_s
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pik-demo-feed", daemon=True)
        self.batches = 0

    def start(self) -> LiveFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        sent: list[bytes] = []
        try:
            engine = LocalEngine(self.path, create=False)
        except Exception:  # the demo still opens; it just stays still
            return
        try:
            while not self._stop.wait(self.interval_s):
                lines = live_lines(self._rng, now_us(), self._rng.randint(1, 8), sent)
                ingest_batch(engine, lines, "demo-live")
                self.batches += 1
        except Exception:
            return  # never disturb the screen from a background thread
        finally:
            engine.close()
