"""Explicit limits on what the kit accepts. Every one is documented in docs/event-model.md."""

from __future__ import annotations

from dataclasses import dataclass

from pik.domain.instants import US_PER_DAY, US_PER_MINUTE


class BatchTooLargeError(ValueError):
    """More events in one batch than the store takes at once; nothing was stored."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = 256 * 1024
    """One event's encoded JSON, decided before it is parsed."""
    max_batch_events: int = 10_000
    """Events in one ingest request; larger inputs are split by the client."""
    max_depth: int = 64
    """Nesting of arrays and objects, counting the envelope itself."""
    max_source_chars: int = 128
    max_event_type_chars: int = 128
    max_entity_id_chars: int = 256
    max_idempotency_key_chars: int = 256
    earliest_event_time_us: int = 0
    """1970-01-01T00:00:00Z: nothing before the epoch is plausible pipeline data."""
    max_future_us: int = US_PER_DAY
    """How far past the engine's clock an event time may lie (clock skew, time zones)."""
    late_after_us: int = 5 * US_PER_MINUTE
    """An event is *late* when it arrives more than this after its event time."""

    def check_batch(self, events: int) -> None:
        """Refuse a batch over :attr:`max_batch_events` (every engine, before any write)."""
        if events > self.max_batch_events:
            raise BatchTooLargeError(
                f"a batch holds at most {self.max_batch_events} events, got {events}; split it"
            )


DEFAULT_LIMITS = Limits()
