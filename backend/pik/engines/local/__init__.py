"""The embedded engine: append-only segment files for raw bytes, SQLite (WAL) for the index."""

from pik.engines.local.engine import LocalEngine

__all__ = ["LocalEngine"]
