"""Benchmark: AWS requests and capacity units per 1,000 ingested events, and their cost.

    .venv/bin/python bench/aws_requests.py                 # every shape, about a minute
    .venv/bin/python bench/aws_requests.py --out bench/results/aws-requests.json

Runs the AWS engine on moto (the stack of template.yaml, found by name, as in the tests)
and counts every request at botocore's before-call hook, by batch size and by how many
entities a batch spans. Capacity units follow DynamoDB's rules for the writes actually
sent: a transactional write costs 2 WRU per KB of item, each write to a global secondary
index 1 WRU, a strongly consistent read 1 RRU per 4 KB (missing items included). The
prices below turn them into dollars per million events. The ceiling we compare against is
the same events stored the naive way — one S3 object and one index write per event —
priced with the same table.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from moto_bench import moto_arguments  # noqa: E402

# On-demand prices, us-east-1, read from the AWS price pages in November 2026. Change them
# here and rerun; nothing else depends on them.
PRICES = {
    "s3_put_per_1k": 0.005,
    "s3_get_per_1k": 0.0004,
    "dynamodb_wru_per_million": 0.625,
    "dynamodb_rru_per_million": 0.125,
    "lambda_request_per_million": 0.20,
    "lambda_gb_second": 0.0000166667,
    "api_gateway_rest_per_million": 3.50,
}
# Provisioned capacity (the template's IndexCapacity=provisioned), us-east-1, November 2026:
# per capacity unit and hour, paid whether used or not. Auto scaling keeps the use near its
# target (70%), so a unit consumed costs the hourly price / 3,600 / that use.
PROVISIONED = {
    "wcu_hour": 0.00065,
    "rcu_hour": 0.00013,
    "utilisation": 0.70,
}
LAMBDA_GB = 0.5
LAMBDA_SECONDS_PER_BATCH = 0.4
"""Assumed billed duration of one ingest invocation (a batch); measure on a deployment."""

START = 1_794_268_800_000_000  # 2026-11-10T00:00:00Z
SHAPES = [  # (batch size, entities a batch spans, events to send)
    (1, 1, 200),
    (10, 10, 500),
    (100, 100, 2000),
    (100, 10, 2000),
    (1000, 1000, 3000),
    (1000, 100, 3000),
    (1000, 10, 3000),
]


@dataclass
class Shape:
    batch: int
    entities: int
    events: int
    requests_per_1k: float
    by_operation_per_1k: dict[str, float]
    wru_per_event: float
    rru_per_event: float
    cost_per_million: dict[str, float]


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers ~ digits / 2 + 1)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            total += len(raw.encode())
        elif kind == "B":
            total += len(raw)
        elif kind == "N":
            total += math.ceil(len(raw.lstrip("-")) / 2) + 1
        else:
            total += len(json.dumps(raw))
    return total


def units(calls: list[tuple[str, str, dict[str, Any]]], stored: dict[str, int]) -> tuple[int, int]:
    """(WRU, RRU) of the requests sent, by DynamoDB's pricing rules."""
    wru = rru = 0
    for service, operation, params in calls:
        if service != "dynamodb":
            continue
        if operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                if kind == "Put":
                    size = item_size(body["Item"])
                    gsi = 1 if "tl_pk" in body["Item"] else 0  # an event enters the timeline
                else:
                    key = json.dumps(body["Key"], sort_keys=True)
                    size = stored.get(key, 300)
                    gsi = 1 if body["Key"]["pk"]["S"].startswith("C#") else 0  # directory
                wru += 2 * math.ceil(size / 1024) + gsi
        elif operation == "BatchGetItem":
            for table in params["RequestItems"].values():
                rru += len(table["Keys"])  # <= 4 KB each, strongly consistent
    return wru, rru


def cost(requests: Counter[str], wru: int, rru: int, events: int, batches: int) -> dict[str, float]:
    scale = 1_000_000 / events
    per_million = {
        "s3": requests["s3:PutObject"] * scale * PRICES["s3_put_per_1k"] / 1000,
        "dynamodb": (
            wru * scale * PRICES["dynamodb_wru_per_million"]
            + rru * scale * PRICES["dynamodb_rru_per_million"]
        )
        / 1_000_000,
        "lambda": batches
        * scale
        * (
            PRICES["lambda_request_per_million"] / 1_000_000
            + LAMBDA_GB * LAMBDA_SECONDS_PER_BATCH * PRICES["lambda_gb_second"]
        ),
        "api_gateway": batches * scale * PRICES["api_gateway_rest_per_million"] / 1_000_000,
    }
    per_million["total"] = sum(per_million.values())
    # The same units on provisioned capacity: a write unit a second for an hour is 3,600
    # writes, at the target use.
    unit = 3600 * PROVISIONED["utilisation"]
    per_million["dynamodb_provisioned"] = (
        wru * scale * PROVISIONED["wcu_hour"] / unit + rru * scale * PROVISIONED["rcu_hour"] / unit
    )
    per_million["total_provisioned"] = (
        per_million["total"] - per_million["dynamodb"] + per_million["dynamodb_provisioned"]
    )
    return {k: round(v, 3) for k, v in per_million.items()}


def naive_cost() -> dict[str, float]:
    """One object per event, one conditional put (+ timeline index) and one counter update
    per event, one API request per event: the design the issue compares against."""
    million = 1_000_000
    per_million = {
        "s3": million * PRICES["s3_put_per_1k"] / 1000,
        "dynamodb": (3 * million * PRICES["dynamodb_wru_per_million"]) / million,
        "lambda": million
        * (
            PRICES["lambda_request_per_million"] / million
            + LAMBDA_GB * 0.05 * PRICES["lambda_gb_second"]
        ),
        "api_gateway": PRICES["api_gateway_rest_per_million"],
    }
    per_million["total"] = sum(per_million.values())
    return {k: round(v, 3) for k, v in per_million.items()}


def run_shape(batch: int, entities: int, events: int) -> Shape:
    import boto3
    import pytest
    from aws_requests import RequestLog
    from moto import mock_aws
    from moto_patches import patch_moto_transactions
    from moto_stack import create_stack

    from pik.domain.instants import format_instant
    from pik.engines.aws import AwsEngine
    from pik.engines.aws.discovery import discover
    from pik.services.ingest import ingest_batch

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch_moto_transactions(patch)
        create_stack("pik-bench", "us-east-1")
        log = RequestLog()
        engine = AwsEngine(discover("pik-bench", region="us-east-1"), session=log.session())
        payload = "x" * 860
        # A stream in time order, one event a second; each entity reports through one of
        # four sources, and a batch cycles through its share of the entities.
        lines = [
            json.dumps(
                {
                    "source": f"source-{i % entities % 4}",
                    "event_type": "order.created",
                    "entity_id": f"customer-{i % entities:05d}",
                    "event_time": format_instant(START + i * 1_000_000),
                    "payload": {"n": i, "pad": payload},
                }
            ).encode()
            for i in range(events)
        ]
        for start in range(0, events, batch):
            ingest_batch(engine, lines[start : start + batch], "bench")
        client = boto3.client("dynamodb", region_name="us-east-1")
        stored: dict[str, int] = {}
        for page in client.get_paginator("scan").paginate(TableName=engine.config.table):
            for item in page["Items"]:
                key = {"pk": item["pk"], "sk": item["sk"]}
                stored[json.dumps(key, sort_keys=True)] = item_size(item)
        requests = log.by_operation()
        wru, rru = units(log.calls, stored)
    total = sum(requests.values())
    batches = math.ceil(events / batch)
    return Shape(
        batch,
        entities,
        events,
        round(total * 1000 / events, 1),
        {k: round(v * 1000 / events, 1) for k, v in sorted(requests.items())},
        round(wru / events, 2),
        round(rru / events, 2),
        cost(requests, wru, rru, events, batches),
    )


def main() -> None:
    args = moto_arguments(__doc__)
    results = []
    print(
        f"{'batch':>6} {'entities':>8} {'req/1k':>7} {'WRU/ev':>7} {'RRU/ev':>7} "
        f"{'$/M on-demand':>14} {'$/M provisioned':>16}"
    )
    for batch, entities, events in SHAPES:
        shape = run_shape(batch, entities, events)
        results.append(shape)
        print(
            f"{batch:>6} {entities:>8} {shape.requests_per_1k:>7} {shape.wru_per_event:>7} "
            f"{shape.rru_per_event:>7} {shape.cost_per_million['total']:>14} "
            f"{shape.cost_per_million['total_provisioned']:>16}",
            flush=True,
        )
    naive = naive_cost()
    print(f"one object per event: ~3000 req/1k, ${naive['total']} per million events")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "machine": platform.platform(),
            "prices": PRICES,
            "provisioned": PROVISIONED,
            "lambda": {"gb": LAMBDA_GB, "seconds_per_batch": LAMBDA_SECONDS_PER_BATCH},
            "shapes": [asdict(r) for r in results],
            "naive": naive,
        }
        args.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
