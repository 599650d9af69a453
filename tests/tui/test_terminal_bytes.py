"""What actually reaches a terminal: run pik-tui and pik in a pty and scan the bytes.

A hostile payload must not get a single escape sequence of its own to the terminal: no
clipboard write (OSC 52), no hyperlink (OSC 8), no screen clear, no C1 control, no bidi
override. The programs' own escape sequences are fine; the payload's are not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pty_session import run_in_pty

from pik.engines.local import LocalEngine
from pik.services.ingest import ingest_batch

PAYLOAD_SEQUENCES = {
    "osc52": "\x1b]52;c;SGVsbG8=\x07",
    "osc8": "\x1b]8;;file:///etc/passwd\x1b\\link\x1b]8;;\x1b\\",
    "clear": "\x1b[2J\x1b[H",
    "c1_csi": "\u009b31m",
    "bidi": "\u202eevil",
}
FORBIDDEN = [
    b"\x1b]52;c;SGVsbG8",
    b"\x1b]8;;file:///etc/passwd",
    b"\x1b[2J\x1b[H",
    "\u009b".encode(),
    "\u202e".encode(),
]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("pty") / "store"
    engine = LocalEngine(store)
    try:
        raw = json.dumps(
            {
                "source": "evil",
                "event_type": "attack",
                "entity_id": "victim",
                "event_time": "2026-11-01T00:00:00Z",
                "payload": PAYLOAD_SEQUENCES,
            }
        ).encode()
        ingest_batch(engine, [raw], "test")
    finally:
        engine.close()
    return store


def event_id(store: Path) -> str:
    engine = LocalEngine(store, read_only=True)
    try:
        return engine.timeline("victim", 0, 2**62, 1)[0].event_id.hex()
    finally:
        engine.close()


def test_pik_event_writes_no_payload_escape(hostile_store: Path) -> None:
    output = run_in_pty(
        [str(BIN / "pik"), "--store", str(hostile_store), "event", event_id(hostile_store)],
        [],
        timeout=20,
    ).output
    assert b"evil" in output and b"attack" in output
    for sequence in FORBIDDEN:
        assert sequence not in output, sequence


def test_pik_tui_writes_no_payload_escape(hostile_store: Path) -> None:
    keys = [(b"victim", 1.0, b"\r"), (b"attack", 1.0, b"\r"), (b"SGVsbG8", 1.0, b"q")]
    session = run_in_pty([str(BIN / "pik-tui"), "--store", str(hostile_store)], keys, timeout=60)
    output = session.output
    # On a failure, say how far the keys got and what the terminal last received.
    seen = f"{session.typed} of {len(keys)} keys typed; last bytes {output[-2000:]!r}"
    assert b"victim" in output, f"the app drew its screen; {seen}"
    assert b"SGVsbG8" in output, f"the event pane showed the payload; {seen}"
    for sequence in FORBIDDEN:
        assert sequence not in output, sequence
