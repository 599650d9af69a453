"""Producers are not trusted: markup and terminal controls in their data render literally."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from rich.text import Text
from textual.app import App
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static

from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch
from pik_tui.app import PikApp
from pik_tui.backend import LocalBackend
from pik_tui.event_view import build_event_view
from pik_tui.safe import PAYLOAD_CHARS
from pik_tui.widgets.event import EventPane
from pik_tui.widgets.timeline import TimelinePane

Settle = Callable[[Pilot[None]], Awaitable[None]]
Drive = Callable[..., None]

MARKUP = ("[@click=app.quit]", "[/bold]oops", "[link=file:///etc/passwd]x[/link]", "[b")
CONTROLS = {
    "osc52": "\x1b]52;c;AAAA\x07",
    "csi": "\x1b[2J",
    "c1_csi": "\u009b31m",
    "osc8": "\x1b]8;;file:///etc/passwd\x1b\\here\x1b]8;;\x1b\\",
    "bidi": "\u202eevil\u202c",
}
FORBIDDEN = ("\x1b", "\x9b", "\x07", "\u202e")
HOSTILE_ORIGIN = "[@click=app.quit][b\x1b[2J"


def envelope(entity: str, payload: object, key: str | None = None, minute: int = 0) -> bytes:
    document: dict[str, object] = {
        "source": "checkout",
        "event_type": "order.created",
        "entity_id": entity,
        "event_time": f"2025-06-02T11:{minute:02d}:00Z",
        "payload": payload,
    }
    if key is not None:
        document["idempotency_key"] = key
    return json.dumps(document).encode()


@pytest.fixture(scope="module")
def hostile_path(
    tmp_path_factory: pytest.TempPathFactory, write_store: Callable[..., Path]
) -> Path:
    path = write_store(tmp_path_factory.mktemp("hostile") / "store", batch=_events())
    # A later arrival of the first event from a producer whose --origin label is hostile:
    # the event pane lists it under "later arrivals".
    engine = LocalEngine(path)
    try:
        ingest_batch(engine, _events()[:1], HOSTILE_ORIGIN)
    finally:
        engine.close()
    return path


def _events() -> list[bytes]:
    payload: dict[str, object] = {f"m{i}": text for i, text in enumerate(MARKUP)}
    payload.update(CONTROLS)
    payload["[@click=app.quit]"] = "key position"
    return [
        envelope("hostile-1", payload, key="[@click=app.quit]"),
        envelope("hostile-1", {"big": "A" * (PAYLOAD_CHARS * 3)}, minute=1),
        envelope("hostile-1", [[[[{"deep": "[/bold]"}]]]], minute=2),
    ]


def rendered(widget: Widget) -> str:
    """The characters a widget puts on screen, line by line."""
    width, height = widget.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


def plain(app: App[None], selector: str) -> str:
    content = app.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def test_markup_and_controls_in_a_payload_render_literally_and_the_app_survives(
    make_app: Callable[..., PikApp], hostile_path: Path, drive: Drive, settle: Settle
) -> None:
    app = make_app(hostile_path)

    async def scenario(pilot: Pilot[None]) -> None:
        timeline = app.query_one(TimelinePane)
        assert timeline.entity_id == "hostile-1"
        await pilot.press("enter")
        timeline.table.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        event = app.query_one(EventPane)
        assert event.view is not None and event.view.verified

        payload, fields = plain(app, "#event-payload"), plain(app, "#event-fields")
        for text in MARKUP:
            assert text in payload
        assert "idempotency key [@click=app.quit]" in fields
        attempts = plain(app, "#event-attempts")
        assert "duplicate x1 via [@click=app.quit][b\\x1b[2J" in attempts, attempts
        assert "[@click=app.quit][b" in rendered(app.query_one("#event-attempts", Static))
        assert '"[@click=app.quit]": "key position"' in payload
        assert "\\u001b]52;c;AAAA\\u0007" in payload  # JSON escapes, shown as typed
        assert "\\x9b31m" in payload and "\\u202eevil\\u202c" in payload  # made inert

        on_screen = rendered(app.query_one("#event-payload", Static))
        assert "[/bold]oops" in on_screen and "[link=file:///etc/passwd]x[/link]" in on_screen
        assert "[@click=app.quit]" in on_screen
        for char in FORBIDDEN:
            assert char not in on_screen
            assert char not in payload and char not in fields and char not in attempts

        await pilot.click("#event-payload", offset=(2, 2))
        await pilot.click("#event-fields", offset=(20, 8))
        await settle(pilot)
        assert app.is_running and app.return_code is None

    drive(app, scenario)


def test_the_whole_screen_carries_no_control_byte(
    make_app: Callable[..., PikApp], hostile_path: Path, drive: Drive, settle: Settle
) -> None:
    app = make_app(hostile_path)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        app.query_one(TimelinePane).table.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        screenshot = app.export_screenshot()
        for char in FORBIDDEN:
            assert char not in screenshot
        assert "[@click=app.quit]" in screenshot

    drive(app, scenario)


def test_a_big_payload_is_cut_with_a_note_of_what_was_left_out(hostile_path: Path) -> None:
    backend = LocalBackend.open(hostile_path)
    try:
        page = backend.timeline("hostile-1", None, 10)
        detail = backend.event(page.events[1].event_id)
    finally:
        backend.close()
    assert detail is not None
    # The hint names the same store the TUI reads, not the default one.
    assert backend.command == f"pik --store {hostile_path}"
    view = build_event_view(detail, command=backend.command)
    assert len(view.payload) < PAYLOAD_CHARS + 200
    shown, whole = view.payload.rsplit("\n", 1)
    assert shown.endswith(" more bytes") and "… " in shown
    event_id = detail.record.event_id.hex()
    assert whole == f"(the whole event: pik --store {hostile_path} --json event {event_id})"


def test_a_store_label_with_markup_shows_literally_in_the_header(
    hostile_path: Path, drive: Drive
) -> None:
    backend = LocalBackend.open(hostile_path, label="[@click=app.quit][b]store")
    app = PikApp(backend, rates_interval=3600.0)

    async def scenario(pilot: Pilot[None]) -> None:
        assert "[@click=app.quit][b]store" in plain(app, "#crumbs")
        await pilot.click("#crumbs", offset=(10, 0))
        assert app.is_running

    try:
        drive(app, scenario)
    finally:
        backend.close()
