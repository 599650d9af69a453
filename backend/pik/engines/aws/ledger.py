"""The replay ledger on DynamoDB: plans, runs and audit records, in the index table.

The ledger is not derived data (nothing rebuilds it from raw); it lives beside the index
because the table already has point-in-time recovery, and because one table keeps an
operator's IAM simple: writes are granted on the ledger's partitions alone
(``shapes.LEDGER_PARTITIONS``). The keys are in ``shapes``, the requests in
``ledger_shapes``.

Why each write has the shape it has:

* a plan is saved with its audit record in one transaction, each item written once;
* a confirmation is one transaction: the plan's conditional update (it exists and was not
  confirmed), the run, its entry in the run list and the audit record. Two operators
  confirming one plan at once get one run: the other transaction is cancelled by the
  plan's condition and nothing of it is written;
* ending a run, and asking it to stop, are a conditional update (the run is running) with
  the audit record, in one transaction: a run ends once and each end is audited once;
* progress is a conditional update (``sent`` only grows), so a late or repeated write
  never moves a run backwards;
* the function invocation sending a run holds it (a conditional update naming the
  invocation and until when), so a work item delivered twice, or resumed while the run
  is being sent, does not send its messages twice;
* an audit record's day is noted first (an idempotent put), then the record: a reader
  finds the days to read with one query. A day noted without a record costs nothing.

Every read is strongly consistent. Every failure to write raises (throttling, 5xx and
network failures as ``StoreUnavailableError``), so a replay fails closed.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Iterator
from typing import Any

from pik.domain import replay
from pik.domain.instants import format_instant
from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun
from pik.engines.aws import ledger_shapes, shapes
from pik.engines.aws.clients import (
    RETRYABLE_CANCELLATIONS,
    Clients,
    error_code,
    unavailable_on_failure,
)
from pik.engines.aws.engine import AwsConfig
from pik.storage_errors import StoreUnavailableError

PART_BYTES = 300_000
"""A plan document is kept in items of at most this many bytes (DynamoDB's item limit is
400 KB; 1,000 entities of 256 four-byte characters make a plan of about 2 MB)."""
MAX_PLAN_BYTES = 3_500_000
"""A transaction carries at most 4 MB; no valid selection comes near this."""
MAX_ID_CHARS = 128
"""Longer plan or replay ids are none of ours: looked up, they are simply not found."""
ATTEMPTS = 6
CONDITION_FAILED = "ConditionalCheckFailed"


def encode(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def split_document(text: str, limit: int = PART_BYTES) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-8 bytes, never cut inside a character."""
    data = text.encode("utf-8")
    parts: list[str] = []
    start = 0
    while start < len(data) or not parts:
        end = min(start + limit, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


def _ours(identifier: object) -> bool:
    return isinstance(identifier, str) and 0 < len(identifier) <= MAX_ID_CHARS


def run_of(item: dict[str, Any]) -> ReplayRun:
    """A run item: its document, with the attributes that change over its life."""
    document = json.loads(item["doc"]["S"])
    document["status"] = item["st"]["S"]
    document["sent"] = int(item["sent"]["N"])
    document["updated"] = format_instant(int(item["up"]["N"]))
    document["cancel_requested"] = bool(item.get("cx", {}).get("BOOL", False))
    document["detail"] = item.get("dt", {}).get("S", document.get("detail", ""))
    if "rt" in item:  # a rate given when it was resumed
        document["rate"] = int(item["rt"]["N"])
    return ReplayRun.from_document(document)


class AwsReplayLedger:
    """A :class:`~pik.ports.ReplayLedger` in the stack's DynamoDB table."""

    def __init__(
        self, config: AwsConfig, *, session: Any = None, clients: Clients | None = None
    ) -> None:
        self.table = config.table
        self._clients = clients or Clients(config.region, session, config.endpoint_url)
        self._days_noted: set[int] = set()
        self._random = random.Random()

    def close(self) -> None:
        """Nothing to release: clients hold pooled connections only."""

    # --- plans ---------------------------------------------------------------------------

    def save_plan(self, plan: Plan, audit: AuditRecord) -> None:
        text = encode(plan.to_document())
        size = len(text.encode("utf-8"))
        if size > MAX_PLAN_BYTES:
            # The summary counts events by entity, source and event type: many of any of
            # them make it large, whatever the number of events.
            raise ReplayError(
                "plan_too_large",
                f"the plan's summary ({size:,} bytes: {len(plan.by_entity):,} entities, "
                f"{len(plan.by_source):,} sources, {len(plan.by_event_type):,} event types) "
                f"is larger than the {MAX_PLAN_BYTES:,} bytes a stack's ledger keeps; name "
                "fewer entities or narrow it with --source/--type, as several plans",
                422,
                "entity_ids",
            )
        actions = ledger_shapes.put_plan(self.table, plan.plan_id, split_document(text))
        self._transact([*actions, self._audit_action(audit)], "saving a replay plan")
        # Refused: the plan is saved already (its id hashes its content), and so audited.

    def plan(self, plan_id: str) -> Plan | None:
        if not _ours(plan_id):
            return None
        items = list(self._query(ledger_shapes.plan_items(self.table, plan_id), "reading a plan"))
        if not items:
            return None
        parts = int(items[0]["parts"]["N"])
        if len(items) != parts:  # parts are written in one transaction: only damage
            raise RuntimeError(f"plan {plan_id} has {len(items)} of its {parts} parts")
        return Plan.from_document(json.loads("".join(i["doc"]["S"] for i in items)))

    # --- runs ----------------------------------------------------------------------------

    def confirm(self, plan_id: str, run: ReplayRun, audit: AuditRecord) -> None:
        actions = [
            ledger_shapes.confirm_plan(self.table, plan_id, run.replay_id, run.started_us),
            ledger_shapes.put_run(
                self.table,
                run.replay_id,
                encode(run.to_document()),
                run.status,
                run.sent,
                run.updated_us,
            ),
            ledger_shapes.put_run_listing(self.table, run.started_us, run.replay_id),
            self._audit_action(audit),
        ]
        refused = self._transact(actions, "confirming a replay plan")
        if not refused:
            return
        if refused[0] != CONDITION_FAILED:
            raise RuntimeError(f"replay id {run.replay_id} is taken ({refused})")
        if self.plan(plan_id) is None:
            raise replay.plan_not_found(plan_id)
        raise replay.plan_already_confirmed(plan_id)

    def run(self, replay_id: str) -> ReplayRun | None:
        if not _ours(replay_id):
            return None
        with unavailable_on_failure("reading a replay run"):
            answer = self._clients.dynamodb.get_item(**ledger_shapes.get_run(self.table, replay_id))
        item = answer.get("Item")
        return None if item is None else run_of(item)

    def runs(self, limit: int) -> list[ReplayRun]:
        if limit <= 0:
            return []
        ids: list[str] = []
        request = ledger_shapes.newest_runs(self.table, min(limit, 1_000))
        for item in self._query(request, "listing replay runs"):
            ids.append(item["rid"]["S"])
            if len(ids) >= limit:
                break
        found: dict[str, ReplayRun] = {}
        for start in range(0, len(ids), shapes.MAX_BATCH_GET_KEYS):
            chunk = ids[start : start + shapes.MAX_BATCH_GET_KEYS]
            for item in self._batch_get(ledger_shapes.get_runs(self.table, chunk)):
                run = run_of(item)
                found[run.replay_id] = run
        return [found[i] for i in ids if i in found]

    def advance(self, replay_id: str, sent: int, now_us: int) -> None:
        from botocore.exceptions import ClientError

        if not _ours(replay_id):
            return
        try:
            with unavailable_on_failure("recording a replay's progress"):
                self._clients.dynamodb.update_item(
                    **ledger_shapes.advance_run(self.table, replay_id, sent, now_us)
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            # Progress at or past ``sent`` is recorded already (or there is no such run).

    def hold(self, replay_id: str, holder: str, until_us: int, now_us: int) -> int | None:
        """Take the right to send a run until ``until_us``. ``None`` when taken (or when
        there is no such run: sending it is refused, and audited, later); otherwise until
        when another sender holds it.

        Not part of the port: the local engine has one sender per run by a lock file,
        which its holder's death releases; a Lambda invocation can only hold for a time.
        """
        from botocore.exceptions import ClientError

        if not _ours(replay_id):
            return None
        request = ledger_shapes.hold_run(self.table, replay_id, holder, until_us, now_us)
        for _ in range(ATTEMPTS):
            try:
                with unavailable_on_failure("taking a replay run to send"):
                    self._clients.dynamodb.update_item(**request)
                return None
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            with unavailable_on_failure("reading a replay run"):
                answer = self._clients.dynamodb.get_item(
                    **ledger_shapes.get_run(self.table, replay_id)
                )
            item = answer.get("Item")
            if item is None:
                return None
            until = int(item["su"]["N"]) if "su" in item else 0
            if until >= now_us:
                return until
            # Released (or run out) between the refusal and the read: take it now.
        raise StoreUnavailableError("the replay run's sender keeps changing; retry")

    def release(self, replay_id: str, holder: str) -> None:
        """Give up the right to send a run, if ``holder`` still has it (best effort: its
        time runs out all the same)."""
        try:
            with unavailable_on_failure("releasing a replay run"):
                self._clients.dynamodb.update_item(
                    **ledger_shapes.release_run(self.table, replay_id, holder)
                )
        except Exception:  # refused (not ours any more) or unavailable: the time decides
            return

    def finish(self, replay_id: str, status: str, now_us: int, audit: AuditRecord) -> None:
        if not _ours(replay_id):
            return
        detail = "" if audit.outcome == "ok" else audit.outcome
        end = ledger_shapes.end_run(self.table, replay_id, status, now_us, detail)
        self._transact([end, self._audit_action(audit)], "ending a replay run")
        # Refused: the run ended before (or never was); it is left as it is.

    def request_cancel(self, replay_id: str, audit: AuditRecord) -> bool:
        if not _ours(replay_id):
            return False
        cancel = ledger_shapes.cancel_run(self.table, replay_id)
        return not self._transact([cancel, self._audit_action(audit)], "cancelling a replay")

    def set_rate(self, replay_id: str, rate: int) -> bool:
        from botocore.exceptions import ClientError

        if not _ours(replay_id):
            return False
        try:
            with unavailable_on_failure("changing a replay's rate"):
                self._clients.dynamodb.update_item(
                    **ledger_shapes.set_run_rate(self.table, replay_id, rate)
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- audit ---------------------------------------------------------------------------

    def audit(self, record: AuditRecord) -> None:
        put = self._audit_action(record)["Put"]
        with unavailable_on_failure("writing a replay audit record"):
            self._clients.dynamodb.put_item(**put)

    def audit_log(self, since_us: int, limit: int) -> list[AuditRecord]:
        if limit <= 0:
            return []
        first_day = shapes.audit_day(max(since_us, 0))
        days = [
            int(item["sk"]["S"])
            for item in self._query(
                ledger_shapes.audit_days(self.table, first_day), "listing audit days"
            )
        ]
        records: list[AuditRecord] = []
        for day in days:
            request = ledger_shapes.audit_records(self.table, day, since_us, limit - len(records))
            for item in self._query(request, "reading audit records"):
                records.append(AuditRecord.from_document(json.loads(item["doc"]["S"])))
                if len(records) >= limit:
                    return records
        return records

    def _audit_action(self, record: AuditRecord) -> dict[str, Any]:
        """The put of one audit record, its day noted first."""
        day = shapes.audit_day(record.at_us)
        if day not in self._days_noted:
            with unavailable_on_failure("writing a replay audit record"):
                self._clients.dynamodb.put_item(**ledger_shapes.put_audit_day(self.table, day))
            self._days_noted.add(day)
        unique = secrets.token_hex(4)  # two records of one microsecond keep apart
        return ledger_shapes.put_audit(
            self.table, record.at_us, unique, encode(record.to_document())
        )

    # --- requests ------------------------------------------------------------------------

    def _transact(self, actions: list[dict[str, Any]], what: str) -> list[str]:
        """Run one transaction. Returns nothing when it committed; the cancellation reason
        of each action (in order) when a condition refused it. A conflict with another
        transaction on the same items is retried with backoff."""
        from botocore.exceptions import ClientError

        for tries in range(ATTEMPTS):
            # A fresh token per attempt of ours; the SDK's own retries reuse it, so a
            # retried request that had in fact succeeded is not applied twice.
            request = shapes.transaction(actions, secrets.token_hex(16))
            try:
                with unavailable_on_failure(what):
                    self._clients.dynamodb.transact_write_items(**request)
                return []
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                cancelled = exc.response.get("CancellationReasons", [])
                reasons = [str(r.get("Code") or "None") for r in cancelled]
                if CONDITION_FAILED in reasons:
                    return reasons
                if set(reasons) - {"None"} <= RETRYABLE_CANCELLATIONS:
                    time.sleep(min(0.05 * 2**tries, 1.0) * (0.5 + self._random.random()))
                    continue
                raise
        raise StoreUnavailableError(
            f"{what}: DynamoDB kept reporting conflicts or throttling; retry"
        )

    def _query(self, request: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """Every item a query matches, page by page, as the caller consumes them."""
        while True:
            with unavailable_on_failure(what):
                answer = self._clients.dynamodb.query(**request)
            yield from answer.get("Items", [])
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}

    def _batch_get(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for tries in range(ATTEMPTS):
            with unavailable_on_failure("reading replay runs"):
                answer = self._clients.dynamodb.batch_get_item(**request)
            items.extend(answer.get("Responses", {}).get(self.table, []))
            unprocessed = answer.get("UnprocessedKeys") or {}
            if not unprocessed:
                return items
            request = {"RequestItems": unprocessed}
            time.sleep(min(0.05 * 2**tries, 1.0) * (0.5 + self._random.random()))
        raise StoreUnavailableError("DynamoDB kept deferring reads of replay runs; retry")
