"""What actually reaches a terminal: run pik-tui and pik in a pty and scan the bytes.

A hostile payload must not get a single escape sequence of its own to the terminal: no
clipboard write (OSC 52), no hyperlink (OSC 8), no screen clear, no C1 control, no bidi
override. The programs' own escape sequences are fine; the payload's are not.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def run_in_pty(argv: list[str], keys: list[tuple[bytes, float, bytes]], timeout: float) -> bytes:
    """Run a program on a pseudo-terminal and return everything it wrote.

    Each key is ``(wait_for, pause, key)``: typed once ``wait_for`` has appeared in the
    output and ``pause`` seconds have passed since the previous key (robust on slow CI).
    """
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    output = io.BytesIO()
    started = last_key = time.monotonic()
    pending = list(keys)
    try:
        while time.monotonic() - started < timeout:
            if pending:
                wait_for, pause, key = pending[0]
                if wait_for in output.getvalue() and time.monotonic() - last_key >= pause:
                    os.write(leader, key)
                    pending.pop(0)
                    last_key = time.monotonic()
            ready, _, _ = select.select([leader], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output.write(chunk)
            elif process.poll() is not None and not pending:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        os.close(leader)
    return output.getvalue()


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
    )
    assert b"evil" in output and b"attack" in output
    for sequence in FORBIDDEN:
        assert sequence not in output, sequence


def test_pik_tui_writes_no_payload_escape(hostile_store: Path) -> None:
    keys = [(b"victim", 1.0, b"\r"), (b"attack", 1.0, b"\r"), (b"SGVsbG8", 1.0, b"q")]
    output = run_in_pty([str(BIN / "pik-tui"), "--store", str(hostile_store)], keys, timeout=60)
    assert b"victim" in output, "the app drew its screen"
    assert b"SGVsbG8" in output, "the event pane showed the payload"
    for sequence in FORBIDDEN:
        assert sequence not in output, sequence
