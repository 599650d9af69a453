"""Aggregate versions: what the processor computed for one entity and window, kept forever.

An *aggregate* sums up the events of one entity in one window (an hour or a day): how many,
of which types and sources, how many arrived late, their span, and optionally the sum of a
number read from each payload (a JSON pointer such as ``/amount``). Each computation whose
inputs differ from the last one becomes a new *version*, numbered from 1; a version is never
changed. It records the exact input set (ids in order, and their digest), the replay that
caused it and when it was computed, so the *diff* of two versions lists the events that
came and went, with their lateness: that is how a changed number is explained.

Pure: the processor service reads events and payloads and passes them in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

from pik.domain.instants import format_instant, parse_instant
from pik.domain.records import EventRecord
from pik.domain.replay import set_digest
from pik.domain.tally import GRANULARITIES

MAX_POINTER_CHARS = 256
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
"""An array index in a JSON pointer (RFC 6901): ASCII digits, no leading zero."""


class SpecError(ValueError):
    """An aggregate specification that cannot be used; names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    """What the processor computes: the window size, and the payload number it sums."""

    granularity: str = "day"
    sum_pointer: str | None = None
    """A JSON pointer (RFC 6901) into each payload; ``None`` sums nothing."""

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise SpecError("granularity", f"granularity is one of {', '.join(GRANULARITIES)}")
        pointer = self.sum_pointer
        if pointer is not None and (
            not pointer.startswith("/") or len(pointer) > MAX_POINTER_CHARS
        ):
            raise SpecError(
                "sum",
                f"the sum field is a JSON pointer such as /amount (at most "
                f"{MAX_POINTER_CHARS} characters)",
            )

    @property
    def step_us(self) -> int:
        return GRANULARITIES[self.granularity]

    @property
    def spec_id(self) -> str:
        """Versions of different specs never mix: each spec has its own numbering."""
        body = json.dumps(["pik-aggregate-1", self.granularity, self.sum_pointer])
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def window_of(self, event_time_us: int) -> int:
        return event_time_us - event_time_us % self.step_us


def pointer_value(payload: Any, pointer: str) -> Any:
    """The value a JSON pointer names in ``payload``, or ``None`` when it names nothing."""
    value = payload
    for token in pointer.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if key not in value:
                return None
            value = value[key]
        elif isinstance(value, list) and _ARRAY_INDEX.fullmatch(key):
            index = int(key)
            if index >= len(value):
                return None
            value = value[index]
        else:
            return None
    return value


@dataclass(frozen=True, slots=True)
class Aggregate:
    count: int
    late: int
    by_event_type: tuple[tuple[str, int], ...]
    by_source: tuple[tuple[str, int], ...]
    first_event_us: int | None
    last_event_us: int | None
    total: Decimal | None
    """The sum of the spec's payload number; ``None`` when the spec sums nothing."""
    unsummed: int
    """Events whose payload holds no number at the spec's pointer."""

    def to_document(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "late": self.late,
            "by_event_type": dict(self.by_event_type),
            "by_source": dict(self.by_source),
            "first_event_time": _instant(self.first_event_us),
            "last_event_time": _instant(self.last_event_us),
            "total": None if self.total is None else format(self.total, "f"),
            "unsummed": self.unsummed,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Aggregate:
        total = document["total"]
        return cls(
            count=int(document["count"]),
            late=int(document["late"]),
            by_event_type=tuple(sorted(document["by_event_type"].items())),
            by_source=tuple(sorted(document["by_source"].items())),
            first_event_us=_us(document["first_event_time"]),
            last_event_us=_us(document["last_event_time"]),
            total=None if total is None else Decimal(total),
            unsummed=int(document["unsummed"]),
        )


SUM_DIGITS = 1000
"""A number is summed when it has at most this many digits before and after the point."""


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):  # as payloads are read: every digit written is kept
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):  # through str: the decimal it was written as
        number = Decimal(str(value))
    else:
        return None
    exponent = number.as_tuple().exponent
    if not isinstance(exponent, int) or number.adjusted() >= SUM_DIGITS:
        return None  # NaN and the infinities have no integer exponent
    return None if exponent < -SUM_DIGITS else number


def payload_number(text: str) -> Decimal | None:
    """A JSON number of a payload as a decimal, every digit kept; ``None`` (not summed) when
    its exponent is beyond what a decimal holds (the store accepted it as a float's 0)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _exact_sum(numbers: Sequence[Decimal]) -> Decimal:
    # Every addend has under SUM_DIGITS digits either side of the point, so this precision
    # holds any sum of them exactly; the trap makes that a checked fact, not a hope.
    with localcontext(prec=2 * SUM_DIGITS + 24) as context:
        context.traps[Inexact] = True
        return sum(numbers, Decimal(0))


def compute(
    spec: AggregateSpec,
    ordered: Sequence[EventRecord],
    payloads: Sequence[Any],
    late_after_us: int,
) -> Aggregate:
    """The aggregate of one window's events (in replay order) and their payloads."""
    total: Decimal | None = None
    unsummed = 0
    if spec.sum_pointer is not None:
        numbers = []
        for payload in payloads:
            number = _number(pointer_value(payload, spec.sum_pointer))
            if number is None:
                unsummed += 1
            else:
                numbers.append(number)
        total = _exact_sum(numbers)
    return Aggregate(
        count=len(ordered),
        late=sum(1 for r in ordered if r.ingest_time_us - r.event_time_us > late_after_us),
        by_event_type=tuple(sorted(Counter(r.event_type for r in ordered).items())),
        by_source=tuple(sorted(Counter(r.source for r in ordered).items())),
        first_event_us=ordered[0].event_time_us if ordered else None,
        last_event_us=ordered[-1].event_time_us if ordered else None,
        total=total,
        unsummed=unsummed,
    )


@dataclass(frozen=True, slots=True)
class Version:
    """One computation of one entity's window, never changed once written."""

    spec: AggregateSpec
    entity_id: str
    window_start_us: int
    version: int
    inputs_digest: str
    input_ids: tuple[bytes, ...]
    """The events it was computed from, in replay order."""
    aggregate: Aggregate
    replay_id: str | None
    """The replay whose messages caused this computation, if one did."""
    computed_us: int

    def to_document(self) -> dict[str, Any]:
        return {
            "spec_id": self.spec.spec_id,
            "granularity": self.spec.granularity,
            "sum": self.spec.sum_pointer,
            "entity_id": self.entity_id,
            "window_start": format_instant(self.window_start_us),
            "version": self.version,
            "inputs_digest": self.inputs_digest,
            "input_ids": [i.hex() for i in self.input_ids],
            "aggregate": self.aggregate.to_document(),
            "replay_id": self.replay_id,
            "computed": format_instant(self.computed_us),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Version:
        return cls(
            spec=AggregateSpec(document["granularity"], document["sum"]),
            entity_id=document["entity_id"],
            window_start_us=parse_instant(document["window_start"]),
            version=int(document["version"]),
            inputs_digest=document["inputs_digest"],
            input_ids=tuple(bytes.fromhex(i) for i in document["input_ids"]),
            aggregate=Aggregate.from_document(document["aggregate"]),
            replay_id=document["replay_id"],
            computed_us=parse_instant(document["computed"]),
        )


def next_version(
    spec: AggregateSpec,
    entity_id: str,
    window_start_us: int,
    latest: Version | None,
    ordered: Sequence[EventRecord],
    aggregate: Aggregate,
    replay_id: str | None,
    computed_us: int,
) -> Version | None:
    """The version that follows ``latest`` for these inputs, or ``None`` when the inputs
    are the ones ``latest`` was computed from (a redelivered message changes nothing)."""
    digest = set_digest(ordered)
    if latest is not None and latest.inputs_digest == digest:
        return None
    return Version(
        spec,
        entity_id,
        window_start_us,
        1 if latest is None else latest.version + 1,
        digest,
        tuple(r.event_id for r in ordered),
        aggregate,
        replay_id,
        computed_us,
    )


@dataclass(frozen=True, slots=True)
class Change:
    """An event that entered or left a window's inputs between two versions."""

    event_id: bytes
    event_time_us: int | None
    lag_ms: int | None
    """How late the event arrived (ingest time - event time); ``None`` if unknown now."""


@dataclass(frozen=True, slots=True)
class VersionDiff:
    old: Version
    new: Version
    added: tuple[Change, ...]
    removed: tuple[Change, ...]

    def to_document(self) -> dict[str, Any]:
        old, new = self.old.aggregate, self.new.aggregate
        return {
            "entity_id": self.new.entity_id,
            "window_start": format_instant(self.new.window_start_us),
            "from_version": self.old.version,
            "to_version": self.new.version,
            "count_change": new.count - old.count,
            "total_change": None
            if new.total is None or old.total is None
            else format(_exact_sum([new.total, -old.total]), "f"),
            "added": [_change(c) for c in self.added],
            "removed": [_change(c) for c in self.removed],
        }


def _change(change: Change) -> dict[str, Any]:
    return {
        "event_id": change.event_id.hex(),
        "event_time": _instant(change.event_time_us),
        "lag_ms": change.lag_ms,
    }


def diff(old: Version, new: Version, known: Mapping[bytes, EventRecord]) -> VersionDiff:
    """What changed between two versions of one window; ``known`` holds the stored records
    of the events involved (for their times and lateness)."""

    def changes(ids: Iterable[bytes]) -> tuple[Change, ...]:
        found = []
        for event_id in ids:
            record = known.get(event_id)
            found.append(
                Change(
                    event_id,
                    record.event_time_us if record else None,
                    record.lag_ms if record else None,
                )
            )
        return tuple(found)

    before, after = set(old.input_ids), set(new.input_ids)
    return VersionDiff(
        old,
        new,
        changes(i for i in new.input_ids if i not in before),
        changes(i for i in old.input_ids if i not in after),
    )


def _instant(us: int | None) -> str | None:
    return None if us is None else format_instant(us)


def _us(text: str | None) -> int | None:
    return None if text is None else parse_instant(text)


PROCESSOR_TARGET = "processor"


def processor_target(target: str) -> AggregateSpec | None:
    """The spec a replay target ``processor:<hour|day>[:<pointer>]`` names, ``None`` for
    any other target, or a :class:`SpecError` (field ``target``) when it is malformed."""
    kind, _, rest = target.partition(":")
    if kind != PROCESSOR_TARGET:
        return None
    granularity, _, pointer = rest.partition(":")
    try:
        return AggregateSpec(granularity, pointer or None)
    except SpecError as exc:
        raise SpecError(
            "target",
            f"{exc}; a processor target is written processor:day or processor:hour:/amount",
        ) from None
