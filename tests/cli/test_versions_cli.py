"""`pik versions` on a real store: latest versions, a window's history, and a diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from pik.cli.main import cli
from pik.domain.versions import AggregateSpec
from pik.engines.local import LocalEngine
from pik.engines.local.versions import LocalVersionStore
from pik.services.ingest import ingest_batch
from pik.services.processor import process_messages

SPEC = AggregateSpec("day", "/amount")


def run(store: Path, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args else result.output


def event(time: str, amount: int) -> bytes:
    return orjson.dumps(
        {
            "source": "shop",
            "event_type": "order",
            "entity_id": "c1",
            "event_time": time,
            "payload": {"amount": amount},
        }
    )


def touch(time: str) -> bytes:
    return orjson.dumps({"entity_id": "c1", "event_time": time, "replay_id": "1" * 32})


def two_versions(store: Path) -> None:
    engine = LocalEngine(store)
    versions = LocalVersionStore(store)
    try:
        ingest_batch(engine, [event("2026-11-01T10:00:00Z", 5)], "t")
        process_messages(engine, versions, SPEC, [touch("2026-11-01T10:00:00Z")])
        ingest_batch(engine, [event("2026-11-01T08:00:00Z", 40)], "t")
        process_messages(engine, versions, SPEC, [touch("2026-11-01T08:00:00Z")])
    finally:
        versions.close()
        engine.close()


def test_list_history_and_diff(tmp_path: Path) -> None:
    store = tmp_path / "s"
    two_versions(store)
    latest = run(store, "versions", "list", "c1", "--sum", "/amount", "--json")
    [only] = latest["versions"]
    assert only["version"] == 2 and only["aggregate"]["total"] == "45"
    assert only["window_start"] == "2026-11-01T00:00:00.000000Z"
    history = run(
        store, "versions", "history", "c1", "2026-11-01T15:00:00Z", "--sum", "/amount", "--json"
    )
    assert [v["version"] for v in history["versions"]] == [1, 2]
    change = run(store, "versions", "diff", "c1", "2026-11-01", "--sum", "/amount", "--json")
    assert change["count_change"] == 1 and change["total_change"] == "40"
    assert [a["event_time"] for a in change["added"]] == ["2026-11-01T08:00:00.000000Z"]
    shown = run(store, "versions", "diff", "c1", "2026-11-01", "--sum", "/amount")
    assert "version 1 → 2: +1 events, sum 40" in shown
    assert change["added"][0]["lag_ms"] > 120_000 and "ms" not in shown, "a lag a person reads"
    # Another spec has versions of its own: none yet.
    assert run(store, "versions", "list", "c1", "--json")["versions"] == []


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    store = tmp_path / "s"
    two_versions(store)
    out = run(store, "versions", "diff", "c1", "2026-11-01", "1", "7", "--sum", "/amount", code=1)
    assert "no version 7" in out and "pik versions history" in out
    out = run(store, "versions", "list", "c1", "--sum", "amount", code=2)
    assert "JSON pointer" in out
    out = run(tmp_path / "nothing", "versions", "list", "c1", code=1)
    assert "no store" in out
