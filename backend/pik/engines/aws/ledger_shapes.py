"""The replay ledger's DynamoDB requests, on the keys of ``shapes``.

Plain keyword dictionaries, as every request of the engine. Documents are JSON strings in
``doc``; beside them stand only the attributes that conditions and updates need:

* plan head (``P#<plan id>``/``P``): ``parts`` (how many items hold the document), and
  once confirmed ``rid`` (the replay it started) and ``cat`` (when);
* run (``X#<replay id>``/``X``): ``st`` status, ``sent``, ``up`` (last update), ``cx``
  (cancel requested), ``dt`` (the code it failed with), and while a function invocation
  sends it ``sb`` (that invocation) and ``su`` (until when it may); the document holds
  what never changes after confirmation.

Writes that go together are transaction actions (``{"Put": ...}``/``{"Update": ...}``);
the ledger runs them with ``shapes.transaction``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pik.engines.aws.shapes import (
    AUDIT_DAYS_PARTITION,
    MAX_BATCH_GET_KEYS,
    RUNS_PARTITION,
    Item,
    Request,
    audit_day_key,
    audit_key,
    audit_partition,
    n,
    pad,
    plan_part_key,
    plan_partition,
    run_key,
    run_listing_key,
    s,
)

RUNNING = "running"


# --- plans -----------------------------------------------------------------------------


def put_plan(table: str, plan_id: str, parts: Sequence[str]) -> list[Request]:
    """A plan's document in ``parts`` items, each written once (a plan id is never reused)."""
    actions: list[Request] = []
    for index, part in enumerate(parts):
        item: Item = {**plan_part_key(plan_id, index), "doc": s(part)}
        if index == 0:
            item["parts"] = n(len(parts))
        actions.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
    return actions


def plan_items(table: str, plan_id: str) -> Request:
    """Every item of one plan, head first (strongly consistent)."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": s(plan_partition(plan_id))},
        "ConsistentRead": True,
    }


def confirm_plan(table: str, plan_id: str, replay_id: str, at_us: int) -> Request:
    """Mark a plan confirmed by ``replay_id``: refused unless it exists unconfirmed."""
    return {
        "Update": {
            "TableName": table,
            "Key": plan_part_key(plan_id, 0),
            "UpdateExpression": "SET #rid = :rid, #cat = :at",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(#rid)",
            "ExpressionAttributeNames": {"#rid": "rid", "#cat": "cat"},
            "ExpressionAttributeValues": {":rid": s(replay_id), ":at": n(at_us)},
        }
    }


# --- runs ------------------------------------------------------------------------------


def put_run(
    table: str, replay_id: str, document: str, status: str, sent: int, updated_us: int
) -> Request:
    return {
        "Put": {
            "TableName": table,
            "Item": {
                **run_key(replay_id),
                "doc": s(document),
                "st": s(status),
                "sent": n(sent),
                "up": n(updated_us),
                "cx": {"BOOL": False},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def put_run_listing(table: str, started_us: int, replay_id: str) -> Request:
    """The run's entry in the list of runs by start time (written once, never changed)."""
    return {
        "Put": {
            "TableName": table,
            "Item": {**run_listing_key(started_us, replay_id), "rid": s(replay_id)},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def get_run(table: str, replay_id: str) -> Request:
    return {"TableName": table, "Key": run_key(replay_id), "ConsistentRead": True}


def get_runs(table: str, replay_ids: Iterable[str]) -> Request:
    keys = [run_key(replay_id) for replay_id in replay_ids]
    if len(keys) > MAX_BATCH_GET_KEYS:
        raise ValueError(f"a batch read holds at most {MAX_BATCH_GET_KEYS} keys, got {len(keys)}")
    return {"RequestItems": {table: {"Keys": keys, "ConsistentRead": True}}}


def newest_runs(table: str, limit: int) -> Request:
    """The run list, newest start first."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": s(RUNS_PARTITION)},
        "ScanIndexForward": False,
        "Limit": limit,
        "ConsistentRead": True,
    }


def advance_run(table: str, replay_id: str, sent: int, now_us: int) -> Request:
    """Record progress; refused (and so never moved backwards) unless ``sent`` grows."""
    return {
        "TableName": table,
        "Key": run_key(replay_id),
        "UpdateExpression": "SET #sent = :n, #up = :t",
        "ConditionExpression": "attribute_exists(pk) AND #sent < :n",
        "ExpressionAttributeNames": {"#sent": "sent", "#up": "up"},
        "ExpressionAttributeValues": {":n": n(sent), ":t": n(now_us)},
    }


def hold_run(table: str, replay_id: str, holder: str, until_us: int, now_us: int) -> Request:
    """Take the right to send a run until ``until_us``: refused while another sender
    holds it (its time not yet up), so one invocation at a time sends a run."""
    return {
        "TableName": table,
        "Key": run_key(replay_id),
        "UpdateExpression": "SET #by = :me, #until = :until",
        "ConditionExpression": (
            "attribute_exists(pk) AND (attribute_not_exists(#until) OR #until < :now OR #by = :me)"
        ),
        "ExpressionAttributeNames": {"#by": "sb", "#until": "su"},
        "ExpressionAttributeValues": {":me": s(holder), ":until": n(until_us), ":now": n(now_us)},
    }


def release_run(table: str, replay_id: str, holder: str) -> Request:
    """Give up the right to send a run: refused unless ``holder`` has it."""
    return {
        "TableName": table,
        "Key": run_key(replay_id),
        "UpdateExpression": "REMOVE #by, #until",
        "ConditionExpression": "#by = :me",
        "ExpressionAttributeNames": {"#by": "sb", "#until": "su"},
        "ExpressionAttributeValues": {":me": s(holder)},
    }


def end_run(table: str, replay_id: str, status: str, now_us: int, detail: str) -> Request:
    """End a run (``detail``: the code it failed with): refused unless it is running, so a
    run ends once."""
    return {
        "Update": {
            "TableName": table,
            "Key": run_key(replay_id),
            "UpdateExpression": "SET #st = :s, #up = :t, #dt = :d",
            "ConditionExpression": "#st = :running",
            "ExpressionAttributeNames": {"#st": "st", "#up": "up", "#dt": "dt"},
            "ExpressionAttributeValues": {
                ":s": s(status),
                ":t": n(now_us),
                ":d": s(detail),
                ":running": s(RUNNING),
            },
        }
    }


def cancel_run(table: str, replay_id: str) -> Request:
    """Ask a running run to stop: refused unless it is running."""
    return {
        "Update": {
            "TableName": table,
            "Key": run_key(replay_id),
            "UpdateExpression": "SET #cx = :yes",
            "ConditionExpression": "#st = :running",
            "ExpressionAttributeNames": {"#cx": "cx", "#st": "st"},
            "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":running": s(RUNNING)},
        }
    }


def set_run_rate(table: str, replay_id: str, rate: int) -> Request:
    """Another rate for a running run (``rt`` stands over its document's): refused unless
    it is running."""
    return {
        "TableName": table,
        "Key": run_key(replay_id),
        "UpdateExpression": "SET #rt = :rate",
        "ConditionExpression": "#st = :running",
        "ExpressionAttributeNames": {"#rt": "rt", "#st": "st"},
        "ExpressionAttributeValues": {":rate": n(rate), ":running": s(RUNNING)},
    }


# --- audit -----------------------------------------------------------------------------


def put_audit(table: str, at_us: int, unique: str, document: str) -> Request:
    return {
        "Put": {
            "TableName": table,
            "Item": {**audit_key(at_us, unique), "doc": s(document)},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def put_audit_day(table: str, day_us: int) -> Request:
    """Note a day that has audit records (idempotent), so a reader finds the days to read."""
    return {"TableName": table, "Item": audit_day_key(day_us)}


def audit_days(table: str, since_day_us: int) -> Request:
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk >= :day",
        "ExpressionAttributeValues": {":pk": s(AUDIT_DAYS_PARTITION), ":day": s(pad(since_day_us))},
        "ConsistentRead": True,
    }


def audit_records(table: str, day_us: int, since_us: int, limit: int) -> Request:
    """One day's audit records at or after ``since_us``, oldest first."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk >= :since",
        "ExpressionAttributeValues": {
            ":pk": s(audit_partition(day_us)),
            ":since": s(pad(max(since_us, 0))),
        },
        "Limit": limit,
        "ConsistentRead": True,
    }
