"""The replay form read into a selection and a rate: each mistake names its field."""

from __future__ import annotations

import pytest

from pik.domain.instants import US_PER_HOUR, parse_instant
from pik_tui.replay_form import FormError, draft_for, names, read_rate, read_selection

NOW = parse_instant("2026-11-29T12:00:00Z")


def form(**changes: str) -> dict[str, str]:
    values = {
        "entities": "customer-0001, customer-0002",
        "start": "-2h",
        "end": "now",
        "sources": "",
        "types": " order.created ,",
        "target": " file:out.ndjson ",
        "rate": "100",
    }
    return values | changes


def test_a_whole_form_reads_as_the_selection_it_describes() -> None:
    selection = read_selection(form(), NOW)
    assert selection.entity_ids == ("customer-0001", "customer-0002")
    assert (selection.start_us, selection.end_us) == (NOW - 2 * US_PER_HOUR, NOW)
    assert selection.sources == ()
    assert selection.event_types == ("order.created",)
    assert selection.target == "file:out.ndjson"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"entities": " , "}, "entities", "name at least one entity"),
        ({"start": ""}, "start", "give a time"),
        ({"start": "tomorrow"}, "start", "a date like 2026-01-31"),
        ({"end": "2026-13-01"}, "end", ""),
        ({"start": "now", "end": "-1h"}, "end", "end must be after start"),
        ({"target": "  "}, "target", "choose where a send goes"),
        ({"types": "x" * 200}, "types", ""),
        ({"entities": "a\x1bb"}, "entities", "entity ids"),
    ],
)
def test_each_mistake_names_its_field(changes: dict[str, str], field: str, says: str) -> None:
    with pytest.raises(FormError) as raised:
        read_selection(form(**changes), NOW)
    assert raised.value.field == field
    assert str(raised.value).startswith(
        {"entities": "Entities", "start": "From", "end": "To", "target": "Target"}.get(
            field, "Types"
        )
        + ": "
    )
    assert says in str(raised.value)


@pytest.mark.parametrize("text", ["", "0", "10001", "1e3", "ten", "-5", "٣"])
def test_a_rate_outside_what_a_run_takes_is_refused(text: str) -> None:
    with pytest.raises(FormError) as raised:
        read_rate(text)
    assert raised.value.field == "rate"


def test_rates_and_lists_are_read_leniently_where_nothing_is_lost() -> None:
    assert read_rate(" 250 ") == 250
    assert names(" a, ,b ,a") == ["a", "b", "a"]  # the selection drops the repeat


def test_the_draft_spans_the_page_on_screen_to_just_after_its_last_event() -> None:
    draft = draft_for("customer-0001", NOW - US_PER_HOUR, NOW)
    assert (draft.entities, draft.start, draft.end) == (
        "customer-0001",
        "2026-11-29T11:00:00.000000Z",
        "2026-11-29T12:00:00.000001Z",
    )
    assert draft_for(None, None, None).start == "-24h"


def test_refusals_speak_of_the_fields_as_the_form_names_them() -> None:
    with pytest.raises(FormError) as raised:
        read_selection(form(entities="a\x07"), NOW)
    assert "entity_ids" not in str(raised.value)
