"""Benchmark: S3 reads per 1,000 events a replay sends or the processor recomputes, on AWS.

    .venv/bin/python bench/aws_replay_reads.py          # about 3 minutes
    .venv/bin/python bench/aws_replay_reads.py --out bench/results/aws-replay-reads.json

Runs on moto (the stack of template.yaml, found by name, as in the tests). Ingests 2,000 1 KB
events in batches of 1,000 over 100 entities, then plans, confirms and sends a replay of
every event into the stack's replay queue, and feeds the messages it sent to the processor
(daily sums of a payload number). Requests are counted at botocore's before-call hook. The
ceiling is one ranged GET per event, the read a replay or a window made per event before
reads were batched. On AWS each GET is a round trip (tens of milliseconds), so the count
bounds how fast a run can send, not only what it costs.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from moto_bench import moto_arguments  # noqa: E402

START = 1_794_268_800_000_000  # 2026-11-10T00:00:00Z
EVENTS = 2_000
ENTITIES = 100
BATCH = 1_000


def measure() -> dict[str, object]:
    import boto3
    import pytest
    from aws_requests import RequestLog
    from moto import mock_aws
    from moto_patches import patch_moto_transactions
    from moto_stack import create_stack

    from pik.domain import replay
    from pik.domain.instants import US_PER_DAY, format_instant
    from pik.domain.replay import Selection
    from pik.domain.versions import AggregateSpec
    from pik.engines.aws.replay_backend import AwsReplayBackend
    from pik.engines.aws.versions import AwsVersionStore
    from pik.services.ingest import ingest_batch
    from pik.services.processor import process_messages
    from pik.services.replay import confirm_replay, execute_replay, plan_replay

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch_moto_transactions(patch)
        create_stack("pik-bench", "us-east-1")
        log = RequestLog()
        backend = AwsReplayBackend.open("pik-bench", region="us-east-1", session=log.session())
        lines = [
            json.dumps(
                {
                    "source": "checkout",
                    "event_type": "order.created",
                    "entity_id": f"customer-{i % ENTITIES:05d}",
                    "event_time": format_instant(START + i * 60_000_000),
                    "payload": {"n": i, "pad": "x" * 860},
                }
            ).encode()
            for i in range(EVENTS)
        ]
        for start in range(0, EVENTS, BATCH):
            ingest_batch(backend.store, lines[start : start + BATCH], "bench")
        entities = tuple(f"customer-{n:05d}" for n in range(ENTITIES))
        selection = Selection.build(entities, START, START + 10 * US_PER_DAY, "queue")
        plan = plan_replay(backend.store, backend.ledger, selection, "bench")
        run = confirm_replay(backend.store, backend.ledger, plan.plan_id, "bench", replay.MAX_RATE)
        sink = backend.sink_for("queue")
        log.clear()
        started = time.perf_counter()
        done = execute_replay(backend.store, backend.ledger, sink, run.replay_id, "bench")
        replay_s = time.perf_counter() - started
        replay_requests = log.by_operation()
        assert done.sent == EVENTS, done

        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = str(backend.config.replay_queue_url)
        by_seq: dict[int, bytes] = {}
        while len(by_seq) < EVENTS:
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            for m in received.get("Messages", []):
                by_seq[json.loads(m["Body"])["seq"]] = m["Body"].encode()
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        messages = [by_seq[seq] for seq in sorted(by_seq)]
        versions = AwsVersionStore(backend._clients, backend.config.table)
        log.clear()
        written = process_messages(backend.store, versions, AggregateSpec("day", "/n"), messages)
        processor_requests = log.by_operation()
    return {
        "events": EVENTS,
        "entities": ENTITIES,
        "ingest_batch": BATCH,
        "replay_seconds_on_moto": round(replay_s, 2),
        "replay_per_1k": per_1k(replay_requests),
        "windows": len(written),
        "processor_per_1k": per_1k(processor_requests),
        "ceiling_gets_per_1k": 1000.0,
    }


def per_1k(requests: Counter[str]) -> dict[str, float]:
    return {k: round(v * 1000 / EVENTS, 1) for k, v in sorted(requests.items())}


def main() -> None:
    args = moto_arguments(__doc__)
    result = measure()
    for part in ("replay_per_1k", "processor_per_1k"):
        requests = result[part]
        assert isinstance(requests, dict)
        print(f"{part}: S3 GETs {requests.get('s3:GetObject', 0)} (ceiling 1000); {requests}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {"machine": platform.platform(), **result}
        args.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
