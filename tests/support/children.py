"""Child processes for fault tests: this environment, with one crash point armed or none."""

from __future__ import annotations

import os


def crash_env(crash_point: str | None) -> dict[str, str]:
    """The environment for a child that dies at ``crash_point`` (``pik.faults``), if given."""
    env = dict(os.environ)
    env.pop("PIK_CRASH_POINT", None)
    if crash_point:
        env["PIK_CRASH_POINT"] = crash_point
    return env


def store_on_a_full_disk() -> object:
    """A store factory for worker processes whose store refuses for lack of space."""
    from pik.storage_errors import StoreFullError

    raise StoreFullError(28, "No space left on device")
