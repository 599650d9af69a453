"""Replays controlled through the stack's API, on the template's stack in moto: by `pik`
and by pik-tui's replay screen.

`pik --stack NAME replay` signs its requests (SigV4) to the stack's API, whose replay
control function writes the ledger as the principal API Gateway authenticated; the
operator's own credentials only read. A stand-in for API Gateway checks the signatures
(moto cannot invoke a function behind its API); the handler behind it is the stack's, with
the function's own environment.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api_events import api_event
from gateway import Gateway
from pilot_wait import until
from replay_stack import (
    as_function,
    check_complete,
    delivered,
    ingest,
    purge,
    stack_in_moto,
    work_event,
    work_items,
)
from textual.pilot import Pilot
from textual.widgets import Input

from pik.api.routes import MAX_BODY_BYTES, MAX_REPLAY_BODY_BYTES
from pik.domain import replay as model
from pik.domain.replay import ReplayError
from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws.ledger import AwsReplayLedger
from pik.engines.aws.replay_api import SignedApi
from pik.engines.local import LocalEngine
from pik.lambdas import api
from pik.lambdas import replay as replay_function
from pik.lambdas.store import replay_backend_from_env, store_from_env
from pik.storage_errors import StoreUnavailableError
from pik_tui.app import PikApp
from pik_tui.aws_backend import stack_replays
from pik_tui.backend import LocalBackend
from pik_tui.replaying import ReplayDesk
from pik_tui.screens.confirm import ConfirmSend
from pik_tui.screens.replay import ReplayScreen

STACK = "pik-replay-api"
OPERATOR = "arn:aws:iam::123456789012:user/operator"
READER = "arn:aws:iam::123456789012:user/reader"
WINDOW = ["--from", "2026-11-01T00:00:00Z", "--to", "2026-11-02T00:00:00Z"]
MakeEvent = Callable[..., bytes]


@pytest.fixture(scope="module")
def stack() -> Iterator[AwsConfig]:
    with stack_in_moto(STACK) as config:
        yield config


@pytest.fixture
def gateway(stack: AwsConfig, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """The replay control function behind API Gateway; `pik` finds it as the stack's API."""
    purge(stack)
    # The operator's credentials (moto's mock puts its own in the environment).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    context = as_function(monkeypatch, STACK, "ReplayControlFunctionName")
    handler = api.make_handler(store_from_env, replay_backend_from_env)
    principals = {"testing": ("testing", OPERATOR), "READER": ("reader-secret", READER)}
    with Gateway(handler, context, principals, allowed={OPERATOR}) as found:
        monkeypatch.setenv("PIK_API_URL", found.url)
        yield found


def pik(*args: str, code: int = 0) -> Any:
    from click.testing import CliRunner

    from pik.cli.main import cli

    result = CliRunner().invoke(cli, ["--stack", STACK, "--json", "replay", *args])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else result.output


def test_pik_replay_on_a_stack_goes_through_the_api_as_the_signed_caller(
    gateway: Gateway, stack: AwsConfig, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AwsEngine(stack)
    ingest(store, [make_event(entity_id="api-1", event_time="2026-11-01T03:00:00.25Z")])
    plan = pik("plan", "api-1", *WINDOW, "--target", "queue")
    assert (plan["events"], plan["created_by"]) == (1, OPERATOR)
    run = pik("run", plan["plan_id"], "--confirm")
    assert (run["status"], run["sent"], run["confirmed_by"]) == ("running", 0, OPERATOR)
    assert [e["path"] for e in gateway.requests] == [
        "/replays/plans",
        f"/replays/plans/{plan['plan_id']}/confirm",
    ]
    (item,) = work_items(stack)  # handed to the replay function by the control function
    context = as_function(monkeypatch, STACK)
    handler = replay_function.make_handler(replay_backend_from_env)
    assert handler(work_event([item]), context) == {"batchItemFailures": []}
    done = pik("status", run["replay_id"])
    assert (done["status"], done["sent"]) == ("completed", 1)
    check_complete(store, delivered(stack, run["replay_id"]), 1)
    ended = pik("resume", run["replay_id"], code=1)
    assert "[replay_ended]" in ended
    audit = pik("audit", "--since", "2000-01-01")["records"]
    mine = [(r["action"], r["who"]) for r in audit if r["plan_id"] == plan["plan_id"]]
    assert ("planned", OPERATOR) in mine and ("confirmed", OPERATOR) in mine
    assert ("refused", OPERATOR) in mine  # the resume of an ended run, audited as the caller


def test_cancel_and_resume_go_through_the_api(
    gateway: Gateway, stack: AwsConfig, make_event: MakeEvent
) -> None:
    store = AwsEngine(stack)
    ingest(store, [make_event(entity_id="api-2", event_time="2026-11-01T04:00:00Z")])
    plan = pik("plan", "api-2", *WINDOW, "--target", "queue")
    run = pik("run", plan["plan_id"], "--confirm")
    assert len(work_items(stack)) == 1  # received: hidden from the next look
    resumed = pik("resume", run["replay_id"], "--rate", "250")
    assert resumed["replay_id"] == run["replay_id"] and len(work_items(stack)) == 1
    assert resumed["rate"] == 250 and AwsReplayLedger(stack).run(run["replay_id"]).rate == 250
    cancelled = pik("cancel", run["replay_id"])
    assert cancelled["replay_id"] == run["replay_id"]
    ledger = AwsReplayLedger(stack)
    mine = [
        (r.action, r.who) for r in ledger.audit_log(0, 1_000) if r.replay_id == run["replay_id"]
    ]
    assert ("resume_requested", OPERATOR) in mine and ("cancel_requested", OPERATOR) in mine


@pytest.mark.parametrize(
    ("key", "secret", "says"),
    [
        ("READER", "reader-secret", "is not authorized to perform: execute-api:Invoke"),
        ("testing", "wrong-secret", "signature"),
    ],
    ids=["reader-policy", "bad-signature"],
)
def test_a_caller_the_api_refuses_changes_nothing(
    gateway: Gateway,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    secret: str,
    says: str,
) -> None:
    ingest(AwsEngine(stack), [make_event(entity_id="api-3")])
    before = AwsReplayLedger(stack).audit_log(0, 10_000)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    output = pik("plan", "api-3", *WINDOW, "--target", "queue", code=1)
    assert says in output and "ReplayOperatorPolicy" in output and "[forbidden]" in output
    assert gateway.requests == []
    assert AwsReplayLedger(stack).audit_log(0, 10_000) == before


def test_the_routes_name_what_is_wrong_and_refuse_unauthenticated_callers(
    stack: AwsConfig, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = as_function(monkeypatch, STACK, "ReplayControlFunctionName")
    handler = api.make_handler(store_from_env, replay_backend_from_env)
    ingest(AwsEngine(stack), [make_event(entity_id="api-4")])

    def post(path: str, document: Any, user_arn: str | None = OPERATOR) -> tuple[int, Any]:
        body = json.dumps(document)
        answer = handler(api_event("POST", path, body, user_arn=user_arn), context)
        return answer["statusCode"], json.loads(answer["body"])

    good = {
        "entity_ids": ["api-4"],
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-02T00:00:00Z",
        "target": "queue",
    }
    status, body = post("/replays/plans", good, user_arn=None)
    assert (status, body["error"]["code"]) == (403, "not_authenticated")
    # Bodies are read as strictly as events: what json.loads would take, no field sees.
    for raw, status, code in [
        ("[" * 100_000, 422, "nesting_too_deep"),
        ('{"entity_ids": ["api-4"], "entity_ids": ["other"]}', 422, "duplicate_key"),
        ('{"entity_ids": ["api-4"], "rate": NaN}', 422, "non_finite_number"),
        (json.dumps(good).encode("utf-16"), 400, "invalid_utf8"),
        ("{}\x0b", 400, "invalid_json"),
        ("{", 400, "invalid_json"),
    ]:
        answer = handler(api_event("POST", "/replays/plans", raw, user_arn=OPERATOR), context)
        error = json.loads(answer["body"])["error"]
        assert (answer["statusCode"], error["code"]) == (status, code), raw
    for change, field in [
        ({"entity_ids": "api-4"}, "entity_ids"),
        ({"start": 5}, "start"),
        ({"start": "-800000d"}, "start"),
        ({"end": "yesterday-ish"}, "end"),
        ({"target": None}, "target"),
        ({"sources": [1]}, "sources"),
    ]:
        status, body = post("/replays/plans", {**good, **change})
        assert (status, body["error"]["field"]) == (400, field), body
    status, body = post("/replays/plans", {**good, "target": "sqs:arn:aws:sqs:x"})
    assert (status, body["error"]["code"]) == (422, "invalid_selection")
    # The largest selection the domain allows, every character one of 4 bytes escaped as a
    # surrogate pair (12 bytes): over the ingest limit, within the replay routes' one.
    largest = {
        **good,
        "entity_ids": [f"{n:03d}" + "\U0001f600" * 253 for n in range(1_000)],
        "sources": [f"{n:03d}" + "\U0001f600" * 125 for n in range(100)],
        "event_types": [f"{n:03d}" + "\U0001f600" * 125 for n in range(100)],
    }
    assert MAX_BODY_BYTES < len(json.dumps(largest)) <= MAX_REPLAY_BODY_BYTES
    status, body = post("/replays/plans", largest)
    assert (status, body["events"], len(body["selection"]["entity_ids"])) == (201, 0, 1_000)
    status, body = post("/replays/plans", {**largest, "pad": " " * MAX_REPLAY_BODY_BYTES})
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    status, plan = post("/replays/plans", good)
    assert status == 201 and plan["created_by"] == OPERATOR
    confirm = f"/replays/plans/{plan['plan_id']}/confirm"
    status, body = post(confirm, {})
    assert (status, body["error"]["code"]) == (400, "confirmation_required")
    status, body = post(confirm, {"confirm": True, "rate": "fast"})
    assert (status, body["error"]["field"]) == (400, "rate")
    status, body = post("/replays/plans/" + "0" * 32 + "/confirm", {"confirm": True})
    assert (status, body["error"]["code"]) == (404, "plan_not_found")
    assert work_items(stack) == [], "nothing was started"
    status, run = post(confirm, {"confirm": True, "rate": 50})
    assert status == 201 and (run["rate"], run["confirmed_by"]) == (50, OPERATOR)
    status, body = post(confirm, {"confirm": True})
    assert (status, body["error"]["code"]) == (409, "plan_already_confirmed")
    purge(stack)


def test_a_run_confirmed_but_not_handed_over_says_how_to_start_it(
    stack: AwsConfig, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = as_function(monkeypatch, STACK, "ReplayControlFunctionName")
    queue = stack.replay_work_queue_url
    assert queue
    monkeypatch.setenv("PIK_REPLAY_WORK_QUEUE_URL", queue + "-gone")
    handler = api.make_handler(store_from_env, replay_backend_from_env)
    ingest(AwsEngine(stack), [make_event(entity_id="api-5")])
    good = {"entity_ids": ["api-5"], "start": "2026-11-01", "end": "2026-11-02", "target": "queue"}
    plan = json.loads(
        handler(api_event("POST", "/replays/plans", json.dumps(good), user_arn=OPERATOR), context)[
            "body"
        ]
    )
    confirm = f"/replays/plans/{plan['plan_id']}/confirm"
    answer = handler(api_event("POST", confirm, '{"confirm": true}', user_arn=OPERATOR), context)
    error = json.loads(answer["body"])["error"]
    assert (answer["statusCode"], error["code"]) == (503, "replay_not_started")
    [run] = [r for r in AwsReplayLedger(stack).runs(50) if r.plan_id == plan["plan_id"]]
    resume = f"pik --stack {STACK} replay resume {run.replay_id}"
    assert run.status == "running" and resume in error["message"]
    monkeypatch.setenv("PIK_REPLAY_WORK_QUEUE_URL", queue)
    again = api.make_handler(store_from_env, replay_backend_from_env)
    resumed = again(
        api_event("POST", f"/replays/{run.replay_id}/resume", None, user_arn=OPERATOR), context
    )
    assert resumed["statusCode"] == 200 and len(work_items(stack)) == 1
    purge(stack)


GATEWAY = b'{"error": {"code": "%s", "message": "%s", "field": null, "request_id": "gw-1"}}'
"""What the stack's gateway responses make of API Gateway's own refusals."""


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (200, b"[1, 2]", StoreUnavailableError, "other than a JSON object"),
        (200, b"not json", StoreUnavailableError, "may or may not have taken effect"),
        (504, b'{"message": "Endpoint request timed out"}', StoreUnavailableError, "timed out"),
        (
            500,
            b'{"error": {"code": "internal_error", "message": "boom", "request_id": "r-9"}}',
            StoreUnavailableError,
            "request id r-9",
        ),
        (
            409,
            b'{"error": {"code": "plan_changed", "message": "changed", "field": "plan_id"}}',
            ReplayError,
            "changed",
        ),
        (403, b'{"message": "Forbidden"}', ReplayError, "ReplayOperatorPolicy"),
        (403, GATEWAY % (b"ACCESS_DENIED", b"not authorized"), ReplayError, "not authorized.*Rep"),
        (504, GATEWAY % (b"INTEGRATION_TIMEOUT", b"timed out"), StoreUnavailableError, "status"),
    ],
    ids=[
        *("a-list", "not-json", "gateway-timeout", "server-error", "refusal", "forbidden"),
        *("forbidden-in-our-shape", "gateway-timeout-in-our-shape"),
    ],
)
def test_the_signed_client_names_every_answer_it_cannot_use(
    monkeypatch: pytest.MonkeyPatch, status: int, body: bytes, error: type, says: str
) -> None:
    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        with pytest.raises(error, match=says):
            SignedApi(api_url, "us-east-1").post("/replays/x/cancel", {})
    finally:
        server.shutdown()
        server.server_close()


# --- pik-tui's replay screen on the stack -------------------------------------------------


class StackReplays(LocalBackend):
    """An empty local store to browse, with the stack's replays behind `R`: the screen
    reads nothing but its replays, and the stack's reads need moto's server."""

    def replays(self) -> ReplayDesk:
        return stack_replays(STACK, f"pik --stack {STACK}")


async def cancel_once(pilot: Pilot[None], screen: ReplayScreen) -> None:
    """F8, pressed again and again: one cancel is asked for, and the run is still read back
    once a second, not once a second per press."""
    assert screen.desk is not None
    control: Any = screen.desk.control
    reads: list[str] = []
    read = control.run

    def counted(replay_id: str) -> Any:
        reads.append(replay_id)
        return read(replay_id)

    control.run = counted
    for _ in range(4):
        await pilot.press("f8")
        await pilot.pause()
    await until(pilot, lambda: screen.run is not None and screen.run.cancel_requested)
    reads.clear()
    await asyncio.sleep(2.5)
    await pilot.pause()
    assert 1 <= len(reads) <= 3


@pytest.mark.parametrize("cancel", [False, True], ids=["sent", "cancelled"])
def test_the_replay_screen_plans_and_confirms_through_the_api_and_follows_the_run(
    gateway: Gateway,
    stack: AwsConfig,
    make_event: MakeEvent,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cancel: bool,
) -> None:
    ingest(AwsEngine(stack), [make_event(entity_id="tui-1", event_time="2026-11-01T03:00:00Z")])
    LocalEngine(tmp_path / "empty", create=True).close()
    backend = StackReplays(
        LocalEngine(tmp_path / "empty", create=False, read_only=True), "stack " + STACK
    )
    app = PikApp(backend)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ReplayScreen))
            screen = app.screen
            assert isinstance(screen, ReplayScreen)
            await until(pilot, lambda: screen.desk is not None)
            assert screen.query_one("#replay-target", Input).value == "queue"
            for key, value in (
                ("entities", "tui-1"),
                ("start", "2026-11-01T00:00:00Z"),
                ("end", "2026-11-02T00:00:00Z"),
            ):
                screen.query_one(f"#replay-{key}", Input).value = value
            await pilot.press("f5")
            await until(pilot, lambda: screen.plan is not None)
            assert screen.plan is not None
            assert (screen.plan.events, screen.plan.created_by) == (1, OPERATOR)

            await pilot.press("f6")
            await until(pilot, lambda: isinstance(app.screen, ConfirmSend))
            await pilot.press("tab", "enter")
            await until(pilot, lambda: screen.run is not None)
            assert screen.run is not None
            assert (screen.run.status, screen.run.confirmed_by) == (model.RUNNING, OPERATOR)
            assert [r["path"] for r in gateway.requests] == [
                "/replays/plans",
                f"/replays/plans/{screen.plan.plan_id}/confirm",
            ]
            assert not screen.sending_here  # the stack's function sends it: leaving is fine
            if cancel:
                await cancel_once(pilot, screen)
                assert [r["path"] for r in gateway.requests][2:] == [
                    f"/replays/{screen.run.replay_id}/cancel"
                ]

            (item,) = work_items(stack)
            context = as_function(monkeypatch, STACK)
            handler = replay_function.make_handler(replay_backend_from_env)
            assert handler(work_event([item]), context) == {"batchItemFailures": []}
            await until(pilot, lambda: screen.run is not None and screen.run.status != "running")
            assert screen.run is not None
            if cancel:
                assert (screen.run.status, screen.run.sent) == (model.CANCELLED, 0)
            else:
                assert (screen.run.status, screen.run.sent) == (model.COMPLETED, 1)

    try:
        asyncio.run(scenario())
    finally:
        backend.close()
    audit = AwsReplayLedger(stack).audit_log(0, 1_000)
    assert (model.CONFIRMED, OPERATOR) in [(r.action, r.who) for r in audit]
