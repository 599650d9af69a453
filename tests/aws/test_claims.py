"""How the AWS engine stores a contested event once: claims, void frames, takeovers.

Each test stages the interleaving it is about at botocore's before-call hook: another
request runs, or the clock jumps, just before one of this request's calls goes out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_requests import RequestLog

from pik import frames
from pik.domain.instants import now_us, parse_instant
from pik.domain.outcome import Outcome, Status
from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws import engine as aws_engine
from pik.engines.aws.engine import LEASE_US
from pik.services.ingest import ingest_batch
from pik.storage_errors import StoreUnavailableError

MakeEvent = Callable[..., bytes]
NOVEMBER = (parse_instant("2026-11-01T00:00:00Z"), parse_instant("2026-12-01T00:00:00Z"))


def _objects(engine: AwsEngine) -> list[str]:
    s3: Any = engine._clients.s3
    listed = s3.list_objects_v2(Bucket=engine.config.bucket, Prefix="raw/")
    return sorted(entry["Key"] for entry in listed.get("Contents", []))


def _object(engine: AwsEngine, key: str) -> bytes:
    s3: Any = engine._clients.s3
    data: bytes = s3.get_object(Bucket=engine.config.bucket, Key=key)["Body"].read()
    return data


def _frames(data: bytes) -> list[frames.Frame]:
    found = list(frames.scan(data, len(frames.SEGMENT_MAGIC), len(data)))
    assert all(not isinstance(frame, int) for frame in found), "a corrupt frame"
    return [frame for frame in found if not isinstance(frame, int)]


def dies_at_put() -> Callable[[int, str, str], str | None]:
    """A request that dies at its PUT: that call and every later one fails."""
    dead: list[str] = []

    def dies(_n: int, _service: str, operation: str) -> str | None:
        if operation == "PutObject":
            dead.append(operation)
        return "SlowDown" if dead else None

    return dies


def _kinds(data: bytes) -> list[str]:
    return [chr(frame.kind) for frame in _frames(data)]


def test_a_claim_lost_to_a_racing_request_leaves_a_void_frame_and_answers_duplicate(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """The racer claims the event between this request's id lookup and its claims: this
    request's object keeps the event's place as a void frame (offsets stay valid, no byte
    of the event stored twice), and the event is a DUPLICATE of the racer's copy."""
    racer = AwsEngine(aws_config)
    engine = AwsEngine(aws_config, session=log.session())
    own, contested = make_event(entity_id="mine"), make_event(entity_id="race")
    raced: list[list[Outcome]] = []

    def race(_n: int, _service: str, operation: str) -> None:
        if operation == "TransactWriteItems" and not raced:
            raced.append(ingest_batch(racer, [contested], "racer"))

    log.fail = race
    mine, theirs = ingest_batch(engine, [own, contested], "slow")
    assert raced[0][0].status == Status.ACCEPTED
    assert (mine.status, theirs.status) == (Status.ACCEPTED, Status.DUPLICATE)
    assert theirs.event_id == raced[0][0].event_id

    kept = engine.event(mine.event_id or b"")
    stored = engine.event(theirs.event_id or b"")
    assert kept is not None and stored is not None and kept.segment != stored.segment
    data = _object(engine, kept.segment)
    assert _kinds(data) == ["E", "V", "B"]
    assert contested not in data and engine.read_raw(kept) == own
    (void,) = [f for f in _frames(data) if f.kind == frames.VOID]
    assert void.end - void.offset == len(frames.event_frame(0, "slow", contested)[0])
    assert engine.read_raw(stored) == contested and stored.duplicate_count == 1
    assert engine.verify().problems == ()
    assert engine.counts()["events"] == 2


def commit_throttled() -> Callable[[int, str, str], str | None]:
    """A request whose commit is throttled: its claims (one transaction) and, after the
    failure, its release get through. It fails, and nothing is acknowledged."""
    transactions: list[str] = []

    def fails(_n: int, _service: str, operation: str) -> str | None:
        if operation != "TransactWriteItems":
            return None
        transactions.append(operation)
        return "ThrottlingException" if len(transactions) == 2 else None

    return fails


def failed_after_writing(engine: AwsEngine, log: RequestLog, events: list[bytes]) -> str:
    """Ingest ``events`` so that the object is written and the commit fails; its key."""
    before = set(_objects(engine))
    log.fail = commit_throttled()
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "fails")
    log.fail = None
    (written,) = set(_objects(engine)) - before
    return written


def spread(make_event: MakeEvent, count: int, tag: str) -> list[bytes]:
    return [
        make_event(entity_id=f"{tag}-{i % 3}", payload={"n": i, "pad": "x" * 300})
        for i in range(count)
    ]


def check_stored_in(
    engine: AwsEngine, events: list[bytes], outcomes: list[Outcome], key: str
) -> None:
    for raw, outcome in zip(events, outcomes, strict=True):
        record = engine.event(outcome.event_id or b"")
        assert record is not None and engine.read_raw(record) == raw
        assert record.segment == key


def test_a_retry_points_at_the_bytes_a_failed_request_wrote_instead_of_writing_them_again(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """The object is written, then the commit is throttled: the request fails (nothing
    acknowledged) and marks its groups abandoned with their bytes written. A retry takes
    the claims over pointing at those bytes; only what is new is written, and a retry of
    nothing new writes no object at all."""
    engine = AwsEngine(aws_config, session=log.session())
    events = spread(make_event, 30, "reuse")
    first = failed_after_writing(engine, log, events)
    assert engine.counts()["events"] == 0

    log.clear()
    late = make_event(entity_id="reuse-new")
    outcomes = ingest_batch(engine, [*events[:20], late], "retry")
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert log.by_operation()["s3:PutObject"] == 1
    (second,) = set(_objects(engine)) - {first}
    check_stored_in(engine, events[:20], outcomes[:20], first)
    check_stored_in(engine, [late], outcomes[20:], second)
    assert _kinds(_object(engine, second)) == ["E", "B"]

    log.clear()
    rest = ingest_batch(engine, events[20:], "rest")
    assert {o.status for o in rest} == {Status.ACCEPTED}
    assert log.by_operation()["s3:PutObject"] == 0 and set(_objects(engine)) == {first, second}
    check_stored_in(engine, events[20:], rest, first)

    assert engine.verify().problems == ()  # no unindexed copy left behind
    assert engine.counts()["events"] == 31
    assert sum(w.count for w in engine.coverage("day", *NOVEMBER, None, None)) == 31
    assert ingest_batch(engine, events[:1], "again")[0].status == Status.DUPLICATE


def test_a_retry_long_after_writes_the_bytes_again_rather_than_point_at_old_ones(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """A retry hours later (a dead-lettered batch redriven, say) stores the bytes anew: with
    a retention set, the failed request's object expires on its own schedule, and bytes
    acknowledged now must not be gone already or before their own retention."""
    now = [now_us()]
    engine = AwsEngine(aws_config, session=log.session(), clock=lambda: now[0])
    events = spread(make_event, 6, "old-bytes")
    first = failed_after_writing(engine, log, events)

    now[0] += aws_engine.REUSE_BYTES_US + 1
    log.clear()
    outcomes = ingest_batch(engine, events, "redriven")
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert log.by_operation()["s3:PutObject"] == 1
    (second,) = set(_objects(engine)) - {first}
    check_stored_in(engine, events, outcomes, second)
    assert engine.counts()["events"] == 6


def test_claims_taken_over_twice_still_point_at_the_first_bytes(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """A takeover that fails in turn (its claims name the object of their bytes and, apart,
    the request committing them) is taken over again, still without a second copy."""
    engine = AwsEngine(aws_config, session=log.session())
    events = spread(make_event, 12, "chain")
    first = failed_after_writing(engine, log, events)
    log.fail = commit_throttled()  # it has nothing to put; its commit is throttled
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "fails-again")
    log.fail = None
    assert _objects(engine) == [first]
    outcomes = ingest_batch(engine, events, "third")
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    check_stored_in(engine, events, outcomes, first)
    assert _objects(engine) == [first]
    assert engine.verify().problems == ()
    assert engine.counts()["events"] == 12


def test_two_requests_taking_over_one_claim_store_it_once(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """Two retries of a failed request race for its abandoned claims: one takes them over
    and commits; the other's takeover is refused, and its events are DUPLICATEs."""
    engine = AwsEngine(aws_config, session=log.session())
    events = spread(make_event, 8, "twice")
    first = failed_after_writing(engine, log, events)
    rival = AwsEngine(aws_config)
    raced: list[list[Outcome]] = []

    def race(_n: int, _service: str, operation: str) -> None:
        if operation == "TransactWriteItems" and not raced:
            raced.append(ingest_batch(rival, events, "rival"))

    log.fail = race
    outcomes = ingest_batch(engine, events, "slow")
    log.fail = None
    assert {o.status for o in raced[0]} == {Status.ACCEPTED}
    assert {o.status for o in outcomes} == {Status.DUPLICATE}
    check_stored_in(engine, events, raced[0], first)
    assert _objects(engine) == [first]
    assert engine.verify().problems == ()
    assert engine.counts()["events"] == 8
    record = engine.event(outcomes[0].event_id or b"")
    assert record is not None and record.duplicate_count == 1


def test_a_commit_after_its_claims_were_taken_over_fails_and_nothing_counts_twice(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """A request stalls between its object and its commit for longer than the lease; a
    later arrival takes its claim over and stores the event (pointing at the bytes it
    finds). The stalled commit is then refused (503, never acknowledged), and the event is
    counted once."""
    now = [now_us()]
    stalled = AwsEngine(aws_config, session=log.session(), clock=lambda: now[0])
    taker = AwsEngine(aws_config, clock=lambda: now[0])
    raw = make_event(entity_id="late")
    put: list[str] = []
    taken: list[list[Outcome]] = []

    def stall(_n: int, _service: str, operation: str) -> None:
        if operation == "PutObject":
            put.append(operation)
        elif operation == "TransactWriteItems" and put and not taken:
            now[0] += LEASE_US + 1
            taken.append(ingest_batch(taker, [raw], "taker"))

    log.fail = stall
    with pytest.raises(StoreUnavailableError, match="taken over"):
        ingest_batch(stalled, [raw], "stalled")
    log.fail = None
    (outcome,) = taken[0]
    assert outcome.status == Status.ACCEPTED
    record = stalled.event(outcome.event_id or b"")
    assert record is not None and stalled.read_raw(record) == raw
    assert [e.event_id for e in stalled.timeline("late", 0, 2**62, 10)] == [outcome.event_id]
    assert stalled.counts()["events"] == 1
    assert sum(w.count for w in stalled.coverage("hour", *NOVEMBER, None, None)) == 1
    # The taker found the stalled request's bytes and pointed at them: one copy.
    assert _objects(stalled) == [record.segment]
    assert stalled.verify().problems == ()
    assert ingest_batch(stalled, [raw], "retry")[0].status == Status.DUPLICATE


def test_an_entitys_first_and_last_event_ignore_claims_not_committed(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """Claims of a request that died before its commit sit in the timeline index before
    and after the entity's one stored event; the entity listing reports that event only."""
    engine = AwsEngine(aws_config, session=log.session())
    early, late = (
        make_event(entity_id="edge", event_time=f"2026-11-01T{h}:00:00Z") for h in ("09", "11")
    )
    log.fail = dies_at_put()
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, [early, late], "dies")
    log.fail = None
    stored = make_event(entity_id="edge", event_time="2026-11-01T10:00:00Z")
    assert ingest_batch(engine, [stored], "lives")[0].status == Status.ACCEPTED
    (entity,) = engine.entities("edge", None, 10, None)
    ten = parse_instant("2026-11-01T10:00:00Z")
    assert (entity.first_event_us, entity.last_event_us) == (ten, ten)


def test_a_claim_never_committed_blocks_its_event_until_the_lease_runs_out(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that dies between its claims and its object, unable even to release them,
    leaves claims: until their lease runs out another arrival is unavailable (never
    DUPLICATE of bytes that do not exist); then it takes them over and stores it once."""
    monkeypatch.setattr(aws_engine, "CLAIM_WAIT_S", 0.2)
    now = [now_us()]
    engine = AwsEngine(aws_config, session=log.session(), clock=lambda: now[0])
    raw = make_event(entity_id="stale")
    log.fail = dies_at_put()  # it cannot even release its claims
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, [raw], "dies")
    log.fail = None
    assert engine.timeline("stale", 0, 2**62, 10) == []
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, [raw], "too-soon")
    now[0] += LEASE_US + 1
    report = engine.verify()
    assert report.ok and {p.kind for p in report.problems} == {"stale_claim"}
    (outcome,) = ingest_batch(engine, [raw], "later")
    assert outcome.status == Status.ACCEPTED
    record = engine.event(outcome.event_id or b"")
    assert record is not None and engine.read_raw(record) == raw
    assert [e.event_id for e in engine.timeline("stale", 0, 2**62, 10)] == [outcome.event_id]
    assert engine.counts()["events"] == 1
    assert ingest_batch(engine, [raw], "again")[0].status == Status.DUPLICATE
    assert engine.verify().problems == ()


@pytest.mark.parametrize("fails_at", ["PutObject", "TransactWriteItems"])
def test_an_unexpected_failure_after_claiming_releases_the_claims_too(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent, fails_at: str
) -> None:
    """Not only an outage: any failure between the claims and the commit (here an error
    the engine does not expect, at the object or at the commit) marks the claims
    abandoned, so the producer's retry stores the event at once instead of meeting 503s
    until the lease runs out."""
    engine = AwsEngine(aws_config, session=log.session())
    raw = make_event(entity_id=f"unexpected-{fails_at}")
    transactions: list[str] = []

    def fails(_n: int, _service: str, operation: str) -> str | None:
        if operation == "TransactWriteItems":
            transactions.append(operation)
        if operation == fails_at and (fails_at == "PutObject" or len(transactions) == 2):
            return "ValidationException"
        return None

    log.fail = fails
    with pytest.raises(Exception, match="ValidationException"):
        ingest_batch(engine, [raw], "fails")
    log.fail = None
    (outcome,) = ingest_batch(engine, [raw], "retry")
    assert outcome.status == Status.ACCEPTED
    record = engine.event(outcome.event_id or b"")
    assert record is not None and engine.read_raw(record) == raw
    assert engine.counts()["events"] == 1
    assert engine.verify().problems == ()


def test_after_the_lease_a_takeover_finds_bytes_a_request_wrote_before_it_died(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """A request writes its object and dies before it can commit or even say it wrote it:
    once the lease has run out, the next arrival finds the bytes in S3 (they hash right)
    and points at them, so no second copy is written."""
    now = [now_us()]
    engine = AwsEngine(aws_config, session=log.session(), clock=lambda: now[0])
    events = spread(make_event, 10, "died")
    put: list[str] = []

    def dies_after_put(_n: int, _service: str, operation: str) -> str | None:
        if put:
            return "SlowDown"
        if operation == "PutObject":
            put.append(operation)
        return None

    log.fail = dies_after_put
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "dies")
    log.fail = None
    (first,) = _objects(engine)
    now[0] += LEASE_US + 1
    log.clear()
    outcomes = ingest_batch(engine, events, "later")
    assert {o.status for o in outcomes} == {Status.ACCEPTED}
    assert log.by_operation()["s3:PutObject"] == 0
    # Only the span of the events sought is read, never a whole (possibly huge) object.
    (read,) = [params for _, op, params in log.calls if op == "GetObject"]
    assert read["Range"].startswith("bytes=") and read["Key"] == first
    check_stored_in(engine, events, outcomes, first)
    assert engine.verify().problems == ()
    assert engine.counts()["events"] == 10


def _transactions(log: RequestLog) -> list[list[dict[str, Any]]]:
    return [p["TransactItems"] for _, op, p in log.calls if op == "TransactWriteItems"]


def test_a_refused_first_claim_releases_only_the_groups_it_tried(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent
) -> None:
    """Nothing was claimed past the refused transaction: the release writes no abandon
    item for groups whose claims were never sent (each would be one more write, on a table
    that is probably throttling)."""
    engine = AwsEngine(aws_config, session=log.session())
    events = [make_event(entity_id=f"first-{i:03d}") for i in range(300)]
    sent: list[str] = []

    def throttled(_n: int, _s: str, operation: str) -> str | None:
        if operation == "TransactWriteItems":
            sent.append(operation)
            return "ThrottlingException" if len(sent) == 1 else None
        return None

    log.fail = throttled
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "x")
    claims, *releases = _transactions(log)
    tried = {int(a["Put"]["Item"]["grp"]["N"]) for a in claims if "Put" in a}
    released = {int(a["Update"]["Key"]["pk"]["S"].rsplit("#", 1)[1]) for r in releases for a in r}
    assert released == tried and len(tried) < 4, "a batch of four groups"
    log.fail = None
    assert {o.status for o in ingest_batch(engine, events, "x")} == {Status.ACCEPTED}


def test_a_commit_applied_but_unanswered_does_not_block_the_other_groups(
    aws_config: AwsConfig, log: RequestLog, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first group's commit is applied but its answer is lost. The release of all the
    groups is refused for that one (it is committed); the others are released all the same,
    so an immediate retry stores the rest and finds the committed ones duplicates."""
    from botocore.awsrequest import AWSResponse

    monkeypatch.setattr(aws_engine, "CLAIM_WAIT_S", 0.2)
    events = [make_event(entity_id=f"lost-{i}") for i in range(300)]
    answers_lost: list[int] = []

    def lose_answer(model: Any, params: dict[str, Any], **_: Any) -> Any:
        request = json.loads(params["body"])
        first = request["TransactItems"][0]
        is_commit = "Put" in first and first["Put"]["Item"]["sk"]["S"] == "B"
        if not is_commit or answers_lost:
            return None
        answers_lost.append(1)
        boto3.client("dynamodb", region_name=aws_config.region).transact_write_items(**request)
        return AWSResponse("https://aws.invalid", 500, {}, None), {
            "Error": {"Code": "InternalServerError", "Message": "answer lost"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        }

    session = log.session()
    session.events.register("before-call.dynamodb.TransactWriteItems", lose_answer)
    engine = AwsEngine(aws_config, session=session)
    with pytest.raises(StoreUnavailableError):
        ingest_batch(engine, events, "x")
    assert answers_lost == [1]
    outcomes = ingest_batch(engine, events, "retry")
    statuses = {o.status for o in outcomes}
    assert statuses == {Status.ACCEPTED, Status.DUPLICATE}
    assert engine.counts()["events"] == 300 and engine.verify().problems == ()
