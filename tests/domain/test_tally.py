"""Counters add up the same however a batch is split (group commit merges tallies)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pik.domain.instants import US_PER_MINUTE
from pik.domain.lag import is_late
from pik.domain.tally import Tally

HOUR = 3_600_000_000
arrivals = st.lists(
    st.tuples(
        st.sampled_from(["accepted", "duplicate", "rejected", "conflict"]),
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["e1", "e2", "e3"]),
        st.integers(0, 72 * HOUR),
        st.integers(0, 3 * 60_000_000),
    ),
    max_size=30,
)


def tally_of(items: list[tuple[str, str, str, int, int]]) -> Tally:
    tally = Tally(late_after_us=5 * 60_000_000)
    for kind, source, entity, event_time, ingest_offset in items:
        ingest = 72 * HOUR + ingest_offset
        if kind == "accepted":
            tally.accepted(source, entity, event_time, ingest)
        elif kind == "duplicate":
            tally.duplicate(source, ingest)
        elif kind == "conflict":
            tally.conflict(source, ingest)
        else:
            tally.rejected(source, "invalid_json", ingest)
    return tally


@given(arrivals, arrivals)
def test_merged_tallies_equal_one_tally(first: list, second: list) -> None:  # type: ignore[type-arg]
    whole = tally_of(first + second)
    merged = tally_of(first)
    merged.merge(tally_of(second))
    assert merged.rates == whole.rates
    assert dict(merged.rejections) == dict(whole.rejections)
    assert {k: v for k, v in merged.coverage.items() if v} == {
        k: v for k, v in whole.coverage.items() if v
    }
    assert merged.entities == whole.entities


def test_late_means_strictly_past_the_threshold_for_the_rates_and_the_timelines() -> None:
    threshold = 5 * US_PER_MINUTE
    assert [is_late(lag, threshold) for lag in (-1, 0, threshold, threshold + 1)] == [
        False,
        False,
        False,
        True,
    ]
    tally = Tally(late_after_us=threshold)
    for lag in (threshold, threshold + 1):
        tally.accepted("s", "e", 10 * US_PER_MINUTE - lag, 10 * US_PER_MINUTE)
    assert sum(row.late for row in tally.rates.values()) == 1
