"""Replay plans, runs and audit records: what a replay sends, decided before anything is sent.

A *selection* names a slice (entities, an event-time window, filters) and a target. A *plan*
is the dry-run of a selection: the exact set of events it covers, summed up (counts, bytes,
span, breakdown, sample), with a digest of that set. The plan id hashes the selection, the
digest and the moment of planning, so a plan cannot be forged from its summary and every
preview is a plan of its own.

A plan is confirmed at most once; confirming it starts a *run* with its own replay id. The
run sends the planned events in event-time order, each message numbered (``seq``) so a
consumer can drop a message it has seen: after a crash the run resumes from its ledger and
may send the last messages again, never fewer.

Pure: no I/O, no clock. The service passes times and identities in.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pik.domain.instants import US_PER_HOUR, format_instant, parse_instant
from pik.domain.records import EventRecord

REPLAY_ID = re.compile(r"[0-9a-f]{32}")
"""The form of every replay id (random hex, made by ``new_replay_id``) and plan id."""

MAX_ENTITIES = 1_000
"""Entities one selection may name."""
MAX_FILTER_VALUES = 100
"""Sources, or event types, one selection may name."""
MAX_TARGET_CHARS = 1_024
MAX_PLAN_EVENTS = 500_000
"""Events one plan may cover; a larger slice is replayed as several plans."""
PLAN_TTL_US = US_PER_HOUR
"""A plan not confirmed within this long expires and must be previewed again."""
SAMPLE_SIZE = 5
DEFAULT_RATE = 1_000
"""Events per second a run sends unless told otherwise."""
MIN_RATE = 1
MAX_RATE = 10_000

RUNNING = "running"
COMPLETED = "completed"
CANCELLED = "cancelled"
FAILED = "failed"
RUN_STATUSES = (RUNNING, COMPLETED, CANCELLED, FAILED)

# Audit actions. Every refusal is audited too, with its code.
PLANNED = "planned"
CONFIRMED = "confirmed"
REFUSED = "refused"
RESUMED = "resumed"
CANCEL_REQUESTED = "cancel_requested"
RESUME_REQUESTED = "resume_requested"


class ReplayError(Exception):
    """A replay request refused, with a stable code, the HTTP status it maps to and, for
    bad input, the field at fault. Nothing was sent."""

    def __init__(self, code: str, message: str, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.field = field


def invalid(field_name: str, message: str) -> ReplayError:
    return ReplayError("invalid_selection", message, 422, field_name)


def is_id(identifier: object) -> bool:
    """Whether a caller's plan or replay id has the form every id this kit makes has (32 hex
    digits). Only such an id is repeated in an answer or an audit record: what arrives
    there in its place (a token pasted by mistake) is named, never repeated."""
    return isinstance(identifier, str) and REPLAY_ID.fullmatch(identifier) is not None


def _named(kind: str, identifier: str) -> str:
    if is_id(identifier):
        return f"{kind} {identifier}"
    return f"{kind} by that id (ids are 32 hex digits)"


def plan_not_found(plan_id: str) -> ReplayError:
    return ReplayError(
        "plan_not_found",
        f"no {_named('plan', plan_id)}; preview the replay first (`pik replay plan`)",
        404,
        "plan_id",
    )


def replay_ended(replay_id: str, status: str) -> ReplayError:
    return ReplayError(
        "replay_ended",
        f"replay {replay_id} has {status}; plan and confirm a new one to send again",
        409,
        "replay_id",
    )


def replay_not_found(replay_id: str) -> ReplayError:
    return ReplayError(
        "replay_not_found",
        f"no {_named('replay', replay_id)}; `pik replay status` lists the recent ones",
        404,
        "replay_id",
    )


def plan_already_confirmed(plan_id: str) -> ReplayError:
    return ReplayError(
        "plan_already_confirmed",
        f"plan {plan_id} was confirmed already (a plan runs once); see `pik replay status`, "
        "or preview the replay again for a new plan",
        409,
        "plan_id",
    )


def _check_name(field_name: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(field_name, f"{field_name} must be a non-empty string")
    if len(value) > limit:
        raise invalid(field_name, f"{field_name} is longer than {limit} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
        raise invalid(field_name, f"{field_name} holds a control or format character")
    return value


def _names(field_name: str, values: Iterable[str], most: int, limit: int) -> tuple[str, ...]:
    # A lone string is iterable too: taken as a list it would select one-letter names.
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise invalid(field_name, f"{field_name} must be a list of strings")
    names = tuple(sorted({_check_name(field_name, v, limit) for v in values}))
    if len(names) > most:
        raise invalid(field_name, f"at most {most} values of {field_name}, got {len(names)}")
    return names


@dataclass(frozen=True, slots=True)
class Selection:
    """The slice a replay covers: events of these entities with event time in
    ``[start, end)``, of these sources and event types (all, when empty), sent to
    ``target``."""

    entity_ids: tuple[str, ...]
    start_us: int
    end_us: int
    sources: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    target: str = ""

    @classmethod
    def build(
        cls,
        entity_ids: Iterable[str],
        start_us: int,
        end_us: int,
        target: str,
        sources: Iterable[str] = (),
        event_types: Iterable[str] = (),
    ) -> Selection:
        """A selection in canonical form (names sorted, repeats dropped), or a
        :class:`ReplayError` naming the field at fault."""
        entities = _names("entity_ids", entity_ids, MAX_ENTITIES, 256)
        if not entities:
            raise invalid("entity_ids", "name at least one entity to replay")
        if not isinstance(start_us, int) or not isinstance(end_us, int):
            raise invalid("start", "start and end must be instants")
        if start_us >= end_us:
            raise invalid("end", "end must be after start (windows are [start, end))")
        return cls(
            entities,
            start_us,
            end_us,
            _names("sources", sources, MAX_FILTER_VALUES, 128),
            _names("event_types", event_types, MAX_FILTER_VALUES, 128),
            _check_name("target", target, MAX_TARGET_CHARS),
        )

    def admits(self, record: EventRecord) -> bool:
        """Whether a stored event of one of the selected entities is in the slice."""
        return (
            self.start_us <= record.event_time_us < self.end_us
            and (not self.sources or record.source in self.sources)
            and (not self.event_types or record.event_type in self.event_types)
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "entity_ids": list(self.entity_ids),
            "start": format_instant(self.start_us),
            "end": format_instant(self.end_us),
            "sources": list(self.sources),
            "event_types": list(self.event_types),
            "target": self.target,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Selection:
        return cls.build(
            document["entity_ids"],
            parse_instant(document["start"]),
            parse_instant(document["end"]),
            document["target"],
            document.get("sources", ()),
            document.get("event_types", ()),
        )


def replay_order(records: Iterable[EventRecord]) -> list[EventRecord]:
    """The order a replay sends events in: event time, then event id (a total order)."""
    return sorted(records, key=lambda r: (r.event_time_us, r.event_id))


def set_digest(records: Sequence[EventRecord]) -> str:
    """The digest of an ordered event set: equal exactly when the same events (by id and
    content hash) stand in the same order."""
    digest = hashlib.sha256(b"pik-replay-set-1")
    for record in records:
        digest.update(len(record.event_id).to_bytes(1, "big"))
        digest.update(record.event_id)
        digest.update(record.sha256)
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def plan_id_for(selection: Selection, digest: str, created_us: int) -> str:
    body = _canonical(["pik-plan-1", selection.to_document(), digest, created_us])
    return hashlib.sha256(body).hexdigest()[:32]


def _breakdown(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items()))


@dataclass(frozen=True, slots=True)
class Plan:
    """The dry-run of a selection: the exact event set a run of it will send."""

    plan_id: str
    selection: Selection
    digest: str
    events: int
    bytes: int
    first_event_us: int | None
    last_event_us: int | None
    as_of_us: int
    """The newest ingest time in the set. A resumed run re-reads the set as of then, so
    events that arrive during a run are not mistaken for a changed plan."""
    by_entity: tuple[tuple[str, int], ...]
    by_source: tuple[tuple[str, int], ...]
    by_event_type: tuple[tuple[str, int], ...]
    sample: tuple[str, ...]
    """Event ids (hex) spread evenly over the set, first and last included."""
    created_us: int
    expires_us: int
    created_by: str

    def expired(self, now_us: int) -> bool:
        return now_us >= self.expires_us

    def to_document(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "selection": self.selection.to_document(),
            "digest": self.digest,
            "events": self.events,
            "bytes": self.bytes,
            "first_event_time": _instant(self.first_event_us),
            "last_event_time": _instant(self.last_event_us),
            "as_of": format_instant(self.as_of_us),
            "by_entity": dict(self.by_entity),
            "by_source": dict(self.by_source),
            "by_event_type": dict(self.by_event_type),
            "sample": list(self.sample),
            "created": format_instant(self.created_us),
            "expires": format_instant(self.expires_us),
            "created_by": self.created_by,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Plan:
        return cls(
            plan_id=document["plan_id"],
            selection=Selection.from_document(document["selection"]),
            digest=document["digest"],
            events=int(document["events"]),
            bytes=int(document["bytes"]),
            first_event_us=_us(document["first_event_time"]),
            last_event_us=_us(document["last_event_time"]),
            as_of_us=parse_instant(document["as_of"]),
            by_entity=tuple(sorted(document["by_entity"].items())),
            by_source=tuple(sorted(document["by_source"].items())),
            by_event_type=tuple(sorted(document["by_event_type"].items())),
            sample=tuple(document["sample"]),
            created_us=parse_instant(document["created"]),
            expires_us=parse_instant(document["expires"]),
            created_by=document["created_by"],
        )


def _instant(us: int | None) -> str | None:
    return None if us is None else format_instant(us)


def _us(text: str | None) -> int | None:
    return None if text is None else parse_instant(text)


def make_plan(
    selection: Selection, ordered: Sequence[EventRecord], created_us: int, created_by: str
) -> Plan:
    """The plan of ``selection`` over its events, already in :func:`replay_order`."""
    digest = set_digest(ordered)
    step = max(1, (len(ordered) - 1) // max(1, SAMPLE_SIZE - 1))
    sample = [r.event_id.hex() for r in ordered[::step][: SAMPLE_SIZE - 1]]
    if ordered and ordered[-1].event_id.hex() not in sample:
        sample.append(ordered[-1].event_id.hex())
    return Plan(
        plan_id=plan_id_for(selection, digest, created_us),
        selection=selection,
        digest=digest,
        events=len(ordered),
        bytes=sum(r.length for r in ordered),
        first_event_us=ordered[0].event_time_us if ordered else None,
        last_event_us=ordered[-1].event_time_us if ordered else None,
        as_of_us=max((r.ingest_time_us for r in ordered), default=0),
        by_entity=_breakdown(Counter(r.entity_id for r in ordered)),
        by_source=_breakdown(Counter(r.source for r in ordered)),
        by_event_type=_breakdown(Counter(r.event_type for r in ordered)),
        sample=tuple(sample),
        created_us=created_us,
        expires_us=created_us + PLAN_TTL_US,
        created_by=created_by,
    )


def check_rate(rate: object) -> int:
    """Events per second for a run, or a 422 naming ``rate``."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise ReplayError(
            "invalid_limit",
            f"rate must be a whole number of events per second from {MIN_RATE} to {MAX_RATE}",
            422,
            "rate",
        )
    return rate


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """One confirmed plan being sent (or sent): the ledger's record of it."""

    replay_id: str
    plan_id: str
    target: str
    status: str
    total: int
    sent: int
    """Messages sent and recorded; a resumed run starts at this sequence number."""
    rate: int
    confirmed_by: str
    started_us: int
    updated_us: int
    cancel_requested: bool = False
    detail: str = ""

    def to_document(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "plan_id": self.plan_id,
            "target": self.target,
            "status": self.status,
            "total": self.total,
            "sent": self.sent,
            "rate": self.rate,
            "confirmed_by": self.confirmed_by,
            "started": format_instant(self.started_us),
            "updated": format_instant(self.updated_us),
            "cancel_requested": self.cancel_requested,
            "detail": self.detail,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ReplayRun:
        return cls(
            replay_id=document["replay_id"],
            plan_id=document["plan_id"],
            target=document["target"],
            status=document["status"],
            total=int(document["total"]),
            sent=int(document["sent"]),
            rate=int(document["rate"]),
            confirmed_by=document["confirmed_by"],
            started_us=parse_instant(document["started"]),
            updated_us=parse_instant(document["updated"]),
            cancel_requested=bool(document.get("cancel_requested", False)),
            detail=document.get("detail", ""),
        )

    def advanced(self, sent: int, now_us: int) -> ReplayRun:
        return replace(self, sent=sent, updated_us=now_us)

    def ended(self, status: str, now_us: int, detail: str = "") -> ReplayRun:
        return replace(self, status=status, updated_us=now_us, detail=detail)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who did what to which plan or run, when, and how it ended. Written before the
    first message of a run is sent, and for every refusal."""

    at_us: int
    who: str
    action: str
    plan_id: str | None
    replay_id: str | None = None
    outcome: str = "ok"
    """``ok``, or the code of the refusal or failure."""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        return {
            "at": format_instant(self.at_us),
            "who": self.who,
            "action": self.action,
            "plan_id": self.plan_id,
            "replay_id": self.replay_id,
            "outcome": self.outcome,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> AuditRecord:
        return cls(
            at_us=parse_instant(document["at"]),
            who=document["who"],
            action=document["action"],
            plan_id=document.get("plan_id"),
            replay_id=document.get("replay_id"),
            outcome=document.get("outcome", "ok"),
            detail=dict(document.get("detail", {})),
        )


def replay_message(run: ReplayRun, seq: int, record: EventRecord, raw: bytes) -> bytes:
    """One message of a run: the raw event as stored, with what a consumer needs to
    recognise a replay and drop a message it has already seen (``replay_id``, ``seq``)."""
    return _canonical(
        {
            "replay_id": run.replay_id,
            "plan_id": run.plan_id,
            "seq": seq,
            "total": run.total,
            "event_id": record.event_id.hex(),
            "entity_id": record.entity_id,
            "source": record.source,
            "event_type": record.event_type,
            "event_time": format_instant(record.event_time_us),
            "ingest_time": format_instant(record.ingest_time_us),
            "sha256": record.sha256.hex(),
            "raw": raw.decode("utf-8"),
        }
    )
