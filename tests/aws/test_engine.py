"""What only the AWS engine has to prove: AWS's limits, request counts, faults, raw objects.

The behaviour both engines share is in tests/contract; these tests run on moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aws_requests import CapacityCancellations, RequestLog
from botocore.exceptions import ClientError, FlexibleChecksumError, IncompleteReadError
from template_checks import INDEX_KEYS

from pik.domain.instants import now_us, parse_instant
from pik.domain.outcome import Status
from pik.domain.versions import AggregateSpec
from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws import engine as aws_engine
from pik.engines.aws.clients import unavailable_on_failure
from pik.engines.aws.engine import LEASE_US, TRANSACTION_ATTEMPTS
from pik.engines.aws.shapes import MAX_BATCH_GET_KEYS, MAX_TRANSACTION_ACTIONS
from pik.engines.aws.versions import AwsVersionStore
from pik.services.ingest import ingest_batch
from pik.services.processor import process_messages
from pik.storage_errors import StoreUnavailableError

MakeEvent = Callable[..., bytes]


@pytest.fixture
def engine(aws_config: AwsConfig, log: RequestLog) -> AwsEngine:
    return AwsEngine(aws_config, session=log.session())


def batch(make_event: MakeEvent, size: int, entities: int, tag: str = "") -> list[bytes]:
    return [
        make_event(
            entity_id=f"entity-{i % entities}",
            event_time=f"2026-11-01T{i % 24:02d}:{i % 60:02d}:00Z",
            payload={"n": i, "tag": tag, "pad": "x" * 900},
        )
        for i in range(size)
    ]


def _check_limits(log: RequestLog) -> None:
    for _, operation, params in log.calls:
        if operation in ("PutItem", "UpdateItem"):
            _check_ingest_partition(params)
        if operation == "TransactWriteItems":
            assert len(params["TransactItems"]) <= MAX_TRANSACTION_ACTIONS
            targets = [next(iter(action.values())) for action in params["TransactItems"]]
            for target in targets:
                _check_ingest_partition(target)
            keys = [
                json.dumps(t.get("Key") or {k: t["Item"][k] for k in ("pk", "sk")}, sort_keys=True)
                for t in targets
            ]
            assert len(keys) == len(set(keys)), "one item twice in a transaction"
        if operation == "BatchGetItem":
            keys = sum(len(t["Keys"]) for t in params["RequestItems"].values())
            assert keys <= MAX_BATCH_GET_KEYS
        if operation == "BatchWriteItem":
            assert sum(len(t) for t in params["RequestItems"].values()) <= 25
        _check_key_condition(params)


def _check_ingest_partition(target: dict[str, Any]) -> None:
    """Ingest writes only the partitions the template lets its roles write (moto does not
    check IAM, so this is what keeps template and code together)."""
    key = target.get("Key") or target["Item"]
    allowed = INDEX_KEYS["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert any(key["pk"]["S"].startswith(p.rstrip("*")) for p in allowed), key["pk"]


def _check_key_condition(params: dict[str, Any]) -> None:
    """DynamoDB refuses a BETWEEN whose lower bound is above its upper one, and a key value
    over 1,024 bytes (a sort key's limit; 2,048 for a partition key) (moto does neither)."""
    condition = params.get("KeyConditionExpression", "")
    for name, value in (params.get("ExpressionAttributeValues") or {}).items():
        if name in condition:
            assert len(value.get("S", "").encode()) <= 1024, (condition, name)
    if " BETWEEN " in condition:
        low, high = condition.split(" BETWEEN ")[1].split(" AND ")
        values = params["ExpressionAttributeValues"]
        assert values[low.strip()]["S"] <= values[high.strip()]["S"], condition


@pytest.mark.parametrize(("size", "entities"), [(100, 100), (1000, 1000), (1000, 10)])
def test_requests_per_thousand_events_stay_within_budget(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent, size: int, entities: int
) -> None:
    """Batches of 100 or more cost at most 50 requests per 1,000 events (cf. ~3,000 for an
    object and an item per event). moto accepts what AWS refuses, so the limits are checked
    on every request as sent."""
    events = batch(make_event, 1000, entities)
    for start in range(0, 1000, size):
        outcomes = ingest_batch(engine, events[start : start + size], "bench")
        assert {o.status for o in outcomes} == {Status.ACCEPTED}
    _check_limits(log)
    assert len(log.calls) <= 50, log.by_operation()
    assert engine.counts()["events"] == 1000


def test_events_read_together_cost_a_get_per_object_not_per_event(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    """What a replay batch or a recomputed window reads: three ingest batches (three
    objects) of 1 KB events, read back with one ranged GET each, where reading them one by
    one would send 300; the processor summing a day of them reads the same way."""
    events = batch(make_event, 300, 1)
    for start in range(0, 300, 100):
        ingest_batch(engine, events[start : start + 100], "bench")
    records = engine.timeline("entity-0", 0, 2**62, 1000)
    assert len(records) == 300
    log.clear()
    assert sorted(engine.read_raw_many(records)) == sorted(events)
    assert log.by_operation()["s3:GetObject"] == 3
    versions = AwsVersionStore(engine._clients, engine.config.table)
    log.clear()
    message = orjson.dumps({"entity_id": "entity-0", "event_time": "2026-11-01T00:00:00Z"})
    [version] = process_messages(engine, versions, AggregateSpec("day", "/n"), [message])
    assert version.aggregate.count == 300 and log.by_operation()["s3:GetObject"] == 3


def test_aws_limits_hold_for_awkward_batches(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    """Many entities, duplicates of stored and in-batch events, conflicts, and rejections
    from thousands of sources: every request still fits AWS's limits."""
    first = batch(make_event, 300, 300, "a")
    ingest_batch(engine, first, "one")
    log.clear()
    conflicting = [
        make_event(entity_id=f"k{i}", idempotency_key=f"key-{i}", payload={"v": 1})
        for i in range(120)
    ]
    ingest_batch(engine, conflicting, "one")
    mixed = (
        first[:300]
        + batch(make_event, 250, 250, "b")
        + [
            make_event(entity_id=f"k{i}", idempotency_key=f"key-{i}", payload={"v": 2})
            for i in range(120)
        ]
        + [b'{"source": "src-%d", "broken": ' % i for i in range(600)]
        + first[:50]
    )
    outcomes = ingest_batch(engine, mixed, "two")
    _check_limits(log)
    statuses = [o.status for o in outcomes]
    assert statuses.count(Status.DUPLICATE) == 350
    assert statuses.count(Status.ACCEPTED) == 250
    assert statuses.count(Status.REJECTED) == 120 + 600
    counts = engine.counts()
    assert (counts["events"], counts["duplicate"], counts["rejected"]) == (670, 350, 720)
    assert sum(r[2] for r in engine.rejection_reasons(0, 2**62, None)) == 720
    record = engine.event(outcomes[0].event_id or b"")
    assert record is not None and record.duplicate_count == 2


def test_raw_objects_are_written_once(engine: AwsEngine, make_event: MakeEvent) -> None:
    outcome = ingest_batch(engine, [make_event()], "a")[0]
    record = engine.event(outcome.event_id or b"")
    assert record is not None
    s3 = engine._clients.s3
    original = s3.get_object(Bucket=engine.config.bucket, Key=record.segment)["Body"].read()
    with pytest.raises(ClientError) as refused:
        s3.put_object(
            Bucket=engine.config.bucket, Key=record.segment, Body=b"forged", IfNoneMatch="*"
        )
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    again = s3.get_object(Bucket=engine.config.bucket, Key=record.segment)["Body"].read()
    assert again == original
    assert record.segment.startswith("raw/2") and ".." not in record.segment


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServerError", "SlowDown"])
def test_a_failing_call_is_unavailable_unacknowledged_and_a_retry_stores_once(
    aws_config: AwsConfig,
    log: RequestLog,
    make_event: MakeEvent,
    code: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request that fails after claiming its events, and cannot release them (every call
    from the N-th on fails), leaves claims nobody commits: a retry takes them over once
    their lease has run out (the clock jumps past it here)."""
    # One try at the release: every later call fails anyway, and this runs once per call.
    monkeypatch.setattr(aws_engine, "RELEASE_BUDGET_S", 0.0)
    now = [now_us()]
    engine = AwsEngine(aws_config, session=log.session(), clock=lambda: now[0])
    events = [*batch(make_event, 120, 40, code), b"{bad"]
    ingest_batch(engine, events[:10], "warm-up")  # some duplicates in what follows
    log.clear()
    ingest_batch(engine, events, "probe")
    calls = len(log.calls)
    for n in range(1, calls + 1):
        log.clear()
        log.fail = lambda number, _s, _o, n=n: code if number >= n else None  # type: ignore[misc]
        with pytest.raises(StoreUnavailableError) as failed:
            ingest_batch(engine, [*events, make_event(entity_id=f"new-{n}")], "faulty")
        assert failed.value.retry_after_s >= 1
        log.fail = None
        now[0] += LEASE_US + 1
        outcomes = ingest_batch(engine, [*events, make_event(entity_id=f"new-{n}")], "retry")
        assert outcomes[-1].status in {Status.ACCEPTED, Status.DUPLICATE}
    # Nothing stored twice either: a retry points at bytes a failed request left.
    assert engine.verify().problems == ()
    counts = engine.counts()
    assert counts["events"] == 120 + calls
    assert len({e.event_id for e in engine.timeline("new-1", 0, 2**62, 10)}) == 1


def test_a_failing_read_says_to_retry_and_claims_nothing_about_ingest(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    ingest_batch(engine, [make_event(entity_id="a")], "x")
    log.fail = lambda _n, _s, _o: "ThrottlingException"
    with pytest.raises(StoreUnavailableError) as failed:
        engine.timeline("a", 0, 2**62, 10)
    message = str(failed.value)
    assert "ThrottlingException" in message and "retry in a moment" in message
    assert "acknowledged" not in message
    with pytest.raises(StoreUnavailableError) as refused:
        ingest_batch(engine, [make_event(entity_id="b")], "x")
    assert "nothing was acknowledged" in str(refused.value)


@pytest.mark.parametrize(
    "failure",
    [
        ClientError({"Error": {"Code": "502", "Message": "Bad Gateway"}}, "GetObject"),
        ClientError({"Error": {"Code": "504", "Message": "Gateway Timeout"}}, "PutObject"),
        IncompleteReadError(actual_bytes=10, expected_bytes=100),
        FlexibleChecksumError(error_msg="the body does not match its checksum"),
        ClientError(
            {"Error": {"Code": "InternalFailure"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
            "TransactWriteItems",
        ),
        ClientError(
            {
                "Error": {"Code": "ServiceUnavailableException"},
                "ResponseMetadata": {"HTTPStatusCode": 503},
            },
            "SendMessageBatch",
        ),
    ],
    ids=["502", "504", "cut-short", "garbled", "5xx-InternalFailure", "5xx-unlisted-code"],
)
def test_failures_on_the_way_are_unavailability(failure: Exception) -> None:
    """A gateway between us and AWS failing, a body cut short or garbled on the way, or
    any 5xx whatever its code: the next try can succeed, so the request is 503 and says
    to retry."""
    with (
        pytest.raises(StoreUnavailableError, match="nothing was acknowledged"),
        unavailable_on_failure("writing", ingest=True),
    ):
        raise failure


def test_a_put_retried_after_s3_stored_it_is_taken_as_written(
    engine: AwsEngine, make_event: MakeEvent
) -> None:
    """The SDK sends a PUT again when S3's answer is lost; S3 then refuses it (412), as
    the key exists. Here botocore's own retry runs once after a PUT that succeeded."""
    tries: list[int] = []

    def retry_once(attempts: int, **_: Any) -> float | None:
        tries.append(attempts)
        return 0.0 if attempts == 1 else None

    engine._clients.s3.meta.events.register("needs-retry.s3.PutObject", retry_once)
    events = batch(make_event, 20, 4, "lost-answer")
    outcomes = ingest_batch(engine, events, "x")
    assert tries[:2] == [1, 2], "the PUT was sent twice"
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert engine.verify().problems == () and engine.counts()["events"] == 20
    assert {o.status for o in ingest_batch(engine, events, "x")} == {Status.DUPLICATE}


def test_a_key_holding_other_bytes_fails_unacknowledged_and_a_retry_stores(
    engine: AwsEngine, make_event: MakeEvent
) -> None:
    s3 = engine._clients.s3
    squatted: list[str] = []

    def squat(params: dict[str, Any], **_: Any) -> None:
        if not squatted:
            squatted.append(params["Key"])
            s3.put_object(Bucket=params["Bucket"], Key=params["Key"], Body=b"not ours")

    s3.meta.events.register("before-parameter-build.s3.PutObject", squat)
    events = batch(make_event, 10, 2, "squatted")
    with pytest.raises(StoreUnavailableError, match="other bytes; nothing was acknowledged"):
        ingest_batch(engine, events, "x")
    outcomes = ingest_batch(engine, events, "x")  # claims released: no lease to wait out
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert engine.counts()["events"] == 10


def test_verify_finds_altered_and_missing_objects(engine: AwsEngine, make_event: MakeEvent) -> None:
    first = ingest_batch(engine, [make_event(entity_id="a")], "x")[0]
    second = ingest_batch(engine, [make_event(entity_id="b")], "x")[0]
    assert engine.verify().ok
    s3: Any = engine._clients.s3
    bucket = engine.config.bucket
    altered = engine.event(first.event_id or b"")
    missing = engine.event(second.event_id or b"")
    assert altered is not None and missing is not None
    data = s3.get_object(Bucket=bucket, Key=altered.segment)["Body"].read()
    tampered = data.replace(b'"amount":1', b'"amount":9')
    s3.put_object(Bucket=bucket, Key=altered.segment, Body=tampered)  # the test bucket has
    s3.delete_object(Bucket=bucket, Key=missing.segment)  # no policy; the stack's denies this
    report = engine.verify()
    kinds = {p.kind for p in report.problems}
    assert not report.ok
    assert {"segment_missing"} <= kinds
    assert kinds & {"frame_corrupt", "event_hash_mismatch"}


def test_a_transaction_over_provisioned_capacity_is_tried_again(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    events = batch(make_event, 30, 3, "capacity")
    log.fail = CapacityCancellations(0, 2)
    outcomes = ingest_batch(engine, events, "x")
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert engine.counts()["events"] == 30 and engine.verify().problems == ()


@pytest.mark.parametrize("code", ["capacity", "ThrottlingException"])
def test_a_batch_refused_between_its_claims_can_be_retried_at_once(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent, code: str
) -> None:
    """250 events take three claim transactions: the first gets through, the second is
    refused for good. The request is unavailable, and its first claims are released, so an
    immediate retry (no lease has run out) stores the batch, once."""
    events = batch(make_event, 250, 25, code)
    if code == "capacity":
        log.fail = CapacityCancellations(1, TRANSACTION_ATTEMPTS)
    else:
        transactions: list[str] = []

        def throttled(_n: int, _s: str, operation: str) -> str | None:
            if operation == "TransactWriteItems":
                transactions.append(operation)
                return code if len(transactions) == 2 else None
            return None

        log.fail = throttled
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "x")
    claims = [
        params for _, op, params in log.calls
        if op == "TransactWriteItems" and "Put" in params["TransactItems"][0]
    ]  # fmt: skip
    assert len(claims) >= 2, "the failure came after a claim transaction"
    log.fail = None
    assert {o.status for o in ingest_batch(engine, events, "x")} == {Status.ACCEPTED}
    assert engine.counts()["events"] == 250 and engine.verify().problems == ()


def test_a_throttled_release_is_tried_again_so_a_retry_need_not_wait(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    """The commit is throttled, and so is the first try to release the claims (throttling
    rarely comes alone); the release is tried again, and an immediate retry stores all."""
    events = batch(make_event, 30, 3, "release")
    transactions: list[str] = []

    def throttled(_n: int, _s: str, operation: str) -> str | None:
        if operation == "TransactWriteItems":
            transactions.append(operation)
            return "ThrottlingException" if len(transactions) in {2, 3} else None
        return None

    log.fail = throttled
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "x")
    assert len(transactions) == 4, "claims, commit, release refused, release"
    log.fail = None
    assert {o.status for o in ingest_batch(engine, events, "x")} == {Status.ACCEPTED}
    assert engine.counts()["events"] == 30 and engine.verify().problems == ()


def test_batch_reads_the_table_defers_are_sent_again(
    aws_config: AwsConfig, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table over its capacity answers a batch read with some keys unread
    (UnprocessedKeys): the reader sends them again after a pause, and gives up with a 503
    only if they stay unread."""
    from botocore.awsrequest import AWSResponse

    from pik.engines.aws import reads

    store = AwsEngine(aws_config)
    ingest_batch(store, batch(make_event, 30, 3, "deferred"), "x")
    expected = (store.timeline("entity-1", 0, 2**62, 100), store.counts())
    deferrals = [3]

    def defer(model: Any, params: dict[str, Any], **_: Any) -> Any:
        if deferrals[0] <= 0:
            return None  # read for real
        deferrals[0] -= 1
        unread = json.loads(params["body"])["RequestItems"]
        return AWSResponse("https://aws.invalid", 200, {}, None), {
            "Responses": {},
            "UnprocessedKeys": unread,
        }

    log = RequestLog()
    session = log.session()
    session.events.register("before-call.dynamodb.BatchGetItem", defer)
    reader = AwsEngine(aws_config, session=session)
    assert (reader.timeline("entity-1", 0, 2**62, 100), reader.counts()) == expected
    assert deferrals == [0]
    monkeypatch.setattr(reads, "DEFERRED_ATTEMPTS", 2)
    deferrals[0] = 10**6
    with pytest.raises(StoreUnavailableError, match="kept deferring"):
        reader.counts()


def test_verify_waits_out_a_throttled_scan(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    ingest_batch(engine, batch(make_event, 10, 2, "scan"), "x")
    scans: list[str] = []

    def throttled(_n: int, _s: str, operation: str) -> str | None:
        if operation == "Scan":
            scans.append(operation)
            return "ProvisionedThroughputExceededException" if len(scans) <= 2 else None
        return None

    log.fail = throttled
    report = engine.verify()
    assert report.problems == () and len(scans) == 3


def test_no_query_is_sent_with_its_bounds_reversed(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    from pik.services.query import list_entities

    ingest_batch(engine, [make_event(entity_id=e) for e in ("acct:1", "user:1")], "x")
    log.clear()
    assert list_entities(engine, "acct:", after="user:1") == []
    assert [e.entity_id for e in list_entities(engine, "acct:", after="acct:0")] == ["acct:1"]
    for _, _, params in log.calls:
        _check_key_condition(params)


def test_ids_longer_than_any_entity_are_never_sent_as_keys(
    engine: AwsEngine, log: RequestLog, make_event: MakeEvent
) -> None:
    from pik.services.query import coverage_report, list_entities, timeline_page

    ingest_batch(engine, [make_event(entity_id="e1")], "x")
    log.clear()
    long = "e" * 2100
    assert list_entities(engine, long) == []
    assert [e.entity_id for e in list_entities(engine, "e", after="e" + "!" * 2100)] == ["e1"]
    for after in ("e" + "\U0001f600" * 300, "e0" + "\u00e9" * 600, "d" + "~" * 2000):
        list_entities(engine, "", after=after)
    assert timeline_page(engine, long, 0, 2**62).events == []
    assert coverage_report(engine, 0, 2**62, "day", [long]).windows == []
    assert log.calls  # the listing still asked
    for _, _, params in log.calls:
        _check_key_condition(params)


def test_the_engine_refuses_limits_its_keys_cannot_hold(aws_config: AwsConfig) -> None:
    from pik.domain.limits import Limits

    with pytest.raises(ValueError, match="entity ids of at most 512"):
        AwsEngine(aws_config, limits=Limits(max_entity_id_chars=513))


def test_writers_whose_clocks_disagree_cannot_hide_each_others_days(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """Rates and coverage are read on the days noted as having any, a set every writer adds
    to: a writer three days behind the others does not move a bound that hides them. Each
    writer notes a day once; after that its batches carry no note."""
    day = 86_400_000_000
    now = now_us()
    ahead = AwsEngine(aws_config, session=log.session(), clock=lambda: now)
    behind = AwsEngine(aws_config, session=log.session(), clock=lambda: now - 3 * day)
    for engine, tag in ((ahead, "a"), (behind, "b"), (ahead, "c")):
        events = [make_event(entity_id=f"{tag}{i}") for i in range(3)]
        outcomes = ingest_batch(engine, events, "feed")
        assert {o.status for o in outcomes} == {Status.ACCEPTED}
    ingest_batch(behind, [b"{not json"], "feed")
    notes = [
        action["Put"]["Item"]["sk"]["S"]
        for _, operation, params in log.calls
        if operation == "TransactWriteItems"
        for action in params["TransactItems"]
        if "Put" in action and action["Put"]["Item"]["pk"]["S"].startswith("D#")
    ]
    event_day = parse_instant("2026-11-01T00:00:00Z")
    behind_now = now - 3 * day
    expected = [f"c!{event_day:019d}", f"r!{now - now % day:019d}"]  # ahead's
    expected += [f"c!{event_day:019d}", f"r!{behind_now - behind_now % day:019d}"]  # behind's
    assert sorted(notes) == sorted(expected)
    reader = AwsEngine(aws_config)
    rates = reader.rates(0, 2**62, None)
    assert len({r.minute_us // day for r in rates}) == 2
    assert sum(r.accepted for r in rates) == 9 and sum(r.rejected for r in rates) == 1
    assert reader.rejection_reasons(0, 2**62, None) == [("(unknown)", "invalid_json", 1)]
    assert sum(w.count for w in reader.coverage("day", 0, 2**62, None, None)) == 9


def test_a_stalled_connection_is_unavailable_within_the_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint that takes the connection and never answers: the request ends as
    unavailable (botocore's default would wait a minute a try)."""
    import socket
    import threading
    import time

    from pik.engines.aws import clients

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setattr(clients, "READ_TIMEOUT_S", 0.2)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    try:
        config = AwsConfig("t", "b", region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="could not be reached"):
            AwsEngine(config).timeline("a", 0, 2**62, 10)
        # Not a performance target: without the read timeout this waits minutes.
        assert time.monotonic() - started < 30
    finally:
        listener.close()
        for connection in held:
            connection.close()
    assert held, "the request reached the endpoint"
