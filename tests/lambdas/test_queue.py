"""The SQS ingest consumer: partial batch responses over a real local store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqs_events import bodies_event

from pik.domain.limits import Limits
from pik.engines.local import LocalEngine
from pik.lambdas.queue import make_handler, record_items
from pik.storage_errors import StoreFullError

Envelope = Callable[..., dict[str, Any]]


def compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def failures(response: dict[str, Any]) -> list[str]:
    return sorted(item["itemIdentifier"] for item in response["batchItemFailures"])


@pytest.fixture
def bodies(make_envelope: Envelope) -> list[str]:
    """Good records (one event, NDJSON, pretty-printed) and records no retry can fix."""
    return [
        compact(make_envelope(entity_id="customer-1")),
        "\n".join(compact(make_envelope(entity_id=f"customer-{i}")) for i in (2, 3, 4)) + "\n",
        json.dumps(make_envelope(entity_id="customer-5"), indent=2),
        compact({"source": "checkout", "entity_id": "customer-6"}),  # fields missing
        "not json at all",
        '{"source": "checkout", "payload": "\ud800"}',  # cannot be UTF-8
    ]


def test_good_records_are_stored_and_bad_ones_rejected_not_retried(
    engine: LocalEngine, context: Any, emf: Any, bodies: list[str]
) -> None:
    response = make_handler(lambda: engine)(bodies_event(*bodies), context)
    assert response == {"batchItemFailures": []}
    counts = engine.counts()
    assert (counts["accepted"], counts["rejected"]) == (5, 3)
    values = emf.read()
    assert values["Accepted"] == [5] and values["Rejected"] == [3]
    assert values["Duplicate"] == [0] and values["RecordsRetried"] == [0]
    assert len(values["LagMs"]) == 5
    assert [d["Dimensions"] for d in emf.blobs[0]["_aws"]["CloudWatchMetrics"]] == [[["service"]]]


def test_one_commit_per_invocation(
    engine: LocalEngine, context: Any, faulty: Any, bodies: list[str]
) -> None:
    store = faulty(engine, fail=lambda _: False)
    make_handler(lambda: store)(bodies_event(*bodies), context)
    assert store.commits == 1


def test_an_unavailable_store_sends_every_record_back_then_redelivery_stores_once(
    engine: LocalEngine, context: Any, faulty: Any, emf: Any, logs: Any, bodies: list[str]
) -> None:
    event = bodies_event(*bodies)
    response = make_handler(lambda: faulty(engine))(event, context)
    assert failures(response) == [f"msg-{i}" for i in range(len(bodies))]
    assert engine.counts()["events"] == 0
    values = emf.read()
    assert values["RecordsRetried"] == [len(bodies)] and values["Accepted"] == [0]
    assert any(line["message"].startswith("store unavailable") for line in logs.lines())

    handler = make_handler(lambda: engine)
    assert handler(event, context) == {"batchItemFailures": []}
    assert emf.read()["Accepted"] == [5]
    assert handler(event, context) == {"batchItemFailures": []}  # delivered once more
    values = emf.read()
    assert values["Accepted"] == [0] and values["Duplicate"] == [5] and values["Rejected"] == [3]
    assert engine.counts()["events"] == 5


def test_a_full_store_is_retried_too(
    engine: LocalEngine, context: Any, faulty: Any, make_envelope: Envelope
) -> None:
    store = faulty(engine, error=StoreFullError(28, "No space left on device"))
    response = make_handler(lambda: store)(bodies_event(compact(make_envelope())), context)
    assert failures(response) == ["msg-0"]


def test_past_the_batch_limit_only_the_failed_commit_goes_back(
    tmp_path: Path, context: Any, faulty: Any, make_envelope: Envelope
) -> None:
    engine = LocalEngine(tmp_path / "small", limits=Limits(max_batch_events=3))
    store = faulty(engine, fail=lambda n: n == 2)
    ndjson = "\n".join(compact(make_envelope(entity_id=f"c-{i}")) for i in range(2))
    big = "\n".join(compact(make_envelope(entity_id=f"big-{i}")) for i in range(4))
    bodies = [ndjson, compact(make_envelope(entity_id="c-9")), ndjson, big]
    # Commits: [msg-0 (2), msg-1 (1)], [msg-2 (2)] fails, then msg-3 is not tried.
    response = make_handler(lambda: store)(bodies_event(*bodies), context)
    assert failures(response) == ["msg-2", "msg-3"]
    assert store.commits == 2 and engine.counts()["accepted"] == 3
    engine.close()


def test_a_bug_fails_the_invocation_without_quoting_the_input(
    engine: LocalEngine, context: Any, faulty: Any, logs: Any, canary: str
) -> None:
    store = faulty(engine, error=KeyError(canary))
    with pytest.raises(RuntimeError) as raised:
        make_handler(lambda: store)(bodies_event(compact({"x": canary})), context)
    assert canary not in str(raised.value) and raised.value.__suppress_context__
    assert "KeyError" in str(raised.value)
    [failure] = [line for line in logs.lines() if line["level"] == "ERROR"]
    assert failure["error_type"] == "KeyError" and canary not in logs.text


def test_logs_carry_the_invocation_id_and_never_the_bodies(
    engine: LocalEngine, context: Any, logs: Any, canary: str, make_envelope: Envelope
) -> None:
    bodies = [compact(make_envelope(payload={"token": canary})), f'{{"{canary}": 1']
    make_handler(lambda: engine)(bodies_event(*bodies), context)
    [line] = logs.lines()
    assert line["message"] == "ingest" and line["correlation_id"] == context.aws_request_id
    assert (line["origin"], line["records"], line["accepted"], line["rejected"]) == (
        "sqs",
        2,
        1,
        1,
    )
    assert line["rejection_codes"] == {"invalid_json": 1}
    assert canary not in logs.text


def test_an_empty_batch_touches_nothing(engine: LocalEngine, context: Any, faulty: Any) -> None:
    store = faulty(engine, fail=lambda _: False)
    assert make_handler(lambda: store)({"Records": []}, context) == {"batchItemFailures": []}
    assert store.commits == 0


def test_record_bodies_split_into_events() -> None:
    assert record_items('{"a":1}') == [b'{"a":1}']
    assert record_items('{"a":1}\r\n\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']
    pretty = '{\n  "a": 1,\n  "b": {"c": 2}\n}\n'
    assert record_items(pretty) == [pretty.strip().encode()]
    assert record_items("  \n ") == [b""]
    assert record_items(None) == [b""]
    assert record_items("\ud800") == [b"\xed\xa0\x80"]
