"""`pik --stack NAME`: the CLI finds a stack created from template.yaml by its name alone,
and every command gives the same answers as on a local store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pik.cli.main import cli
from pik.demo import demo_lines
from pik.domain.instants import parse_instant
from pik.engines.aws import AwsEngine

END = parse_instant("2026-11-27T12:00:00Z")


def pik(*args: str, code: int = 0, **env: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env=env or None)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args else result.output


def test_the_cli_on_a_stack_answers_as_on_a_local_store(
    aws_engine: AwsEngine, tmp_path: Path
) -> None:
    data = tmp_path / "demo.ndjson"
    lines = [*list(demo_lines(end_us=END))[:600], b"{not json"]
    data.write_bytes(b"\n".join(lines) + b"\n")
    local = str(tmp_path / "local")
    answers = []
    for where in (["--stack", "pik-contract"], ["--store", local]):
        report = pik(*where, "--json", "ingest", str(data), code=1)
        entities = pik(*where, "--json", "entities", "customer-000")
        first = entities["entities"][0]["entity_id"]
        timeline = pik(
            *where, "--json", "timeline", first, "--from", "2026-11-01", "--to", "2026-11-28"
        )
        coverage = pik(
            *where,
            "--json",
            "coverage",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-28",
            "--by",
            "day",
        )
        rates = pik(*where, "--json", "rates", "--since", "2026-01-01")
        event = pik(*where, "--json", "event", timeline["events"][0]["event_id"])
        verify = pik(*where, "--json", "verify")
        answers.append((report, entities, timeline, coverage, rates, event, verify))
    on_aws, on_disk = answers

    def same(a: dict[str, Any], b: dict[str, Any], *ignore: str) -> None:
        assert {k: v for k, v in a.items() if k not in ignore} == {
            k: v for k, v in b.items() if k not in ignore
        }

    same(on_aws[0], on_disk[0])
    assert on_aws[1] == on_disk[1]

    def timeline_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
        # Ingest times differ: each store took the events at its own moment.
        return [
            {k: v for k, v in e.items() if k not in {"ingest_time", "lag_ms"}}
            for e in answer["events"]
        ]

    assert timeline_of(on_aws[2]) == timeline_of(on_disk[2])
    assert on_aws[3] == on_disk[3]
    totals = [{k: v for k, v in r.items() if k != "minute"} for r in on_aws[4]["rows"]]
    assert sum(r["accepted"] for r in totals) == on_disk[0]["accepted"]
    assert on_aws[5]["verified"] and on_disk[5]["verified"]
    assert on_aws[5]["payload"] == on_disk[5]["payload"]
    assert on_aws[6]["ok"] and on_disk[6]["ok"]


def test_a_stack_that_does_not_exist_says_what_to_check(aws_engine: AwsEngine) -> None:
    output = pik("--stack", "no-such-stack", "entities", code=1)
    assert "no stack named 'no-such-stack'" in output and "AWS_DEFAULT_REGION" in output


def test_a_stack_the_policy_does_not_cover_says_what_to_check(aws_engine: AwsEngine) -> None:
    """An operator's policy allows describing its own stack only: another name, or another
    region, is refused rather than reported missing, and the message says both."""
    from aws_requests import RequestLog

    from pik.engines.aws.discovery import StackNotFoundError, stack_outputs
    from pik.engines.aws.explain import REPLAYING, WRITING, explain

    log = RequestLog()
    log.fail = lambda _n, _s, op: "AccessDenied" if op == "DescribeStacks" else None
    with pytest.raises(StackNotFoundError) as refused:
        stack_outputs("pik-typo", session=log.session())
    message = explain(refused.value) or ""
    assert "not allowed to describe a stack named 'pik-typo'" in message
    assert "region" in message and "OperatorReadOnlyPolicy" in message
    assert "injected by the test" in message  # AWS's own words: an SCP, a boundary...
    replay = explain(refused.value, REPLAYING) or ""
    assert "ReplayOperatorPolicy" in replay
    writing = explain(refused.value, WRITING) or ""
    assert "none of the stack's policies" in writing and "docs/cli.md" in writing


def test_missing_credentials_say_what_to_configure(
    aws_engine: AwsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    output = pik("--stack", "pik-contract", "entities", code=1)
    assert "no AWS credentials found" in output and "OperatorReadOnlyPolicy" in output


def test_an_unknown_profile_or_an_expired_sign_in_says_what_to_do(
    aws_engine: AwsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import UnauthorizedSSOTokenError

    from pik.engines.aws.explain import explain

    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    output = pik("--stack", "pik-contract", "entities", code=1)
    assert "no-such-profile" in output and "aws configure list-profiles" in output
    assert "could not be reached" not in output
    expired = explain(UnauthorizedSSOTokenError())
    assert expired is not None and "aws sso login" in expired


def test_no_region_says_what_to_set(aws_engine: AwsEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    output = pik("--stack", "pik-contract", "entities", code=1)
    assert "no AWS region set: set AWS_DEFAULT_REGION" in output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_ENDPOINT_URL", "notaurl"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://[::1"),
        ("PIK_API_URL", "http://127.0.0.1:99999/v1"),
        ("PIK_API_URL", "ftp://example.com/v1"),
    ],
)
def test_an_endpoint_setting_that_is_no_url_is_named_not_a_traceback(
    aws_engine: AwsEngine, name: str, value: str
) -> None:
    output = pik("--stack", "pik-contract", "entities", code=1, **{name: value})
    assert f"{name} is not a URL" in output and "Traceback" not in output


def test_an_empty_stack_name_is_refused_not_taken_for_the_local_store(tmp_path: Path) -> None:
    for empty in ("", " "):
        output = pik("--stack", empty, "ingest", str(tmp_path / "none.ndjson"), code=2)
        assert "--stack needs a stack's name" in output


def test_local_only_commands_refuse_a_stack(aws_engine: AwsEngine) -> None:
    output = pik("--stack", "pik-contract", "reindex", code=2)
    assert "point-in-time recovery" in output


def test_the_stack_can_come_from_the_environment(aws_engine: AwsEngine) -> None:
    listed = pik("--json", "entities", PIK_STACK="pik-contract")
    assert listed["entities"] == []


def test_verify_on_a_stack_points_at_its_own_repair(aws_engine: AwsEngine, make_event: Any) -> None:
    import boto3

    from pik.services.ingest import ingest_batch

    [outcome] = ingest_batch(aws_engine, [make_event(entity_id="gone")], "test")
    record = aws_engine.event(outcome.event_id or b"")
    assert record is not None
    boto3.client("s3").delete_object(Bucket=aws_engine.config.bucket, Key=record.segment)
    output = pik("--stack", "pik-contract", "verify", code=1)
    assert "point-in-time recovery" in output and "pik reindex" not in output


def test_no_versions_on_a_stack_says_how_the_stack_computes_them(aws_engine: AwsEngine) -> None:
    output = pik("--stack", "pik-contract", "versions", "list", "customer-1")
    assert "EnableProcessor" in output and "processor:<by>" not in output
