"""The `pik` CLI end to end on a real store: documented JSON shapes, errors, exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pik.cli.main import cli
from pik.demo import demo_lines
from pik.domain.instants import parse_instant
from pik.engines.local import LocalEngine
from pik.engines.local.layout import StoreError
from pik.storage_errors import StoreUnavailableError

END = parse_instant("2026-11-27T12:00:00Z")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "demo.ndjson"
    data.write_bytes(b"\n".join(demo_lines(end_us=END)) + b"\n")
    store = data.parent / "store"
    result = CliRunner().invoke(cli, ["--store", str(store), "ingest", str(data), "--json"])
    assert result.exit_code == 1, result.output  # the demo plants rejected lines
    return store


def run(store: Path, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args else result.output


def test_ingest_report_accounts_for_every_line(tmp_path: Path) -> None:
    data = tmp_path / "in.ndjson"
    data.write_bytes(b"\n".join(demo_lines(end_us=END)) + b"\n")
    report = run(tmp_path / "s", "--json", "ingest", str(data), code=1)
    assert report["accepted"] + report["duplicate"] + report["rejected"] == report["lines"]
    assert report["by_code"] == {
        "idempotency_conflict": 1,
        "invalid_characters": 6,
        "invalid_json": 6,
        "missing_field": 6,
    }
    assert set(report["rejections"][0]) == {"line", "code", "field", "message"}
    again = run(tmp_path / "s", "ingest", str(data), "--json", code=1)
    assert again["accepted"] == 0
    assert again["duplicate"] == report["accepted"] + report["duplicate"]


def test_ingest_from_stdin_with_an_oversized_line(tmp_path: Path) -> None:
    good = next(demo_lines(end_us=END))
    huge = b'{"payload": "' + b"x" * 300_000 + b'"}'
    result = CliRunner().invoke(
        cli,
        ["--store", str(tmp_path / "s"), "ingest", "-", "--json"],
        input=good + b"\n" + huge + b"\n" + good + b"\n",
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["accepted"], report["duplicate"], report["rejected"]) == (1, 1, 1)
    assert report["rejections"][0]["code"] == "too_large"
    assert report["rejections"][0]["line"] == 2


def test_a_file_of_nothing_but_rejected_lines_asks_whether_it_is_ndjson(tmp_path: Path) -> None:
    data = tmp_path / "orders.csv"
    data.write_text("order_id,amount\n1,20\n2,30\n")
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "ingest", str(data)])
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "every line was rejected (3): no event was stored" in said
    assert "Is this NDJSON" in said and "the other lines were stored" not in said
    # Envelopes that parse but are refused for a field: the question would be wrong.
    fields = tmp_path / "fields.ndjson"
    fields.write_text('{"source": "s", "colour": "red"}\n')
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "ingest", str(fields)])
    said = " ".join(result.stderr.split())
    assert "every line was rejected (1)" in said and "Is this NDJSON" not in said
    assert "The reasons are named above" in said


def test_ctrl_c_during_ingest_says_what_is_stored_and_exits_130(tmp_path: Path) -> None:
    store = tmp_path / "s"
    child = subprocess.Popen(
        [sys.executable, "-m", "pik", "--store", str(store), "ingest", "-", "--batch-size", "10"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None
    child.stdin.write(
        b"".join(
            json.dumps(
                {
                    "source": "s",
                    "event_type": "t",
                    "entity_id": f"e{n}",
                    "event_time": "2026-11-01T10:00:00Z",
                    "payload": {},
                }
            ).encode()
            + b"\n"
            for n in range(25)
        )
    )
    child.stdin.flush()  # two whole batches and half of one, then the input waits
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _stored(store) < 20:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    said = " ".join(stderr.decode().split())
    assert "interrupted: the batches committed before Ctrl-C are stored" in said
    assert "Ingest the same input again" in said and "Aborted" not in said
    assert _stored(store) == 20


def _stored(store: Path) -> int:
    try:
        engine = LocalEngine(store, create=False, read_only=True)
    except (StoreError, StoreUnavailableError):
        return 0  # not made yet, or being made this moment
    try:
        return engine.counts()["events"]
    finally:
        engine.close()


def test_timeline_pages_and_event_verifies(demo: Path) -> None:
    page = run(demo, "timeline", "customer-0007", "--limit", "5", "--json")
    assert set(page) == {"entity_id", "from", "to", "events", "next", "prev"}
    assert len(page["events"]) == 5 and page["next"] and page["prev"] is None
    first = page["events"][0]
    assert set(first) == {
        "event_id",
        "entity_id",
        "source",
        "event_type",
        "event_time",
        "ingest_time",
        "lag_ms",
        "duplicate_count",
        "conflict_count",
    }
    assert first["event_time"].endswith("Z") and len(first["event_time"]) == 27
    # The newest page, as a tail: nothing newer, older pages behind it.
    newest = run(demo, "timeline", "customer-0042", "--limit", "5", "--latest", "--json")
    assert newest["next"] is None and newest["prev"] is not None
    times = [e["event_time"] for e in newest["events"]]
    assert times == sorted(times) and len(times) == 5
    # The demo's reused idempotency key shows on the timeline, in JSON and in the table.
    whole = run(demo, "timeline", "customer-0042", "--limit", "1000", "--json")["events"]
    assert sorted(e["conflict_count"] for e in whole)[-2:] == [0, 1]
    table = CliRunner().invoke(
        cli, ["--store", str(demo), "timeline", "customer-0042", "--latest"], env={"COLUMNS": "200"}
    )
    assert "conflicts" in table.stdout
    second = run(
        demo, "--json", "timeline", "customer-0007", "--limit", "5", "--cursor", page["next"]
    )
    assert second["events"][0]["event_time"] >= page["events"][-1]["event_time"]
    detail = run(demo, "event", first["event_id"], "--json")
    assert detail["verified"] is True and detail["payload"]["currency"] == "EUR"
    assert detail["entity_id"] == "customer-0007"
    human = run(demo, "event", first["event_id"])
    assert "verified" in human and first["event_id"] in human
    cells = [line.strip("│ ").split(" │ ") for line in human.splitlines()]
    rows = {cell[0].strip(): cell[1].strip() for cell in cells if len(cell) == 2 and cell[0]}
    assert rows["verified"] == "yes" and rows["idempotency_key"] == "-"


def test_coverage_finds_the_planted_gap(demo: Path) -> None:
    doc = run(
        demo,
        "coverage",
        "--by",
        "hour",
        "--entity",
        "customer-0007",
        "--from",
        "2026-11-24T12:00:00Z",
        "--to",
        "2026-11-27T12:00:00Z",
        "--json",
    )
    assert {w["entity_id"] for w in doc["windows"]} == {"customer-0007"}
    assert doc["gaps"] == [
        {
            "entity_id": "customer-0007",
            "window_start": "2026-11-25T18:00:00.000000Z",
            "window_end": "2026-11-26T00:00:00.000000Z",
            "windows": 6,
        }
    ]
    # An entity named that has no events in the range is said, not just left out.
    result = CliRunner().invoke(
        cli,
        ["--store", str(demo), "coverage", "--entity", "customer-007", "--entity", "customer-0007"],
    )
    assert result.exit_code == 0
    assert "no events in this range for: customer-007 (" in " ".join(result.stderr.split())


def test_rates_entities_and_verify(demo: Path) -> None:
    rates = run(demo, "rates", "--since", "2000-01-01", "--json")
    sources = {row["source"] for row in rates["rows"]}
    assert {"checkout", "payments", "warehouse"} <= sources
    assert rates["late_after_ms"] == 300_000
    assert {"source", "code", "count"} == set(rates["rejections"][0])
    since_epoch = run(demo, "rates", "--since", "1970-01-01T00:00:00Z", "--json")
    assert since_epoch["from"].startswith("1970-01-01T00:00:00"), "the epoch is not 'not given'"
    assert since_epoch["rows"] == rates["rows"]
    entities = run(demo, "entities", "customer-00", "--limit", "5", "--json")
    assert [e["entity_id"] for e in entities["entities"]][:2] == ["customer-0001", "customer-0002"]
    assert entities["next"] == "customer-0005"
    assert run(demo, "verify", "--json")["ok"] is True


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["timeline", "x", "--from", "yesterday"], 2, "ISO-8601"),
        (["timeline", "x", "--cursor", "nope"], 2, "cursor"),
        (["timeline", "x", "--from", "2026-02-01", "--to", "2026-01-01"], 2, "before"),
        (["event", "not-an-id"], 2, "32 hexadecimal"),
        (["event", "0" * 32], 1, "no event"),
        (["coverage", "--by", "week"], 2, "week"),
        # An id no entity can have, such as one pasted with a trailing space.
        (["timeline", "customer-0007 "], 2, "'customer-0007 ': no entity id is like that"),
        (["coverage", "--entity", "customer-0007", "--entity", ""], 2, "no entity id is empty"),
        (["rates", "--since", "-1h", "--until", "-2h"], 2, "--since must be before --until"),
    ],
)
def test_errors_say_what_to_do(demo: Path, args: list[str], code: int, words: str) -> None:
    result = CliRunner().invoke(cli, ["--store", str(demo), *args])
    assert result.exit_code == code
    assert words in result.output


def test_a_missing_store_is_explained(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "none"), "entities"])
    assert result.exit_code == 1
    assert "no store at" in result.output


def test_a_foreign_directory_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["--store", str(tmp_path), "ingest", "-"], input=b"")
    assert result.exit_code == 1 and "not a PIK store" in result.output
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"], "nothing was added"


def test_hostile_text_is_shown_inert(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "source": "s",
            "event_type": "t",
            "entity_id": "e",
            "event_time": "2026-11-01T00:00:00Z",
            "payload": {"x": "\x1b]52;c;AAAA\x07[bold]hi[/bold]\u202e"},
        }
    )
    store = tmp_path / "s"
    CliRunner().invoke(cli, ["--store", str(store), "ingest", "-"], input=line + "\n")
    event_id = run(store, "timeline", "e", "--json")["events"][0]["event_id"]
    shown = run(store, "event", event_id)
    assert "\x1b" not in shown and "\u202e" not in shown
    assert "\\u001b]52;c;AAAA\\u0007[bold]hi[/bold]\\u202e" in shown


def test_a_store_on_the_command_line_wins_over_pik_stack(demo: Path) -> None:
    """`export PIK_STACK=...` must not send `pik --store DIR ...` to the stack."""
    result = CliRunner().invoke(
        cli, ["--store", str(demo), "--json", "entities"], env={"PIK_STACK": "no-such-stack"}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entities"]


def test_store_and_stack_together_are_refused(demo: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(demo), "--stack", "pik", "entities"])
    assert result.exit_code == 2
    assert "not both" in result.output


def test_piped_tables_keep_ids_and_times_whole_and_a_reversed_rates_range_is_refused(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    runner = CliRunner()
    page = json.loads(
        runner.invoke(cli, ["--store", str(demo), "--json", "timeline", "customer-0007"]).stdout
    )
    shown = runner.invoke(cli, ["--store", str(demo), "timeline", "customer-0007"]).stdout
    for event in page["events"][:5]:
        assert event["event_id"] in shown and event["event_time"] in shown
    refused = runner.invoke(
        cli, ["--store", str(demo), "rates", "--since", "now", "--until", "-1h"]
    )
    assert refused.exit_code == 2 and "--since must be before --until" in refused.output


def test_serve_on_a_busy_port_says_so_and_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["--store", str(tmp_path / "s"), "serve", "--port", str(port)]
        )
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "--port" in result.output and "Errno" not in result.output


def test_serve_binds_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "pik", "--store", str(tmp_path / "s"), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PIK_TOKEN": "", "COLUMNS": "200"},
    )
    try:
        assert child.stderr is not None
        said = child.stderr.readline()
        address = said.split("http://", 1)[1].split(" ", 1)[0]
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and "no token: loopback only" in said, said
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=30)
    assert child.returncode == 0


def test_json_output_carries_no_control_or_format_character_raw(tmp_path: Path) -> None:
    hostile = "\u009b2J\u009d52;c;x\u0007\u202edesrever\u200b\U000e0041"
    line = json.dumps(
        {
            "source": "s",
            "event_type": "t",
            "entity_id": "e",
            "event_time": "2026-11-01T00:00:00Z",
            "payload": {"note": hostile, "name": "Zoë 中"},
        }
    )
    data = tmp_path / "in.ndjson"
    data.write_text(line + "\n", encoding="utf-8")
    store = tmp_path / "s"
    run(store, "ingest", str(data))
    event_id = run(store, "--json", "timeline", "e")["events"][0]["event_id"]
    result = CliRunner().invoke(cli, ["--store", str(store), "--json", "event", event_id])
    assert result.exit_code == 0
    assert all(ch not in result.stdout for ch in "\u009b\u009d\u0007\u202e\u200b")
    assert "Zoë 中" in result.stdout  # printable text stays as it is
    assert json.loads(result.stdout)["payload"] == {"note": hostile, "name": "Zoë 中"}


def test_a_store_path_with_a_control_character_is_shown_inert(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "x\x1b[31mred"), "entities"])
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "x\\x1b[31mred" in result.output
