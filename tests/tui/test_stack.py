"""`pik-tui --stack NAME`: the app on a deployed stack (the template's stack in moto's
server, read by aiobotocore), and what the command says when it cannot open one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto_server import REGION, moto_server
from moto_stack import create_stack
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from pik.domain.instants import US_PER_HOUR, US_PER_MINUTE, format_instant, parse_instant
from pik.engines.aws import AwsConfig, AwsEngine
from pik.engines.aws.discovery import discover
from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch
from pik.services.query import TimelinePage
from pik_tui import app as tui
from pik_tui.app import PikApp
from pik_tui.aws_backend import AwsBackend
from pik_tui.backend import LocalBackend, ServiceBackend
from pik_tui.event_view import VERIFIED
from pik_tui.widgets.coverage import CoveragePane
from pik_tui.widgets.entities import EntityPane
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.rates import RatesPane
from pik_tui.widgets.timeline import TimelinePane

STACK = "pik-tui"
NOW = parse_instant("2026-11-02T12:00:00Z")
INGESTED = NOW - 4 * US_PER_MINUTE
Drive = Callable[..., None]
Settle = Callable[[Pilot[None]], Any]


def events() -> list[bytes]:
    """Three customers over the last two days, a duplicate, and two rejections."""
    lines = [
        json.dumps(
            {
                "source": "billing" if n % 4 == 0 else "checkout",
                "event_type": "order.created",
                "entity_id": f"customer-{1 + n % 3}",
                "event_time": format_instant(NOW - (n * 97 % 48) * US_PER_HOUR - n),
                "payload": {"n": n, "currency": "EUR"},
            }
        ).encode()
        for n in range(30)
    ]
    return [*lines, lines[0], b'{"source": "checkout"}', b"{broken"]


@pytest.fixture(scope="module")
def stack_config() -> Iterator[AwsConfig]:
    """The template's stack in moto's server, holding ``events()`` ingested at INGESTED."""
    with moto_server():
        create_stack(STACK, REGION)
        config = discover(STACK, region=REGION)
        ingest_batch(AwsEngine(config, clock=lambda: INGESTED), events(), "test")
        yield config


@pytest.fixture(scope="module")
def stack(stack_config: AwsConfig) -> Iterator[AwsBackend]:
    backend = AwsBackend.open(STACK)
    yield backend
    backend.close()


def pages(page: TimelinePage) -> tuple[list[Any], str | None, str | None]:
    """A page without where each engine keeps the bytes (segment and offset differ)."""
    return [replace(e, segment="", offset=0) for e in page.events], page.next, page.prev


def text_of(app: PikApp, selector: str) -> str:
    content = app.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def test_the_app_on_a_stack_shows_entities_timeline_event_coverage_and_rates(
    stack: AwsBackend, drive: Drive, settle: Settle
) -> None:
    app = PikApp(stack, now_us=lambda: NOW, read_only=True, rates_interval=3600.0)

    async def scenario(pilot: Pilot[None]) -> None:
        entities = app.query_one(EntityPane)
        assert [str(row.value) for row in entities.table.rows] == [
            "customer-1",
            "customer-2",
            "customer-3",
        ]
        timeline = app.query_one(TimelinePane)
        assert timeline.entity_id == "customer-1" and timeline.table.row_count == 10
        crumbs = text_of(app, "#crumbs")
        assert "store stack pik-tui" in crumbs and "READ-ONLY" in crumbs

        await pilot.press("enter", "enter")
        await settle(pilot)
        event = app.query_one(EventPane)
        assert event.view is not None and event.view.verified
        assert f"verified        {VERIFIED} (" in text_of(app, "#event-fields")
        assert '"currency": "EUR"' in text_of(app, "#event-payload")

        await pilot.press("3")
        await settle(pilot)
        coverage = app.query_one(CoveragePane)
        assert (
            coverage.span is not None and coverage.span.count == 71
        )  # the hours that fit 120 columns
        assert sum(sum(row.counts) for row in coverage.rows) == 30

        await pilot.press("4")
        await settle(pilot)
        rates = app.query_one(RatesPane)
        assert rates.table.row_count == 3  # billing, checkout, and the unparseable line
        assert "invalid_json" in text_of(app, "#rates-reasons")
        assert app.is_running

    drive(app, scenario)


def test_every_pane_call_answers_as_on_a_local_store(stack: AwsBackend, tmp_path: Path) -> None:
    """The same events, ingested at the same minute, on disk and on the stack."""
    engine = LocalEngine(tmp_path / "store", create=True, clock=lambda: INGESTED)
    ingest_batch(engine, events(), "test")
    engine.close()
    local = LocalBackend.open(tmp_path / "store")
    try:
        backends: list[ServiceBackend] = [stack, local]
        answers = [
            (
                backend.entities("", 100),
                backend.entities("customer-2", 10),
                pages(backend.timeline("customer-1", None, 4)),
                backend.coverage(["customer-1", "customer-3"], NOW - 72 * US_PER_HOUR, NOW, "hour"),
                backend.coverage(["customer-2"], NOW - 14 * 24 * US_PER_HOUR, NOW, "day"),
                backend.rates(NOW - US_PER_HOUR, NOW + US_PER_MINUTE),
            )
            for backend in backends
        ]
        assert answers[0] == answers[1]
        newest = stack.timeline("customer-1", None, 4)
        older = [pages(b.timeline("customer-1", newest.prev, 4)) for b in backends]
        assert older[0] == older[1] and older[0][0]
        sent_twice = newest.events[-1]  # events()[0], at NOW: the newest of customer-1
        details = [b.event(sent_twice.event_id) for b in backends]
        assert details[0] is not None and details[1] is not None
        assert details[0].verified and details[1].verified
        assert details[0].raw == details[1].raw
        assert details[0].attempts == details[1].attempts and details[0].attempts
    finally:
        local.close()


def test_the_stack_comes_from_the_environment_and_offers_replays_unless_read_only(
    stack_config: AwsConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[tuple[str, bool]] = []
    monkeypatch.setattr(PikApp, "run", lambda app: shown.append((app.backend.label, app.read_only)))
    monkeypatch.setenv("PIK_STACK", STACK)
    assert tui.main([]) == 0
    assert tui.main(["--read-only"]) == 0
    assert shown == [(f"stack {STACK}", False), (f"stack {STACK}", True)]


def test_stack_and_store_cannot_be_combined(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        tui.main(["--stack", STACK, "--store", "elsewhere"])
    assert exited.value.code == 2
    assert "cannot go with --store or --demo" in capsys.readouterr().err


def refused(*_: Any, **__: Any) -> Any:
    raise ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "DescribeStacks"
    )


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("no-such-stack", "no stack named 'no-such-stack' in us-east-1"),
        ("no-credentials", "no AWS credentials found"),
        ("access-denied", "AWS refused the request (AccessDenied: not authorized)"),
        ("no-table", "AWS refused the request (ResourceNotFoundException"),
    ],
)
def test_a_stack_that_cannot_be_read_is_a_message_and_exit_2(
    stack_config: AwsConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: str,
    said: str,
) -> None:
    monkeypatch.setattr(PikApp, "run", lambda app: pytest.fail("the app must not start"))
    stack = STACK
    if case == "no-such-stack":
        stack = case
    elif case == "no-credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    elif case == "access-denied":
        monkeypatch.setattr("pik_tui.aws_backend.discover", refused)
    else:
        gone = AwsConfig("no-such-table", stack_config.bucket, REGION)
        monkeypatch.setattr("pik_tui.aws_backend.discover", lambda *_, **__: gone)
    assert tui.main(["--stack", stack]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_closing_while_aws_does_not_answer_frees_the_waiting_reader() -> None:
    """Quitting while a read is in flight must not leave a worker thread waiting for ever
    (the process would never exit): an endpoint that accepts and never answers."""
    import socket
    import threading

    from pik_tui.backend import StoreUnavailable

    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    config = AwsConfig("table", "bucket", region=REGION, endpoint_url=f"http://127.0.0.1:{port}")
    backend = AwsBackend(config, "stack silent")
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            backend._call(lambda store: store.event(bytes(16)))
            outcome.append(None)
        except BaseException as exc:  # what the waiting worker sees
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    silent.accept()  # the request is in flight, and will never be answered
    backend.close()
    reader.join(timeout=10)
    silent.close()
    assert not reader.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable)
