"""Run a program on a pseudo-terminal, type keys when it is ready for them, keep its bytes."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import time
from dataclasses import dataclass

Key = tuple[bytes, float, bytes]
"""``(wait_for, pause, key)``: typed once ``wait_for`` has appeared in the output and
``pause`` seconds have passed since the previous key (robust on slow CI)."""


@dataclass(frozen=True)
class Session:
    returncode: int
    output: bytes
    typed: int
    """How many of the keys were typed (fewer: the program never asked for the rest)."""


def run_in_pty(
    argv: list[str],
    keys: list[Key],
    timeout: float,
    term: str = "xterm-256color",
    columns: int = 120,
) -> Session:
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": term, "COLUMNS": str(columns), "LINES": "40"}
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
    return Session(process.returncode, output.getvalue(), len(keys) - len(pending))
