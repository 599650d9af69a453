"""One canonical form for time.

Every instant is held as an integer count of microseconds since the Unix epoch, UTC,
and shown as fixed-width ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` so that string order is time
order. Decisions (documented in docs/event-model.md):

* An offset (``Z`` or ``±HH:MM``, up to ±14:00) is required; naive times are rejected.
* 1 to 9 fractional digits are accepted; digits past the sixth are truncated, so two
  instants that differ by less than a microsecond share a key.
* A leap second (``:60``) is accepted only as the last second of a UTC day and folded to
  ``23:59:59.999999Z`` of that day: it stays inside its day and before the next one.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_US = (date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * US_PER_DAY
_MAX_US = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * US_PER_DAY - 1
START_OF_TIME_US = _MIN_US
END_OF_TIME_US = _MAX_US
"""9999-12-31T23:59:59.999999Z: the open end of a range that has none."""
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,  # `\d` alone matches any script's digits, and int() reads them
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_RELATIVE = re.compile(r"(?:now)?-(\d+)([smhdw])", re.ASCII)
_UNIT_US = {
    "s": US_PER_SECOND,
    "m": US_PER_MINUTE,
    "h": US_PER_HOUR,
    "d": US_PER_DAY,
    "w": 7 * US_PER_DAY,
}


class TimeFormatError(ValueError):
    """A time string that cannot be read; ``code`` is a stable snake_case reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now_us() -> int:
    """The engine's own clock, in microseconds since the epoch."""
    return time.time_ns() // 1000


# The common form, UTC with ASCII digits, read without the general path's checks: a
# calendar date is looked up once (or refused by the general path), an out-of-range
# clock field or a leap second goes the general way. Same result, about a third the time.
_UTC = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?[Zz]"
)
_DAYS: dict[str, int] = {}


def parse_instant(text: str) -> int:
    """Parse an ISO-8601 time with a ``Z`` or numeric offset into epoch microseconds."""
    match = _UTC.fullmatch(text)
    if match is not None:
        day, hour, minute, second, fraction = match.groups()
        days = _DAYS.get(day)
        if days is None and len(_DAYS) < 100_000:
            try:
                days = _DAYS[day] = (
                    date(int(day[:4]), int(day[5:7]), int(day[8:])).toordinal() - _EPOCH_ORDINAL
                )
            except ValueError:
                days = None
        h, m, s = int(hour), int(minute), int(second)
        if days is not None and h < 24 and m < 60 and s < 60:
            micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
            return (days * 86_400 + h * 3600 + m * 60 + s) * US_PER_SECOND + micros
    return _parse_instant(text)


def _parse_instant(text: str) -> int:
    match = _ISO.fullmatch(text)
    if match is None:
        raise TimeFormatError(
            "invalid_time",
            "expected ISO-8601 like 2026-01-31T12:00:00Z or 2026-01-31T12:00:00.5+05:45",
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        raise TimeFormatError(
            "naive_time", "a time zone is required: end the time with Z or an offset like +02:00"
        )
    offset_minutes = 0
    if sign is not None:
        offset_minutes = int(off_h) * 60 + int(off_m)
        if int(off_m) > 59 or offset_minutes > 14 * 60:
            raise TimeFormatError("invalid_time", "offsets range from -14:00 to +14:00")
        if sign == "-":
            offset_minutes = -offset_minutes
    h, m, s = int(hour), int(minute), int(second)
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError as exc:
        raise TimeFormatError("invalid_time", f"not a calendar date: {exc}") from None
    if h > 23 or m > 59 or s > 60:
        raise TimeFormatError("invalid_time", "not a time of day")
    micros = int((fraction or "").ljust(6, "0")[:6])
    leap = s == 60
    if leap:
        s, micros = 59, 999_999
    seconds = days * 86_400 + h * 3600 + m * 60 + s - offset_minutes * 60
    if leap and seconds % 86_400 != 86_399:
        raise TimeFormatError(
            "invalid_time", "a leap second (:60) is only valid as the last second of a UTC day"
        )
    instant = seconds * US_PER_SECOND + micros
    if not _MIN_US <= instant <= _MAX_US:
        raise TimeFormatError("time_out_of_range", "the time falls outside years 1-9999")
    return instant


def format_instant(us: int) -> str:
    """The canonical fixed-width UTC form of an instant."""
    moment = _EPOCH + timedelta(microseconds=us)
    # %Y does not pad years before 1000 on every platform; the width is the contract.
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


def parse_query_time(text: str, now: int | None = None) -> int:
    """Read a time given on the command line or in a query.

    Accepts everything :func:`parse_instant` does, a bare date (midnight UTC), ``now``,
    and a relative form such as ``-15m``, ``-2h``, ``now-7d`` (units s, m, h, d, w).
    """
    text = text.strip()
    current = now_us() if now is None else now
    if text == "now":
        return current
    relative = _RELATIVE.fullmatch(text)
    if relative:
        digits = relative.group(1)
        at = current - int(digits[:20]) * _UNIT_US[relative.group(2)]
        if len(digits) > 20 or at < _MIN_US:
            raise TimeFormatError("time_out_of_range", f"{text} reaches back before the year 1")
        return at
    if _DATE.fullmatch(text):
        return parse_instant(text + "T00:00:00Z")
    try:
        return parse_instant(text)
    except TimeFormatError as exc:
        if exc.code != "invalid_time":
            raise
        raise TimeFormatError(
            "invalid_time",
            f"{exc}, a date like 2026-01-31, now, or a time back from now like -15m, -2h, "
            "now-7d (units s, m, h, d, w)",
        ) from None


def query_range(
    start_us: int | None,
    end_us: int | None,
    span_us: int | None = None,
    ahead_us: int = 0,
    now: int | None = None,
) -> tuple[int, int]:
    """The ``[start, end)`` a query reads, from the bounds it was given (``None``: not given).

    Without ``span_us``, a missing start is the epoch (no event is older) and a missing end
    the end of time. With it, a missing end is ``ahead_us`` past now (for clocks that run
    ahead) and a missing start reaches ``span_us`` back from the given end, else from now,
    held at the year 1. Raises :class:`TimeFormatError` (``invalid_range``) unless the
    start comes before the end.
    """
    if span_us is None:
        start_us = 0 if start_us is None else start_us
        end_us = _MAX_US if end_us is None else end_us
    else:
        current = now_us() if now is None else now
        if start_us is None:
            start_us = max((current if end_us is None else end_us) - span_us, _MIN_US)
        if end_us is None:
            end_us = min(current + ahead_us, _MAX_US)
    if start_us >= end_us:
        raise TimeFormatError("invalid_range", "the start of the range must come before its end")
    return start_us, end_us


def floor_to(us: int, step_us: int) -> int:
    """The start of the window of width ``step_us`` that holds ``us`` (windows are [start, end))."""
    return us - us % step_us
