"""Replay on the AWS engine, on the template's stack in moto: the ledger in the index table,
the replay function's handler (with the function's own environment) sending to the
replay queue, pauses, faults, confirm-once and fail-closed audit.

One stack for the module (creating it is the slow part); each test replays entities of
its own and reads only its own replay's messages.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from aws_requests import CapacityCancellations, RequestLog
from replay_stack import (
    REGION,
    as_function,
    check_complete,
    delivered,
    ingest,
    purge,
    receive_all,
    stack_in_moto,
    work_event,
    work_items,
)

from pik.domain import replay
from pik.domain.instants import format_instant as event_time
from pik.domain.instants import now_us, parse_instant
from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun, Selection
from pik.engines.aws import AwsConfig, AwsEngine, shapes
from pik.engines.aws.discovery import StackNotFoundError
from pik.engines.aws.ledger import AwsReplayLedger
from pik.engines.aws.replay_backend import AwsReplayBackend
from pik.lambdas import replay as replay_function
from pik.services.replay import SYSTEM_CLOCK, Clock, confirm_replay, plan_replay
from pik.storage_errors import StoreUnavailableError

STACK = "pik-replay"
START = parse_instant("2026-11-01T00:00:00Z")
END = parse_instant("2026-11-02T00:00:00Z")
MakeEvent = Callable[..., bytes]
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture(scope="module")
def stack() -> Iterator[AwsConfig]:
    """The template's stack in moto, shared by the module's tests."""
    with stack_in_moto(STACK) as config:
        yield config


@pytest.fixture
def operator(stack: AwsConfig) -> Iterator[AwsReplayBackend]:
    """What `pik --stack` replays through: found by the stack's name alone."""
    backend = AwsReplayBackend.open(STACK, region=REGION)
    purge(stack)
    yield backend
    backend.close()


@pytest.fixture
def store(operator: AwsReplayBackend) -> AwsEngine:
    engine = operator.store
    assert isinstance(engine, AwsEngine)
    return engine


def as_replay_function(
    monkeypatch: pytest.MonkeyPatch, remaining_ms: int = 900_000, stack: str = STACK
) -> Any:
    """Take on the environment CloudFormation gave the replay function."""
    return as_function(monkeypatch, stack, remaining_ms=remaining_ms)


def function_handler(
    log: RequestLog | None = None, clock: Clock = SYSTEM_CLOCK, **config: Any
) -> Handler:
    """The replay function's handler, its backend built from the environment as in Lambda
    (through ``log``'s session when given, to count or fail requests)."""

    def backend() -> AwsReplayBackend:
        settings = replace(AwsConfig.from_env(), **config)
        return AwsReplayBackend(settings, session=log.session() if log else None)

    return replay_function.make_handler(backend, clock)


def confirmed(
    operator: AwsReplayBackend,
    entities: list[str],
    target: str = "queue",
    window: tuple[int, int] = (START, END),
    rate: int = replay.MAX_RATE,
) -> ReplayRun:
    selection = Selection.build(entities, *window, operator.check_target(target))
    plan = plan_replay(operator.store, operator.ledger, selection, operator.who)
    return confirm_replay(operator.store, operator.ledger, plan.plan_id, operator.who, rate)


def started(
    operator: AwsReplayBackend, store: AwsEngine, make_event: MakeEvent, entity: str, count: int
) -> ReplayRun:
    """A run of ``count`` events of one entity, a second apart: stored, planned, confirmed
    and handed to the replay function (its work item waits in the work queue)."""
    events = [
        make_event(entity_id=entity, event_time=event_time(START + i * 1_000_000))
        for i in range(count)
    ]
    ingest(store, events)
    run = confirmed(operator, [entity])
    operator.start(run)
    return run


# --- the whole path ---------------------------------------------------------------------


def test_a_confirmed_replay_is_sent_by_the_function_into_the_replay_queue(
    operator: AwsReplayBackend,
    store: AwsEngine,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    times = ["2026-11-01T00:00:00Z", "2026-11-01T09:30:00.5Z", "2026-11-01T23:59:59.999999Z"]
    events = [make_event(entity_id=f"e2e-{i % 2}", event_time=t) for i, t in enumerate(times)]
    events += [make_event(entity_id="e2e-0", event_time="2026-11-02T00:00:00Z")]  # the end
    ingest(store, events)
    run = confirmed(operator, ["e2e-0", "e2e-1"])
    assert run.total == 3

    started = operator.start(run)
    assert (started.replay_id, started.status, started.sent) == (run.replay_id, "running", 0)
    (item,) = work_items(stack)
    assert json.loads(item["Body"]) == {"replay_id": run.replay_id}

    context = as_replay_function(monkeypatch)
    log = RequestLog()
    answer = function_handler(log)(work_event([item]), context)
    assert answer == {"batchItemFailures": []}
    check_complete(store, delivered(stack, run.replay_id), 3)
    assert log.by_operation()["sqs:SendMessageBatch"] == 1
    after = operator.ledger.run(run.replay_id)
    assert after is not None and (after.status, after.sent) == ("completed", 3)
    assert work_items(stack) == []  # done: no continuation
    actions = [a.action for a in operator.ledger.audit_log(run.started_us, 100)]
    assert actions[:1] == ["confirmed"] and actions[-1] == "completed"
    assert operator.who.startswith("arn:aws:")

    # SQS delivers at least once: the same item again sends nothing and refuses nobody.
    assert function_handler(log)(work_event([item]), context) == {"batchItemFailures": []}
    assert log.by_operation()["sqs:SendMessageBatch"] == 1
    again = [a.action for a in operator.ledger.audit_log(run.started_us, 100)]
    assert again == actions


@pytest.mark.slow
def test_a_window_larger_than_a_page_is_planned_and_sent_whole(
    aws_config: AwsConfig, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,500 events of one entity at sub-second times, events exactly at the window's
    start and end: every one in [start, end) is planned and sent, none outside. (A stack
    of its own: the other tests should not wait on a table this large. The function
    pauses every 1,000 messages and the queue is read between its invocations, as moto
    slows down with every message a queue holds.)"""
    operator = AwsReplayBackend.open("pik-contract", region=REGION)
    store = operator.store
    assert isinstance(store, AwsEngine)
    start, end = START + 3_600_000_000, START + 7_200_000_000
    inside = [start + i * 1_437_017 for i in range(2_499)] + [end - 1]
    outside = [start - 1, end, end + 1]
    events = [
        make_event(entity_id="big", event_time=event_time(us), payload={"n": i})
        for i, us in enumerate(inside + outside)
    ]
    ingest(store, events)
    run = confirmed(operator, ["big"], window=(start, end))
    assert run.total == len(inside) == 2_500
    operator.start(run)
    log = RequestLog()
    handler = function_handler(log)
    messages: dict[int, dict[str, Any]] = {}
    for _ in range(20):
        items = work_items(aws_config)
        if not items:
            break
        context = as_replay_function(monkeypatch, stack="pik-contract")
        asked = 0

        def remaining() -> int:
            nonlocal asked
            asked += 1
            return 120_000 if asked <= 100 else 30_000

        context.get_remaining_time_in_millis = remaining  # type: ignore[method-assign]
        assert handler(work_event(items), context) == {"batchItemFailures": []}
        for seq, message in delivered(aws_config, run.replay_id).items():
            assert seq not in messages
            messages[seq] = message
    check_complete(store, messages, 2_500)
    assert messages[1]["event_time"] == event_time(start)
    assert messages[2_500]["event_time"] == event_time(end - 1)
    assert log.by_operation()["sqs:SendMessageBatch"] == 250  # one request per 10 messages
    done = operator.ledger.run(run.replay_id)
    assert done is not None and (done.status, done.sent) == ("completed", 2_500)


def test_a_run_pauses_before_the_deadline_and_continues_itself(
    operator: AwsReplayBackend,
    store: AwsEngine,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = started(operator, store, make_event, "pause", 45)
    context = as_replay_function(monkeypatch)
    asked = 0

    def remaining() -> int:  # asked for the run's hold, then before each batch
        nonlocal asked
        asked += 1
        return 120_000 if asked <= 3 else 30_000  # time runs out after the second batch

    context.get_remaining_time_in_millis = remaining  # type: ignore[method-assign]
    handler = function_handler()
    assert handler(work_event(work_items(stack)), context) == {"batchItemFailures": []}
    paused = operator.ledger.run(run.replay_id)
    assert paused is not None and (paused.status, paused.sent) == ("running", 20)
    (continuation,) = work_items(stack)
    assert json.loads(continuation["Body"]) == {"replay_id": run.replay_id}

    context = as_replay_function(monkeypatch)
    assert handler(work_event([continuation]), context) == {"batchItemFailures": []}
    check_complete(store, delivered(stack, run.replay_id), 45)
    done = operator.ledger.run(run.replay_id)
    assert done is not None and (done.status, done.sent) == ("completed", 45)
    assert work_items(stack) == []
    resumed = [a for a in operator.ledger.audit_log(run.started_us, 100) if a.action == "resumed"]
    assert [a.detail for a in resumed if a.replay_id == run.replay_id] == [{"from": 20}]


def test_a_run_another_invocation_is_sending_is_put_back_for_when_its_hold_ends(
    operator: AwsReplayBackend,
    store: AwsEngine,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A work item delivered twice, or a resume while the run is being sent: the second
    invocation finds the run held by the first, sends nothing, and puts the item back for
    when that hold ends; the run is then sent once, and its hold released."""
    run = started(operator, store, make_event, "held", 15)
    now = now_us()  # the function's clock stands still here: the hold ends in 1 s of it
    assert operator.hold(run.replay_id, "first-invocation", now + 1_000_000, now) is None
    assert operator.hold(run.replay_id, "second", now + 900_000_000, now) == now + 1_000_000

    log = RequestLog()
    handler = function_handler(log, Clock(now_us=lambda: now))
    context = as_replay_function(monkeypatch)
    assert handler(work_event(work_items(stack)), context) == {"batchItemFailures": []}
    assert delivered(stack, run.replay_id) == {}
    (put_back,) = [p for _, op, p in log.calls if op == "SendMessage"]
    assert put_back["DelaySeconds"] == 1
    held = operator.ledger.run(run.replay_id)
    assert held is not None and (held.status, held.sent) == ("running", 0)

    time.sleep(1.2)  # SQS delays the item put back by 1 s of real time
    (again,) = work_items(stack)
    later = function_handler(clock=Clock(now_us=lambda: now + 2_000_000))
    assert later(work_event([again]), as_replay_function(monkeypatch)) == {"batchItemFailures": []}
    check_complete(store, delivered(stack, run.replay_id), 15)
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=stack.table, Key=shapes.run_key(run.replay_id), ConsistentRead=True
    )["Item"]
    assert item["st"]["S"] == "completed" and "sb" not in item and "su" not in item


# --- faults ------------------------------------------------------------------------------


def test_a_failing_send_is_retried_and_the_retry_completes_the_run(
    operator: AwsReplayBackend,
    store: AwsEngine,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = started(operator, store, make_event, "faulty", 35)
    (item,) = work_items(stack)
    context = as_replay_function(monkeypatch)
    log = RequestLog()
    sends = 0

    def third_send_fails(_n: int, _service: str, operation: str) -> str | None:
        nonlocal sends
        if operation == "SendMessageBatch":
            sends += 1
            return "ServiceUnavailable" if sends >= 3 else None
        return None

    log.fail = third_send_fails
    handler = function_handler(log)
    answer = handler(work_event([item]), context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": item["MessageId"]}]}
    stopped = operator.ledger.run(run.replay_id)
    assert stopped is not None and (stopped.status, stopped.sent) == ("running", 20)
    retry = [p for s, o, p in log.calls if o == "ChangeMessageVisibility"]
    assert [p["VisibilityTimeout"] for p in retry] == [60]  # sooner than the queue's 30 min

    log.fail = None
    assert handler(work_event([item]), context) == {"batchItemFailures": []}
    check_complete(store, delivered(stack, run.replay_id), 35)
    done = operator.ledger.run(run.replay_id)
    assert done is not None and (done.status, done.sent) == ("completed", 35)


def test_entries_sqs_fails_are_sent_again_then_the_send_gives_up(
    operator: AwsReplayBackend, stack: AwsConfig
) -> None:
    log = RequestLog()
    failing: set[str] = {"1", "3"}
    attempts: list[list[str]] = []

    def partly_failed(model: Any, params: dict[str, Any], **_: Any) -> Any:
        if model.name != "SendMessageBatch" or not failing:
            return None
        from botocore.awsrequest import AWSResponse

        entries = json.loads(params["body"])["Entries"]  # the request as it would go out
        ids = [e["Id"] for e in entries]
        attempts.append(ids)
        failed = [i for i in ids if i in failing]
        sent = [e for e in entries if e["Id"] not in failing]
        if sent:  # deliver the others for real
            boto3.client("sqs", region_name=REGION).send_message_batch(
                QueueUrl=str(stack.replay_queue_url), Entries=sent
            )
        return AWSResponse("https://aws.invalid", 200, {}, None), {
            "Successful": [{"Id": e["Id"], "MessageId": e["Id"]} for e in sent],
            "Failed": [
                {"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "x"}
                for i in failed
            ],
        }

    session = log.session()
    session.events.register("before-call.sqs.SendMessageBatch", partly_failed)
    backend = AwsReplayBackend(stack, session=session, who="tester")
    sink = backend.sink_for("queue")
    sink._pause = lambda _s: None  # type: ignore[attr-defined]
    messages = [json.dumps({"replay_id": "x" * 32, "seq": i}).encode() for i in range(5)]

    with pytest.raises(StoreUnavailableError):
        sink.send(messages)
    assert attempts == [["0", "1", "2", "3", "4"], ["1", "3"], ["1", "3"], ["1", "3"]]

    failing.clear()  # SQS recovers: the next send goes through
    attempts.clear()
    sink.send(messages)
    received = [json.loads(m["Body"])["seq"] for m in receive_all(str(stack.replay_queue_url))]
    assert sorted(received) == [0, 0, 1, 2, 2, 3, 4, 4]  # 0, 2, 4 were sent twice


def test_two_operators_confirming_one_plan_start_one_run(
    operator: AwsReplayBackend, store: AwsEngine, make_event: MakeEvent
) -> None:
    ingest(store, [make_event(entity_id="race", event_time="2026-11-01T01:00:00Z")])
    selection = Selection.build(["race"], START, END, "queue")
    plan = plan_replay(store, operator.ledger, selection, "planner")
    barrier = threading.Barrier(2)
    outcomes: list[ReplayRun | ReplayError] = []

    def confirm(who: str) -> None:
        backend = AwsReplayBackend.open(STACK, region=REGION)
        barrier.wait()
        try:
            outcomes.append(confirm_replay(backend.store, backend.ledger, plan.plan_id, who))
        except ReplayError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=confirm, args=(f"op-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = [o for o in outcomes if isinstance(o, ReplayRun)]
    refusals = [o for o in outcomes if isinstance(o, ReplayError)]
    assert len(runs) == 1 and [r.code for r in refusals] == ["plan_already_confirmed"]
    listed = [r for r in operator.ledger.runs(1_000) if r.plan_id == plan.plan_id]
    assert [r.replay_id for r in listed] == [runs[0].replay_id]
    audit = [
        a for a in operator.ledger.audit_log(plan.created_us, 1_000) if a.plan_id == plan.plan_id
    ]
    assert sorted(a.action for a in audit) == ["confirmed", "planned", "refused"]


def target_queue(name: str, **attributes: str) -> tuple[str, str]:
    """A queue beside the stack, as a deployer would list it: its URL and ARN."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def started_to(stack: AwsConfig, arn: str, entity: str, rate: int = replay.MAX_RATE) -> ReplayRun:
    """A run of ``entity``'s events to the listed queue ``arn``, handed to the function."""
    listed = AwsReplayBackend(replace(stack, replay_targets=(arn,)), who="op")
    run = confirmed(listed, [entity], target=f"sqs:{arn}", rate=rate)
    listed.start(run)
    return run


def send_to(stack: AwsConfig, arn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function, allowed the listed queue ``arn``, takes the work queue's items."""
    context = as_replay_function(monkeypatch)
    handler = function_handler(replay_targets=(arn,))
    assert handler(work_event(work_items(stack)), context) == {"batchItemFailures": []}


def failure_of(operator: AwsReplayBackend, run: ReplayRun) -> tuple[ReplayRun, list[AuditRecord]]:
    """The run as the ledger has it now, and its `failed` audit records."""
    now = operator.ledger.run(run.replay_id)
    assert now is not None
    audit = operator.ledger.audit_log(run.started_us, 100)
    return now, [a for a in audit if a.action == "failed" and a.replay_id == run.replay_id]


def one_event_plan(
    operator: AwsReplayBackend, store: AwsEngine, make_event: MakeEvent, entity: str
) -> Plan:
    """A plan of one stored event of ``entity``, made by another operator."""
    ingest(store, [make_event(entity_id=entity, event_time="2026-11-01T01:00:00Z")])
    selection = Selection.build([entity], START, END, "queue")
    return plan_replay(store, operator.ledger, selection, "planner")


def test_a_confirmation_whose_audit_cannot_be_written_starts_nothing(
    operator: AwsReplayBackend, store: AwsEngine, stack: AwsConfig, make_event: MakeEvent
) -> None:
    plan = one_event_plan(operator, store, make_event, "closed")
    log = RequestLog()
    log.fail = lambda _n, _s, operation: (
        "ThrottlingException" if operation == "TransactWriteItems" else None
    )
    failing = AwsReplayBackend(stack, session=log.session(), who="op")
    with pytest.raises(StoreUnavailableError):
        confirm_replay(failing.store, failing.ledger, plan.plan_id, failing.who)
    assert [r for r in operator.ledger.runs(1_000) if r.plan_id == plan.plan_id] == []
    assert work_items(stack) == [] and delivered(stack, "") == {}
    # Nothing was recorded, so the plan can still be confirmed once AWS recovers.
    run = confirm_replay(store, operator.ledger, plan.plan_id, "op")
    assert run.status == "running"


def test_a_confirmation_over_provisioned_capacity_is_tried_again(
    operator: AwsReplayBackend, store: AwsEngine, stack: AwsConfig, make_event: MakeEvent
) -> None:
    plan = one_event_plan(operator, store, make_event, "busy")
    log = RequestLog()
    log.fail = over_capacity = CapacityCancellations(0, 2)
    busy = AwsReplayBackend(stack, session=log.session(), who="op")
    run = confirm_replay(busy.store, busy.ledger, plan.plan_id, busy.who)
    assert run.status == "running" and over_capacity.cancelled == 2


def test_a_message_the_target_refuses_fails_the_run_and_is_not_retried(
    operator: AwsReplayBackend,
    store: AwsEngine,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A queue the deployer listed, whose MaximumMessageSize is smaller than a message."""
    small_url, arn = target_queue("small-target", MaximumMessageSize="1024")
    events = [
        make_event(entity_id="wide", event_time="2026-11-01T01:00:00Z", payload={"n": 1}),
        make_event(entity_id="wide", event_time="2026-11-01T02:00:00Z", payload={"x": "y" * 900}),
    ]
    ingest(store, events)
    run = started_to(stack, arn, "wide", rate=1)  # one message a batch
    send_to(stack, arn, monkeypatch)
    failed, ended = failure_of(operator, run)
    assert (failed.status, failed.sent, failed.detail) == ("failed", 1, "message_refused")
    (first,) = receive_all(small_url)
    assert json.loads(first["Body"])["seq"] == 1
    assert [a.outcome for a in ended] == ["message_refused"]


def test_work_items_that_cannot_succeed_are_acknowledged(
    operator: AwsReplayBackend, stack: AwsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = as_replay_function(monkeypatch)
    handler = function_handler()
    unknown = "0" * 32
    bodies = [
        "not json",
        json.dumps({"replay_id": "../../etc"}),
        json.dumps({"replay_id": unknown}),
    ]
    event = work_event(
        [
            {"MessageId": f"m{i}", "ReceiptHandle": f"h{i}", "Body": body, "MD5OfBody": ""}
            for i, body in enumerate(bodies)
        ]
    )
    assert handler(event, context) == {"batchItemFailures": []}
    refused = [a for a in operator.ledger.audit_log(0, 10_000) if a.replay_id == unknown]
    assert [(a.action, a.outcome) for a in refused] == [("refused", "replay_not_found")]
    assert delivered(stack, unknown) == {}


# --- the ledger, the sink and the backend on their own --------------------------------------


def test_the_ledger_writes_only_its_own_partitions_and_keeps_large_plans(
    operator: AwsReplayBackend, stack: AwsConfig
) -> None:
    """Every write lands under shapes.LEDGER_PARTITIONS (what IAM lets operators and the
    function write); a plan over DynamoDB's 400 KB item limit is kept in parts."""
    log = RequestLog()
    ledger = AwsReplayLedger(stack, session=log.session())
    entities = [f"{i:04d}" + "\U0001d538" * 252 for i in range(replay.MAX_ENTITIES)]  # 4-byte chars
    selection = Selection.build(entities, START, END, "queue")
    plan = replace(
        replay.make_plan(selection, [], START, "planner"),
        by_entity=tuple((e, 1) for e in entities),
    )
    assert len(json.dumps(plan.to_document(), ensure_ascii=False).encode()) > 2_000_000
    ledger.save_plan(plan, AuditRecord(START, "planner", replay.PLANNED, plan.plan_id))
    assert ledger.plan(plan.plan_id) == plan
    run = ReplayRun(
        "f" * 32, plan.plan_id, "queue", replay.RUNNING, 0, 0, 5, "op", START + 1, START + 1
    )
    ledger.confirm(plan.plan_id, run, AuditRecord(START + 1, "op", replay.CONFIRMED, plan.plan_id))
    ledger.advance(run.replay_id, 10, START + 2)
    ledger.advance(run.replay_id, 5, START + 3)  # late: never backwards
    assert ledger.set_rate(run.replay_id, 50)  # a resume's rate
    stored = ledger.run(run.replay_id)
    assert stored is not None and (stored.sent, stored.updated_us) == (10, START + 2)
    day_later = START + 86_400_000_000 + 7
    ledger.finish(
        run.replay_id,
        replay.COMPLETED,
        day_later,
        AuditRecord(day_later, "op", "completed", plan.plan_id, run.replay_id),
    )
    ledger.finish(
        run.replay_id,
        replay.FAILED,
        day_later + 1,
        AuditRecord(day_later + 1, "op", "failed", plan.plan_id, run.replay_id),
    )
    assert (
        ledger.request_cancel(run.replay_id, AuditRecord(day_later, "op", "cancel_requested", None))
        is False
    )
    ended = ledger.run(run.replay_id)
    assert ended is not None and (ended.status, ended.updated_us) == ("completed", day_later)
    assert [r.replay_id for r in ledger.runs(1_000)].count(run.replay_id) == 1
    trail = [a for a in ledger.audit_log(START, 1_000) if a.plan_id == plan.plan_id]
    assert [a.action for a in trail] == ["planned", "confirmed", "completed"]
    assert ledger.audit_log(day_later, 1)[0].at_us == day_later  # a later day, found by its mark
    for _, operation, params in log.calls:
        if operation in ("PutItem", "UpdateItem"):
            keys = [params.get("Key") or params["Item"]]
        elif operation == "TransactWriteItems":
            keys = [
                next(iter(a.values())).get("Key") or next(iter(a.values()))["Item"]
                for a in params["TransactItems"]
            ]
        else:
            continue
        for key in keys:
            partition = key["pk"]["S"]
            assert any(fnmatch.fnmatchcase(partition, p) for p in shapes.LEDGER_PARTITIONS), (
                partition
            )
            assert not partition.startswith(("E#", "C#", "R#", "T#", "V#"))


def test_targets_on_aws_are_the_replay_queue_and_the_listed_queues(
    operator: AwsReplayBackend, stack: AwsConfig
) -> None:
    listed = "arn:aws:sqs:eu-west-1:123456789012:downstream"
    backend = AwsReplayBackend(replace(stack, replay_targets=(listed,)), who="op")
    assert backend.check_target("queue") == "queue"
    assert backend.check_target(f"sqs:{stack.replay_queue_arn}") == "queue"
    assert backend.check_target(f"sqs:{listed}") == f"sqs:{listed}"
    sink = backend.sink_for(f"sqs:{listed}")
    assert sink.queue_url == "https://sqs.eu-west-1.amazonaws.com/123456789012/downstream"
    for target in (
        "sqs:arn:aws:sqs:eu-west-1:123456789012:other",
        f"sqs:{stack.replay_queue_arn}-dlq",
        "file:/tmp/out.ndjson",
        "",
        "sqs:",
    ):
        with pytest.raises(ReplayError) as refused:
            backend.check_target(target)
        assert (refused.value.code, refused.value.status, refused.value.field) == (
            "invalid_selection",
            422,
            "target",
        )
    with pytest.raises(ReplayError):  # the stack as deployed lists none
        operator.check_target(f"sqs:{listed}")


def test_a_stack_without_the_replay_function_says_so(stack: AwsConfig) -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName="pik-old",
        TemplateBody=json.dumps(
            {
                "Resources": {"B": {"Type": "AWS::S3::Bucket"}},
                "Outputs": {
                    "IndexTableName": {"Value": stack.table},
                    "RawBucketName": {"Value": {"Ref": "B"}},
                },
            }
        ),
    )
    with pytest.raises(StackNotFoundError, match="no replay function"):
        AwsReplayBackend.open("pik-old", region=REGION)


def test_the_sink_packs_messages_into_few_requests_within_the_limits(stack: AwsConfig) -> None:
    log = RequestLog()
    backend = AwsReplayBackend(stack, session=log.session(), who="op")
    sink = backend.sink_for("queue")

    def message(seq: int, size: int, extra: str = "") -> bytes:
        return json.dumps({"replay_id": "a" * 32, "seq": seq, "raw": "x" * size + extra}).encode()

    small = [message(i, 100) for i in range(25)]
    sink.send(small[:10])
    sink.send(small[10:20])
    sink.send(small[20:])
    assert log.by_operation()["sqs:SendMessageBatch"] == 3  # one per 10 messages
    log.clear()
    large = [message(100 + i, 60_000) for i in range(10)]  # 600 KB: three requests
    huge = message(200, 600_000, "\uffff\ufffe")  # over 256 KiB: a request of its own
    sink.send([*large, huge])
    requests = [p["Entries"] for _, o, p in log.calls if o == "SendMessageBatch"]
    assert [len(r) for r in requests] == [4, 4, 2, 1]
    for entries in requests[:-1]:
        assert sum(len(e["MessageBody"].encode()) for e in entries) <= 256 * 1024
    received = [json.loads(m["Body"]) for m in receive_all(str(stack.replay_queue_url))]
    assert sorted(m["seq"] for m in received) == list(range(25)) + list(range(100, 110)) + [200]
    (last,) = (m for m in received if m["seq"] == 200)
    assert last["raw"].endswith("\uffff\ufffe")  # escaped for SQS, the same JSON string
    log.clear()
    with pytest.raises(ReplayError) as refused:
        sink.send([message(300, 10), message(301, 1_100_000)])
    assert refused.value.code == "message_too_large" and log.calls == []  # nothing sent


def test_a_target_queue_deleted_under_a_run_fails_it_audited_and_the_item_is_not_retried(
    operator: AwsReplayBackend,
    store: AwsEngine,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone_url, arn = target_queue("gone-target")
    ingest(store, [make_event(entity_id="lost", event_time="2026-11-01T01:00:00Z")])
    run = started_to(stack, arn, "lost")
    boto3.client("sqs", region_name=REGION).delete_queue(QueueUrl=gone_url)
    send_to(stack, arn, monkeypatch)
    failed, ended = failure_of(operator, run)
    assert (failed.status, failed.sent, failed.detail) == ("failed", 0, "target_unavailable")
    assert [a.outcome for a in ended] == ["target_unavailable"]
    assert "mend the queue" in ended[-1].detail["message"]


def test_a_plan_too_large_for_the_ledger_is_refused_and_audited(
    operator: AwsReplayBackend,
    store: AwsEngine,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pik.engines.aws.ledger.MAX_PLAN_BYTES", 200)
    ingest(store, [make_event(entity_id="wide", event_time="2026-11-01T01:00:00Z")])
    selection = Selection.build(["wide"], START, END, "queue")
    with pytest.raises(ReplayError) as caught:
        plan_replay(store, operator.ledger, selection, "planner")
    assert caught.value.code == "plan_too_large"
    (refusal,) = [
        a
        for a in operator.ledger.audit_log(0, 10_000)
        if a.action == replay.REFUSED and a.outcome == "plan_too_large"
    ]
    assert (refusal.outcome, refusal.plan_id, refusal.who) == ("plan_too_large", None, "planner")
    assert refusal.detail["message"] == str(caught.value)
    assert "1 entities, 1 sources" in str(caught.value)


@pytest.mark.parametrize(
    "code",
    [
        "AccessDenied",
        "KMS.DisabledException",
        "KMS.InvalidStateException",  # the key is scheduled for deletion
        "KMS.InvalidKeyUsageException",
        "KMS.NotFoundException",
        "KMS.OptInRequired",
        "AWS.SimpleQueueService.NonExistentQueue",
        "KmsAccessDenied",
    ],
)
def test_a_target_no_retry_can_mend_stops_the_send_as_unavailable(
    stack: AwsConfig, code: str
) -> None:
    # moto has no KMS-encrypted queue to refuse: the answer is put at the SDK's edge.
    log = RequestLog()
    log.fail = lambda _n, _service, operation: code if operation == "SendMessageBatch" else None
    sink = AwsReplayBackend(stack, session=log.session(), who="op").sink_for("queue")
    with pytest.raises(ReplayError) as refused:
        sink.send([json.dumps({"replay_id": "a" * 32, "seq": 1}).encode()])
    assert refused.value.code == "target_unavailable" and code in str(refused.value)
    assert log.by_operation()["sqs:SendMessageBatch"] == 1, "not retried"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AWS.SimpleQueueService.BatchRequestTooLong", "message_too_large"),  # AWS's spelling
        ("BatchRequestTooLong", "message_too_large"),  # moto's
        ("InvalidMessageContents", "message_refused"),
    ],
)
def test_a_request_sqs_refuses_as_it_reports_it_is_a_refusal(
    stack: AwsConfig, code: str, expected: str
) -> None:
    """SQS's JSON protocol reports its older query codes, which botocore passes on: a
    request too long must stop the run as refused, not fail the invocation as a bug."""
    log = RequestLog()
    log.fail = lambda _n, _service, operation: code if operation == "SendMessageBatch" else None
    sink = AwsReplayBackend(stack, session=log.session(), who="op").sink_for("queue")
    size = 300_000 if expected == "message_too_large" else 10
    message = json.dumps({"replay_id": "a" * 32, "seq": 1, "raw": "x" * size}).encode()
    with pytest.raises(ReplayError) as refused:
        sink.send([message])
    assert refused.value.code == expected
    assert log.by_operation()["sqs:SendMessageBatch"] == 1, "not retried"


def test_kms_throttling_as_sqs_reports_it_is_unavailability(stack: AwsConfig) -> None:
    log = RequestLog()
    log.fail = lambda _n, _s, op: "KMS.ThrottlingException" if op == "SendMessageBatch" else None
    sink = AwsReplayBackend(stack, session=log.session(), who="op").sink_for("queue")
    sink._pause = lambda _s: None  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailableError):
        sink.send([json.dumps({"replay_id": "a" * 32, "seq": 1}).encode()])


def test_an_entry_refused_in_a_batch_sqs_partly_took_says_what_it_took(
    stack: AwsConfig,
) -> None:
    """SQS answers each entry of a batch apart: one refused (a sender fault), it takes the
    others all the same, later ones included. The refusal says so, with the seq refused,
    since the run's count of messages sent stops at the batch's first."""

    def one_refused(model: Any, params: dict[str, Any], **_: Any) -> Any:
        if model.name != "SendMessageBatch":
            return None
        from botocore.awsrequest import AWSResponse

        entries = json.loads(params["body"])["Entries"]
        taken = [e for e in entries if json.loads(e["MessageBody"])["seq"] != 6]
        boto3.client("sqs", region_name=REGION).send_message_batch(
            QueueUrl=str(stack.replay_queue_url), Entries=taken
        )
        refused = [e["Id"] for e in entries if e not in taken]
        return AWSResponse("https://aws.invalid", 200, {}, None), {
            "Successful": [{"Id": e["Id"], "MessageId": e["Id"]} for e in taken],
            "Failed": [
                {"Id": i, "SenderFault": True, "Code": "InvalidMessageContents", "Message": "x"}
                for i in refused
            ],
        }

    session = RequestLog().session()
    session.events.register("before-call.sqs.SendMessageBatch", one_refused)
    sink = AwsReplayBackend(stack, session=session, who="op").sink_for("queue")
    messages = [json.dumps({"replay_id": "b" * 32, "seq": i}).encode() for i in range(1, 11)]
    with pytest.raises(ReplayError) as refused:
        sink.send(messages)
    assert refused.value.code == "message_refused"
    assert "message 6 was refused" in str(refused.value)
    assert "SQS took 9 other message(s)" in str(refused.value)
    received = [json.loads(m["Body"])["seq"] for m in receive_all(str(stack.replay_queue_url))]
    assert sorted(received) == [1, 2, 3, 4, 5, 7, 8, 9, 10]
