"""The demo store: built once, reused, and rebuilt when this version cannot read it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pik.demo import build_demo
from pik.engines.local import LocalEngine


def test_demo_is_built_once_and_rebuilt_when_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "demo"
    assert build_demo(path) is True
    assert build_demo(path) is False
    db = sqlite3.connect(path / "index.sqlite3")
    db.execute("UPDATE meta SET value = 'old' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    assert build_demo(path) is True, "an index of another schema is rebuilt for the demo"
    engine = LocalEngine(path, read_only=True)
    try:
        assert engine.counts()["entities"] == 60
        assert engine.verify().ok
    finally:
        engine.close()
