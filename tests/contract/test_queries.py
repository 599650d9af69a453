"""The access patterns through the storage port: timelines, coverage and gaps, rates, entities."""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Callable

import pytest

from pik.domain.instants import (
    END_OF_TIME_US,
    START_OF_TIME_US,
    US_PER_HOUR,
    format_instant,
    parse_instant,
)
from pik.ports import EventStore
from pik.services.ingest import ingest_batch
from pik.services.query import (
    coverage_report,
    entity_page,
    list_entities,
    rates_report,
    timeline_page,
)

MakeEvent = Callable[..., bytes]
T0 = parse_instant("2026-11-01T00:00:00Z")


def at(text: str) -> int:
    return parse_instant(text)


@pytest.fixture
def timeline_store(store: EventStore, make_event: MakeEvent) -> EventStore:
    times = [f"2026-11-01T10:00:{s:02d}.{f}Z" for s in range(10) for f in ("0", "5")]
    ingest_batch(
        store,
        [make_event(entity_id="u1", event_time=t, payload={"t": t}) for t in reversed(times)],
        "a",
    )
    ingest_batch(store, [make_event(entity_id="u2", event_time=times[0])], "a")
    return store


def test_timeline_is_in_event_time_order_and_pages_both_ways(timeline_store: EventStore) -> None:
    end = at("2026-11-02T00:00:00Z")
    pages = []
    page = timeline_page(timeline_store, "u1", 0, end, limit=6)
    assert page.prev is None
    while True:
        pages.append(page)
        if page.next is None:
            break
        page = timeline_page(timeline_store, "u1", 0, end, limit=6, cursor=page.next)
    times = [e.event_time_us for p in pages for e in p.events]
    assert len(times) == 20 and times == sorted(times)
    assert [len(p.events) for p in pages] == [6, 6, 6, 2]
    back = timeline_page(timeline_store, "u1", 0, end, limit=6, cursor=pages[-1].prev)
    assert [e.event_id for e in back.events] == [e.event_id for e in pages[-2].events]
    assert back.next is not None and back.prev is not None
    first = timeline_page(timeline_store, "u1", 0, end, limit=6, cursor=pages[1].prev)
    assert [e.event_id for e in first.events] == [e.event_id for e in pages[0].events]
    assert first.prev is None


def test_timeline_window_is_start_inclusive_end_exclusive(timeline_store: EventStore) -> None:
    start, end = at("2026-11-01T10:00:02Z"), at("2026-11-01T10:00:04Z")
    page = timeline_page(timeline_store, "u1", start, end, limit=100)
    assert [e.event_time_us for e in page.events] == [
        at("2026-11-01T10:00:02Z"),
        at("2026-11-01T10:00:02.5Z"),
        at("2026-11-01T10:00:03Z"),
        at("2026-11-01T10:00:03.5Z"),
    ]


def test_bad_cursor_and_limit_are_refused(timeline_store: EventStore) -> None:
    with pytest.raises(ValueError, match="cursor"):
        timeline_page(timeline_store, "u1", 0, 2**62, cursor="garbage!")
    with pytest.raises(ValueError, match="limit"):
        timeline_page(timeline_store, "u1", 0, 2**62, limit=0)


def test_coverage_counts_windows_and_finds_gaps(store: EventStore, make_event: MakeEvent) -> None:
    hours = [0, 1, 2, 6, 7]  # nothing at hours 3-5
    events = [
        make_event(
            entity_id="busy", event_time=f"2026-11-01T{h:02d}:30:00Z", payload={"h": h, "n": n}
        )
        for h in hours
        for n in range(2)
    ]
    events.append(
        make_event(entity_id="quiet", event_time="2026-11-01T04:00:00Z", source="payments")
    )
    ingest_batch(store, events, "a")
    report = coverage_report(store, T0, T0 + 24 * US_PER_HOUR, "hour")
    busy = [
        (w.window_start_us - T0) // US_PER_HOUR for w in report.windows if w.entity_id == "busy"
    ]
    assert busy == hours
    assert all(w.count == 2 for w in report.windows if w.entity_id == "busy")
    assert [
        (g.entity_id, (g.window_start_us - T0) // US_PER_HOUR, g.windows) for g in report.gaps
    ] == [("busy", 3, 3)], "one run of three empty hours"
    assert report.gaps[0].window_end_us == T0 + 6 * US_PER_HOUR
    by_day = coverage_report(store, T0, T0 + 24 * US_PER_HOUR, "day")
    assert [(w.entity_id, w.count) for w in by_day.windows] == [("busy", 10), ("quiet", 1)]
    only_payments = coverage_report(store, T0, T0 + 24 * US_PER_HOUR, "day", source="payments")
    assert [(w.entity_id, w.count) for w in only_payments.windows] == [("quiet", 1)]
    just_quiet = coverage_report(store, T0, T0 + 24 * US_PER_HOUR, "hour", ["quiet"])
    assert [w.entity_id for w in just_quiet.windows] == ["quiet"] and not just_quiet.gaps


def test_rates_count_per_minute_per_source(store: EventStore, make_event: MakeEvent) -> None:
    late = make_event(entity_id="a", event_time="2026-11-01T00:00:00Z")
    ingest_batch(store, [late, late, b"{bad", make_event(source="payments")], "a")
    report = rates_report(store, 0, 2**62)
    rows = {r.source: r for r in report.rows}
    assert (rows["checkout"].accepted, rows["checkout"].duplicate, rows["checkout"].late) == (
        1,
        1,
        1,
    )
    assert rows["payments"].accepted == 1
    assert rows["(unknown)"].rejected == 1
    assert sum(rows["checkout"].lag) == 1 and rows["checkout"].lag[-1] == 1
    assert report.reasons == [("(unknown)", "invalid_json", 1)]


def test_entities_list_prefix_and_page(store: EventStore, make_event: MakeEvent) -> None:
    ids = ["acct:1", "acct:2", "acct:3", "user:1", "user:10"]
    ingest_batch(store, [make_event(entity_id=i) for i in ids], "a")
    ingest_batch(store, [make_event(entity_id="acct:1", source="payments")], "a")
    assert [e.entity_id for e in list_entities(store, "user:1")] == ["user:1", "user:10"]
    first = list_entities(store, "acct:", limit=2)
    assert [(e.entity_id, e.sources, e.count) for e in first] == [
        ("acct:1", ("checkout", "payments"), 2),
        ("acct:2", ("checkout",), 1),
    ]
    rest = list_entities(store, "acct:", limit=2, after=first[-1].entity_id)
    assert [e.entity_id for e in rest] == ["acct:3"]
    assert [e.entity_id for e in list_entities(store, source="payments")] == ["acct:1"]
    assert list_entities(store, "acct:", after="user:1") == []  # past the prefix: nothing
    # A page says there is a next one only when there is.
    page = entity_page(store, "acct:", limit=2)
    assert [e.entity_id for e in page.entities] == ["acct:1", "acct:2"] and page.next == "acct:2"
    last = entity_page(store, "acct:", limit=2, after=page.next)
    assert [e.entity_id for e in last.entities] == ["acct:3"] and last.next is None
    assert entity_page(store, "acct:", limit=3).next is None  # exactly full, and the end


def test_latest_page_ends_at_the_range_end_and_pages_back(timeline_store: EventStore) -> None:
    end = at("2026-11-02T00:00:00Z")
    everything = timeline_page(timeline_store, "u1", 0, end, limit=100).events
    latest = timeline_page(timeline_store, "u1", 0, end, limit=6, latest=True)
    assert [e.event_id for e in latest.events] == [e.event_id for e in everything[-6:]]
    assert latest.next is None and latest.prev is not None
    older = timeline_page(timeline_store, "u1", 0, end, limit=6, cursor=latest.prev)
    assert [e.event_id for e in older.events] == [e.event_id for e in everything[-12:-6]]
    assert older.next is not None


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_paging_across_days_both_ways_sees_every_event_once(
    store: EventStore, make_event: MakeEvent, limit: int
) -> None:
    rng = random.Random(limit)
    base = at("2026-10-01T00:00:00Z")
    # Clustered days, empty days and weeks between them, sub-second neighbours.
    offsets = sorted(
        {
            rng.choice([0, 1, 2, 9, 10, 30]) * 86_400_000_000 + rng.randrange(86_400_000_000)
            for _ in range(40)
        }
    )
    offsets += [offsets[3] + 1, offsets[3] + 2]
    events = [
        make_event(entity_id="walker", event_time=format_instant(base + o), payload={"o": o})
        for o in offsets
    ]
    ingest_batch(store, events, "a")
    ingest_batch(store, [make_event(entity_id="other", event_time=format_instant(base))], "a")
    everything = [
        e.event_time_us for e in timeline_page(store, "walker", 0, 2**62, limit=1000).events
    ]
    assert everything == sorted(base + o for o in offsets)

    forward: list[int] = []
    page = timeline_page(store, "walker", 0, 2**62, limit=limit)
    while True:
        forward.extend(e.event_time_us for e in page.events)
        if page.next is None:
            break
        page = timeline_page(store, "walker", 0, 2**62, limit=limit, cursor=page.next)
    assert forward == everything

    backward: list[int] = []
    page = timeline_page(store, "walker", 0, 2**62, limit=limit, latest=True)
    while True:
        backward[:0] = [e.event_time_us for e in page.events]
        if page.prev is None:
            break
        page = timeline_page(store, "walker", 0, 2**62, limit=limit, cursor=page.prev)
    assert backward == everything

    window = (base + 86_400_000_000, base + 10 * 86_400_000_000)
    inside = [t for t in everything if window[0] <= t < window[1]]
    got = timeline_page(store, "walker", *window, limit=1000).events
    assert [e.event_time_us for e in got] == inside


def test_entity_queries_with_what_no_entity_id_can_hold(
    store: EventStore, make_event: MakeEvent
) -> None:
    """A prefix or an ``after`` with characters no entity id has (the directory's own
    separator ``!``, the highest code point) is answered as for any other string."""
    ingest_batch(store, [make_event(entity_id="user:1", source=s) for s in ("a", "pay")], "a")
    ingest_batch(store, [make_event(entity_id="user:10")], "a")
    for prefix in ("user:1!", "user:1!p", "\U0010ffff", "\ud7ff", "user:1 "):
        assert list_entities(store, prefix) == [], prefix
    for after in ("user:1!", "user:1 ", "user:1\x00", 'user:1"', "user:1$"):
        assert [e.entity_id for e in list_entities(store, "user:1", after=after)] == ["user:10"]
    assert [e.entity_id for e in list_entities(store, after="a!")] == ["user:1", "user:10"]
    assert [e.entity_id for e in list_entities(store, after="user:0\U0001f600" * 300)] == [
        "user:1",
        "user:10",
    ]
    assert list_entities(store, after="user:1\U0001f600" * 300) == []
    assert list_entities(store, after="user:1\x7f") == []
    assert [e.entity_id for e in list_entities(store, after="user:1/")] == ["user:10"]
    assert timeline_page(store, "", 0, 2**62).events == []
    assert timeline_page(store, "user:1!a", 0, 2**62).events == []
    assert coverage_report(store, 0, 2**62, "day", entity_ids=["", "user:1!a"]).windows == []
    # Longer than any id can be (an index key would refuse it): the same answers.
    long = "user:1" + "0" * 2100
    assert list_entities(store, long) == []
    after = "user:1" + "!" * 2100  # after user:1, before user:10
    assert [e.entity_id for e in list_entities(store, "user:1", after=after)] == ["user:10"]
    assert timeline_page(store, long, 0, 2**62).events == []
    assert coverage_report(store, 0, 2**62, "day", entity_ids=[long]).windows == []


def test_the_ports_answer_alike_to_what_no_service_asks(store: EventStore) -> None:
    """Arguments every caller validates first, answered the same way by both engines."""
    assert store.timeline("u1", 0, 2**62, -1) == []
    assert store.entities("", None, -1, None) == []
    for granularity in ("week", "HOUR"):
        with pytest.raises(ValueError, match="granularity"):
            store.coverage(granularity, 0, 2**62, None, None)


def test_a_cursor_past_any_instant_is_refused(timeline_store: EventStore) -> None:
    for time_text in (str(2**63), str(-(2**63) - 1), "9" * 4000):
        tag = f"{zlib.crc32(b'u1'):08x}"
        token = base64.urlsafe_b64encode(f"p.{time_text}.{'0' * 32}.{tag}".encode()).decode()
        with pytest.raises(ValueError, match="cursor"):
            timeline_page(timeline_store, "u1", 0, 2**62, cursor=token)


def test_coverage_and_rates_over_all_of_time_read_only_the_days_with_data(
    store: EventStore, make_event: MakeEvent
) -> None:
    """From year 1 to 9999 (what `--from 0001-01-01` asks): the answer of the days that
    hold events, at once, not a visit to three million days."""
    ingest_batch(store, [make_event(entity_id=f"u{i}", source="feed") for i in range(3)], "a")
    ingest_batch(store, [b"{broken"], "a")
    whole = coverage_report(store, START_OF_TIME_US, END_OF_TIME_US, "day")
    assert whole.windows == coverage_report(store, T0, T0 + 86_400_000_000, "day").windows
    assert sum(w.count for w in whole.windows) == 3
    rates = rates_report(store, START_OF_TIME_US, END_OF_TIME_US)
    assert sum(r.accepted for r in rates.rows) == 3
    assert [(code, n) for _, code, n in rates.reasons] == [("invalid_json", 1)]


def test_a_gap_of_decades_is_one_run_not_one_entry_per_empty_window(
    store: EventStore, make_event: MakeEvent
) -> None:
    """A producer clock at the epoch and one event today: the answer's size follows the
    data (two windows, one gap), not the range (half a million empty hours)."""
    ingest_batch(
        store,
        [
            make_event(entity_id="skewed", event_time="1970-01-01T00:00:00Z"),
            make_event(entity_id="skewed", event_time="2026-11-01T10:30:00Z"),
        ],
        "a",
    )
    report = coverage_report(store, 0, T0 + 86_400_000_000, "hour")
    assert len(report.windows) == 2
    [gap] = report.gaps
    assert (gap.window_start_us, gap.window_end_us) == (
        US_PER_HOUR,
        report.windows[1].window_start_us,
    )
    assert gap.windows == report.windows[1].window_start_us // US_PER_HOUR - 1


def test_a_cursor_continues_only_its_own_entitys_timeline(timeline_store: EventStore) -> None:
    first = timeline_page(timeline_store, "u1", 0, 2**62, limit=3)
    assert first.next is not None
    with pytest.raises(ValueError, match="another entity"):
        timeline_page(timeline_store, "u2", 0, 2**62, cursor=first.next)
    assert len(timeline_page(timeline_store, "u1", 0, 2**62, 3, cursor=first.next).events) == 3


def test_a_cursor_into_a_range_it_pages_past_is_refused(timeline_store: EventStore) -> None:
    # Its page would be empty, which reads as the end of the timeline: said instead.
    whole = timeline_page(timeline_store, "u1", 0, 2**62, limit=3)
    later = timeline_page(timeline_store, "u1", 0, 2**62, limit=3, cursor=whole.next)
    assert whole.next is not None and later.prev is not None
    before = at("2026-11-01T10:00:00.5Z")  # ends before the page the cursor continues from
    with pytest.raises(ValueError, match="past the end of the range"):
        timeline_page(timeline_store, "u1", 0, before, cursor=whole.next)
    # A prev cursor from before the range's start: nothing older in it, as when a relative
    # --from has moved on since the cursor was made.
    after = at("2026-11-01T10:00:05Z")
    assert timeline_page(timeline_store, "u1", after, 2**62, cursor=later.prev).events == []
    # A range that still reaches the cursor's position pages on from it.
    assert timeline_page(timeline_store, "u1", 0, at("2026-11-02T00:00:00Z"), 3, whole.next).events
