"""Failures any engine can report through the storage port, named for what a caller does next.

Edges (the HTTP API, Lambda handlers, the CLI) map these to answers without knowing which
engine raised them: unavailable means "retry later" (503 with Retry-After), full means
"make room" (507). Neither is ever raised after a batch was acknowledged.
"""

from __future__ import annotations


class StoreUnavailableError(RuntimeError):
    """The store cannot take or answer this request now; nothing was acknowledged."""

    code = "storage_unavailable"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreFullError(OSError):
    """The storage refused the write for lack of space; nothing was acknowledged."""
