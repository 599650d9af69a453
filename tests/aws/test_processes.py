"""Four processes send one identical event to a stack at once (moto's server mode, so
separate processes share one AWS): exactly one is ACCEPTED, the others are DUPLICATE, and
the event is stored once — in the index and in raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pik.engines.aws import AwsConfig, AwsEngine

SENDER = """
import json, sys, time
from pik.engines.aws import AwsConfig, AwsEngine
from pik.services.ingest import ingest_batch

table, bucket, start, raw = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].encode()
engine = AwsEngine(AwsConfig(table, bucket))
engine.counts()  # clients made and connected before the start line
time.sleep(max(0.0, start - time.time()))
outcome = ingest_batch(engine, [raw], "process")[0]
print(json.dumps({"status": outcome.status.value, "event_id": outcome.event_id.hex()}))
"""


def test_four_processes_one_event_store_it_once(server_config: AwsConfig, tmp_path: Path) -> None:
    raw = json.dumps(
        {
            "source": "checkout",
            "event_type": "order.created",
            "entity_id": "race-4",
            "event_time": "2026-11-01T10:00:00Z",
            "payload": {"n": 1},
        }
    )
    start = time.time() + 3.0
    senders = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SENDER,
                server_config.table,
                server_config.bucket,
                str(start),
                raw,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
            text=True,
        )
        for _ in range(4)
    ]
    answers = []
    for sender in senders:
        out, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        answers.append(json.loads(out))
    assert sorted(a["status"] for a in answers) == [
        "accepted",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert len({a["event_id"] for a in answers}) == 1
    engine = AwsEngine(server_config)
    assert len(engine.timeline("race-4", 0, 2**62, 10)) == 1
    record = engine.event(bytes.fromhex(answers[0]["event_id"]))
    assert record is not None and record.duplicate_count == 3
    report = engine.verify()
    assert report.ok, report.problems
    # Each request that lost the race lost its claim before writing its object: its frame
    # there is void, so the event's bytes are stored once and verify has nothing to say.
    assert report.problems == ()
