"""Named crash points for fault-injection tests.

Setting ``PIK_CRASH_POINT`` to one of :data:`CRASH_POINTS` makes the process SIGKILL itself
when it reaches that point, so tests can prove what survives a crash at each step of ingest.
Unset (always, outside tests) the check is a single comparison.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = (
    "before_append",
    "mid_append",
    "after_raw_fsync",
    "in_index_transaction",
    "after_index_commit",
)
_ARMED = os.environ.get("PIK_CRASH_POINT")


def crash_point(name: str) -> None:
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)


def armed(name: str) -> bool:
    return name == _ARMED
