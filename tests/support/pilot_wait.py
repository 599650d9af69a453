"""Waiting in a Pilot test for what worker threads bring about, without waiting for the
workers themselves (one may be held on purpose, at a gate)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot


async def until(pilot: Pilot[None], done: Callable[[], bool], seconds: float = 15.0) -> None:
    """Let the app run until ``done()`` holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        await pilot.pause()
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the app never got there")
