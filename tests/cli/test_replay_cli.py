"""`pik replay` end to end on a real store: plan, run, resume, cancel, status, audit; the JSON
documents, the refusals and exit codes, and Ctrl-C in the middle of a run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pty_session import run_in_pty

from pik.cli.main import cli
from pik.domain import replay
from pik.engines.local.ledger import LocalReplayLedger
from pik.engines.local.replay import LocalReplayBackend
from pik.services.replay import confirm_replay

PIK = [sys.executable, "-m", "pik"]
WINDOW = ["--from", "2026-11-01", "--to", "2026-11-02"]
PLAN_KEYS = {
    "plan_id",
    "selection",
    "digest",
    "events",
    "bytes",
    "first_event_time",
    "last_event_time",
    "as_of",
    "by_entity",
    "by_source",
    "by_event_type",
    "sample",
    "created",
    "expires",
    "created_by",
}
RUN_KEYS = {
    "replay_id",
    "plan_id",
    "target",
    "status",
    "total",
    "sent",
    "rate",
    "confirmed_by",
    "started",
    "updated",
    "cancel_requested",
    "detail",
}
MESSAGE_KEYS = {
    "replay_id",
    "plan_id",
    "seq",
    "total",
    "event_id",
    "entity_id",
    "source",
    "event_type",
    "event_time",
    "ingest_time",
    "sha256",
    "raw",
}


def events(count: int, entities: int = 3) -> bytes:
    return b"".join(
        json.dumps(
            {
                "source": ("shop", "pay")[n % 2],
                "event_type": "order.created",
                "entity_id": f"c{n % entities}",
                "event_time": f"2026-11-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.25Z",
                "payload": {"n": n},
            }
        ).encode()
        + b"\n"
        for n in range(count)
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    data = tmp_path / "in.ndjson"
    data.write_bytes(events(90))
    path = tmp_path / "store"
    invoke(path, "ingest", str(data))
    return path


def invoke(store: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], env={"COLUMNS": "250"})
    assert result.exit_code == code, (result.output, result.exception)
    return result


def document(store: Path, *args: str, code: int = 0) -> Any:
    return json.loads(invoke(store, *args, "--json", code=code).stdout)


def plan(store: Path, target: Path, *extra: str) -> dict[str, Any]:
    made = document(
        store, "replay", "plan", "c0", "c1", *WINDOW, "--target", f"file:{target}", *extra
    )
    assert isinstance(made, dict)
    return made


def runs(store: Path) -> list[Any]:
    """The runs the store's ledger holds, newest first."""
    ledger = LocalReplayLedger(store)
    try:
        return list(ledger.runs(10))
    finally:
        ledger.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_plan_then_run_sends_the_planned_events_to_the_file(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    made = plan(store, out)
    assert set(made) == PLAN_KEYS
    assert (made["events"], made["by_entity"]) == (60, {"c0": 30, "c1": 30})
    assert made["selection"]["target"] == f"file:{out}"
    assert made["expires"].endswith("Z") and len(made["expires"]) == 27
    assert not out.exists(), "a plan sends nothing"
    run = document(store, "replay", "run", made["plan_id"], "--confirm", "--rate", "5000")
    assert set(run) == RUN_KEYS
    assert (run["status"], run["sent"], run["total"], run["rate"]) == ("completed", 60, 60, 5000)
    sent = lines(out)
    assert [m["seq"] for m in sent] == list(range(1, 61))
    assert set(sent[0]) == MESSAGE_KEYS
    assert {m["replay_id"] for m in sent} == {run["replay_id"]}
    assert {m["entity_id"] for m in sent} == {"c0", "c1"}
    assert [m["event_time"] for m in sent] == sorted(m["event_time"] for m in sent)

    one = document(store, "replay", "status", run["replay_id"])
    assert one == run
    recent = document(store, "replay", "status")
    assert set(recent) == {"runs"} and recent["runs"] == [run]
    audit = document(store, "replay", "audit", "--since", "2000-01-01")
    assert set(audit) == {"since", "records", "more", "next_since"} and audit["more"] is False
    assert [r["action"] for r in audit["records"]] == ["planned", "confirmed", "completed"]
    # Page by page, following next_since, every record once and in order.
    pages, since = [], "2000-01-01"
    while since is not None:
        page = document(store, "replay", "audit", "--since", since, "--limit", "1")
        pages += [r["action"] for r in page["records"]]
        since = page["next_since"]
    assert pages == ["planned", "confirmed", "completed"]
    assert set(audit["records"][0]) == {
        "at",
        "who",
        "action",
        "plan_id",
        "replay_id",
        "outcome",
        "detail",
    }


def test_the_plan_shows_the_exact_command_that_runs_it(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    shown = invoke(
        store, "replay", "plan", "c2", *WINDOW, "--source", "pay", "--target", f"file:{out}"
    ).stdout
    assert "15 (" in shown and "pay" in shown and f"file:{out}" in shown
    command = next(line for line in shown.splitlines() if "replay run" in line)
    words = shlex.split(command.split(":", 1)[1])
    assert words[:3] == ["pik", "--store", str(store.resolve())]
    result = CliRunner().invoke(cli, [*words[1:], "--confirm"])
    assert result.exit_code == 0, result.output
    assert "sent 15 of 15" in result.stdout
    assert len(lines(out)) == 15


def test_the_plan_names_what_it_selects_that_has_no_event(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    shown = invoke(
        store,
        "replay",
        "plan",
        "c2",
        "c-2",
        *WINDOW,
        "--source",
        "pay",
        "--source",
        "pya",
        "--target",
        f"file:{out}",
    ).stdout
    said = " ".join(shown.split())
    assert "no event in this window of entities: c-2 (a typo?" in said
    assert "no event in this window of sources: pya" in said
    assert "event types" not in said.split("no event in this window of")[-1]
    nothing = " ".join(
        invoke(store, "replay", "plan", "c-2", *WINDOW, "--target", f"file:{out}").stdout.split()
    )
    assert "no event in this window of entities: c-2" in nothing
    assert "there is nothing to replay" in nothing


def test_run_without_confirm_and_no_terminal_sends_nothing(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    made = plan(store, out)
    refused = invoke(store, "replay", "run", made["plan_id"], code=1)
    assert "--confirm" in refused.stderr and "nothing was sent" in refused.stderr
    assert made["plan_id"] in refused.stdout, "the plan summary was shown first"
    assert not out.exists()
    assert runs(store) == []
    assert document(store, "replay", "run", made["plan_id"], "--confirm")["sent"] == 60


def test_a_plan_this_clock_calls_expired_still_needs_a_yes(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store judges expiry by its own clock: a fast local clock must not skip the question
    # and leave the store to accept a confirmation nobody gave.
    out = tmp_path / "out.ndjson"
    made = plan(store, out)
    monkeypatch.setattr("pik.cli.replay.now_us", lambda: 2**62)
    refused = invoke(store, "replay", "run", made["plan_id"], code=1)
    assert "looks expired" in refused.stdout
    assert "--confirm" in refused.stderr and "nothing was sent" in refused.stderr
    assert not out.exists()
    assert runs(store) == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["run", "0" * 32, "--confirm"], "plan_not_found"),
        (["resume", "f" * 32], "replay_not_found"),
        (["cancel", "f" * 32], "replay_not_found"),
        (["status", "f" * 32], "replay_not_found"),
        (["plan", "c0", *WINDOW, "--target", "s3://bucket/key"], "invalid_selection"),
        (["plan", "c0", *WINDOW, "--target", "file:/no/such/dir/out"], "invalid_selection"),
    ],
)
def test_refusals_exit_1_with_their_code(
    store: Path, tmp_path: Path, args: list[str], code: str
) -> None:
    made = plan(store, tmp_path / "out.ndjson")
    args = [made["plan_id"] if a == "PLAN" else a for a in args]
    result = invoke(store, "replay", *args, "--json", code=1)
    assert f"[{code}]" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out.ndjson").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "PLAN", "--confirm", "--rate", "0"], "--rate"),
        (["run", "PLAN", "--confirm", "--rate", "10001"], "--rate"),
        (
            ["plan", "c0", "--from", "2026-11-02", "--to", "2026-11-01", "--target", "file:x"],
            "--from",
        ),
        (["run", "nothex", "--confirm"], "PLAN_ID"),
        (["resume", "f" * 31], "REPLAY_ID"),
        (["cancel", "Bearer abc"], "REPLAY_ID"),
        (["status", "F" * 32], "REPLAY_ID"),
    ],
)
def test_a_wrong_command_line_exits_2_before_anything_is_asked(
    store: Path, tmp_path: Path, args: list[str], named: str
) -> None:
    made = plan(store, tmp_path / "out.ndjson")
    before = document(store, "replay", "audit", "--since", "2000-01-01")["records"]
    args = [made["plan_id"] if a == "PLAN" else a for a in args]
    result = invoke(store, "replay", *args, code=2)
    assert named in result.stderr
    assert document(store, "replay", "audit", "--since", "2000-01-01")["records"] == before
    assert not (tmp_path / "out.ndjson").exists()


def test_a_plan_runs_once_and_an_ended_run_is_not_resumed(store: Path, tmp_path: Path) -> None:
    made = plan(store, tmp_path / "out.ndjson")
    run = document(store, "replay", "run", made["plan_id"], "--confirm")
    again = invoke(store, "replay", "run", made["plan_id"], "--confirm", code=1)
    assert "[plan_already_confirmed]" in again.stderr
    resumed = invoke(store, "replay", "resume", run["replay_id"], code=1)
    assert "[replay_ended]" in resumed.stderr
    cancelled = invoke(store, "replay", "cancel", run["replay_id"], code=1)
    assert "[replay_not_running]" in cancelled.stderr
    assert len(lines(tmp_path / "out.ndjson")) == 60
    audit = document(store, "replay", "audit")["records"]
    assert [(r["action"], r["outcome"]) for r in audit[-3:]] == [
        ("refused", "plan_already_confirmed"),
        ("refused", "replay_ended"),
        ("refused", "replay_not_running"),
    ]


def test_command_line_mistakes_exit_2(store: Path) -> None:
    invoke(store, "replay", "plan", "c0", *WINDOW, code=2)  # no --target
    invoke(store, "replay", "plan", *WINDOW, "--target", "file:x", code=2)  # no entity
    invoke(store, "replay", "plan", "c0", "--from", "yesterday", "--to", "now", code=2)
    invoke(store, "replay", "run", "p", "--rate", "fast", code=2)


def test_a_missing_store_says_so(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nothing", "replay", "status", code=1)
    assert "no store" in result.stderr


def test_untrusted_names_are_shown_literally(store: Path, tmp_path: Path) -> None:
    shown = invoke(
        store,
        "replay",
        "plan",
        "[bold]c0[/bold]",
        "[link=x]y",
        *WINDOW,
        "--target",
        f"file:{tmp_path}/[red]o.ndjson",
    ).stdout
    assert "[bold]c0[/bold]" in shown and "[link=x]y" in shown and "[red]o.ndjson" in shown
    bad = invoke(store, "replay", "plan", "c\x1b[2J", *WINDOW, "--target", "file:x", code=1)
    assert "[invalid_selection]" in bad.stderr and "\x1b" not in bad.stderr


def test_status_lists_runs_and_cancel_marks_a_running_one(store: Path, tmp_path: Path) -> None:
    assert document(store, "replay", "status") == {"runs": []}
    assert "no replays yet" in invoke(store, "replay", "status").stdout
    first = plan(store, tmp_path / "a.ndjson")
    document(store, "replay", "run", first["plan_id"], "--confirm")
    second = plan(store, tmp_path / "b.ndjson")
    # Confirmed elsewhere and sent by no process (as after a crash before the first batch).
    backend = LocalReplayBackend.open(store, who="bob")
    try:
        open_run = confirm_replay(backend.store, backend.ledger, second["plan_id"], "bob")
    finally:
        backend.close()
    listed = document(store, "replay", "status")["runs"]
    assert listed[0]["replay_id"] == open_run.replay_id
    assert [r["status"] for r in listed] == ["running", "completed"]
    marked = document(store, "replay", "cancel", open_run.replay_id)
    assert (marked["status"], marked["cancel_requested"]) == ("running", True)
    shown = invoke(store, "replay", "status").stdout
    assert "cancel requested" in shown
    ended = document(store, "replay", "resume", open_run.replay_id, code=1)  # not completed
    assert (ended["status"], ended["sent"]) == ("cancelled", 0)
    assert not (tmp_path / "b.ndjson").exists() or lines(tmp_path / "b.ndjson") == []


def test_ctrl_c_leaves_the_run_resumable(tmp_path: Path) -> None:
    data, store, out = tmp_path / "in.ndjson", tmp_path / "store", tmp_path / "out.ndjson"
    data.write_bytes(events(120, entities=1))
    invoke(store, "ingest", str(data))
    made = document(store, "replay", "plan", "c0", *WINDOW, "--target", f"file:{out}")
    child = subprocess.Popen(
        [
            *PIK,
            "--store",
            str(store),
            "replay",
            "run",
            made["plan_id"],
            "--confirm",
            "--rate",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or len(lines(out)) < 40):
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    said = stderr.decode()
    assert "interrupted" in said and "still open" in said
    resume = next(line for line in said.splitlines() if "resume it:" in line)
    words = shlex.split(resume.split(":", 1)[1])
    assert words[:3] == ["pik", "--store", str(store)] and words[3:5] == ["replay", "resume"]
    before = {m["seq"] for m in lines(out)}
    assert 40 <= len(before) < 120
    # Faster than it was confirmed at (40/s): the rest goes at the rate given, audited.
    done = subprocess.run(
        [*PIK, *words[1:], "--rate", "5000", "--json"], capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    finished = json.loads(done.stdout)
    assert (finished["status"], finished["rate"]) == (replay.COMPLETED, 5000)
    resumed = [
        r
        for r in document(store, "replay", "audit", "--since", "2000-01-01")["records"]
        if r["action"] == replay.RESUME_REQUESTED
    ]
    assert [r["detail"] for r in resumed] == [{"rate": 5000, "was": 40}]
    seqs = [m["seq"] for m in lines(out)]
    assert set(seqs) == set(range(1, 121))
    assert len(seqs) - 120 <= 40, "at most the batch in flight is sent again"


def answer_in_a_terminal(argv: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal, type ``answer`` at its question; exit code and
    everything it wrote."""
    session = run_in_pty(argv, [(b"[y/N]", 0.0, answer)], timeout=60, term="dumb", columns=200)
    assert session.typed == 1, session.output
    return session.returncode, session.output.decode(errors="replace")


def test_on_a_terminal_run_asks_and_no_is_the_default(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    made = plan(store, out)
    argv = [*PIK, "--store", str(store), "replay", "run", made["plan_id"]]
    code, said = answer_in_a_terminal(argv, b"\r")
    assert code == 1 and "Send 60 event(s)" in said and "nothing was sent" in said
    assert not out.exists()
    code, said = answer_in_a_terminal(argv, b"y\r")
    assert code == 0, said
    assert "sent 60 of 60" in said
    assert len(lines(out)) == 60


def test_a_target_too_long_once_made_absolute_is_refused_when_planning(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path.joinpath(*["d" * 200] * 5)
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    target = "file:" + "o" * 40  # short as typed, past the limit as recorded
    result = invoke(store, "replay", "plan", "c0", *WINDOW, "--target", target, "--json", code=1)
    assert "[invalid_selection]" in result.stderr and "target" in result.stderr
    audit = document(store, "replay", "audit", "--since", "2000-01-01", "--json")
    assert [r["action"] for r in audit["records"]] == []
