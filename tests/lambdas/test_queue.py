"""The SQS ingest consumer: partial batch responses over a real local store, and over the
AWS engine in moto where a test needs AWS to refuse a request (the only fault it may fake)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqs_events import bodies_event

from pik.domain.limits import Limits
from pik.engines.local import LocalEngine
from pik.lambdas.queue import make_handler, record_items
from pik.ports import EventStore

Envelope = Callable[..., dict[str, Any]]
AwsStore = Callable[..., tuple[Any, Any]]


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


def test_one_commit_per_invocation(aws_store: AwsStore, context: Any, bodies: list[str]) -> None:
    engine, log = aws_store()
    make_handler(lambda: engine)(bodies_event(*bodies), context)
    assert log.by_operation()["s3:PutObject"] == 1  # one raw object: one commit
    assert engine.counts()["accepted"] == 5


def test_an_unavailable_store_sends_every_record_back_then_redelivery_stores_once(
    aws_store: AwsStore, context: Any, emf: Any, logs: Any, bodies: list[str]
) -> None:
    engine, log = aws_store()
    log.fail = lambda _n, _service, operation: "SlowDown" if operation == "PutObject" else None
    event = bodies_event(*bodies)
    handler = make_handler(lambda: engine)
    response = handler(event, context)
    assert failures(response) == [f"msg-{i}" for i in range(len(bodies))]
    assert engine.counts()["events"] == 0
    values = emf.read()
    assert values["RecordsRetried"] == [len(bodies)] and values["Accepted"] == [0]
    assert any(line["message"].startswith("store unavailable") for line in logs.lines())

    log.fail = None
    assert handler(event, context) == {"batchItemFailures": []}
    assert emf.read()["Accepted"] == [5]
    assert handler(event, context) == {"batchItemFailures": []}  # delivered once more
    values = emf.read()
    assert values["Accepted"] == [0] and values["Duplicate"] == [5] and values["Rejected"] == [3]
    assert engine.counts()["events"] == 5


def test_a_full_store_is_retried_too(
    engine: LocalEngine, context: Any, make_envelope: Envelope
) -> None:
    db = engine._index._db  # SQLite's own page limit stands in for a full disk
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    ndjson = "\n".join(
        compact(make_envelope(entity_id=f"e{n}", payload={"pad": "x" * 900})) for n in range(100)
    )
    handler = make_handler(lambda: engine)
    assert failures(handler(bodies_event(ndjson), context)) == ["msg-0"]
    assert engine.counts()["events"] == 0
    db.execute("PRAGMA max_page_count = 1073741823")
    assert handler(bodies_event(ndjson), context) == {"batchItemFailures": []}
    assert engine.counts()["events"] == 100


def test_past_the_batch_limit_only_the_failed_commit_goes_back(
    aws_store: AwsStore, context: Any, make_envelope: Envelope
) -> None:
    engine, log = aws_store(Limits(max_batch_events=3))
    puts = 0

    def second_object_refused(_n: int, _service: str, operation: str) -> str | None:
        nonlocal puts
        puts += operation == "PutObject"
        return "SlowDown" if operation == "PutObject" and puts >= 2 else None

    log.fail = second_object_refused

    def ndjson(prefix: str, n: int) -> str:
        return "\n".join(compact(make_envelope(entity_id=f"{prefix}-{i}")) for i in range(n))

    bodies = [ndjson("c", 2), compact(make_envelope(entity_id="c-9")), ndjson("d", 2)]
    bodies.append(ndjson("big", 4))
    # Commits: [msg-0 (2), msg-1 (1)], [msg-2 (2)] fails, then msg-3 is not tried.
    response = make_handler(lambda: engine)(bodies_event(*bodies), context)
    assert failures(response) == ["msg-2", "msg-3"]
    assert engine.counts()["accepted"] == 3
    objects = {params["Key"] for _, operation, params in log.calls if operation == "PutObject"}
    assert len(objects) == 2  # the stored one and the refused one: msg-3 was never tried


def test_a_bug_fails_the_invocation_without_quoting_the_input(
    context: Any, logs: Any, canary: str
) -> None:
    def broken() -> EventStore:
        raise KeyError(canary)  # a bug in making the store, with input in its message

    with pytest.raises(RuntimeError) as raised:
        make_handler(broken)(bodies_event(compact({"x": canary})), context)
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


def test_an_empty_batch_touches_nothing(aws_store: AwsStore, context: Any) -> None:
    engine, log = aws_store()
    assert make_handler(lambda: engine)({"Records": []}, context) == {"batchItemFailures": []}
    assert log.calls == []


def test_record_bodies_split_into_events() -> None:
    assert record_items('{"a":1}') == [b'{"a":1}']
    assert record_items('{"a":1}\r\n\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']
    pretty = '{\n  "a": 1,\n  "b": {"c": 2}\n}\n'
    assert record_items(pretty) == [pretty.strip().encode()]
    assert record_items("  \n ") == [b""]
    assert record_items(None) == [b""]
    assert record_items("\ud800") == [b"\xed\xa0\x80"]
