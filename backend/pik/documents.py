"""The documented JSON shapes of `pik --json` output and of the HTTP API (see docs/cli.md)."""

from __future__ import annotations

import json
from typing import Any

from pik.domain.instants import format_instant
from pik.domain.lag import LAG_LABELS
from pik.domain.records import EntityRecord, EventRecord, Problem, RateRecord, VerifyReport
from pik.services.ingest import IngestReport
from pik.services.query import CoverageReport, EventDetail, RatesReport, TimelinePage


def ingest_document(report: IngestReport) -> dict[str, Any]:
    return {
        "accepted": report.accepted,
        "duplicate": report.duplicate,
        "rejected": report.rejected,
        "lines": report.lines,
        "batches": report.batches,
        "by_code": dict(sorted(report.by_code.items())),
        "rejections": [{"line": r.line, **r.rejection.as_dict()} for r in report.rejections],
        "rejections_truncated": len(report.rejections) < report.rejected,
    }


def timeline_event(record: EventRecord) -> dict[str, Any]:
    return {
        "event_id": record.event_id.hex(),
        "entity_id": record.entity_id,
        "source": record.source,
        "event_type": record.event_type,
        "event_time": format_instant(record.event_time_us),
        "ingest_time": format_instant(record.ingest_time_us),
        "lag_ms": record.lag_ms,
        "duplicate_count": record.duplicate_count,
        "conflict_count": record.conflict_count,
    }


def timeline_document(entity_id: str, start: int, end: int, page: TimelinePage) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "from": format_instant(start),
        "to": format_instant(end),
        "events": [timeline_event(r) for r in page.events],
        "next": page.next,
        "prev": page.prev,
    }


def event_document(detail: EventDetail) -> dict[str, Any]:
    record = detail.record
    payload: Any = None
    raw_text: str | None = None
    if detail.raw is not None:
        raw_text = detail.raw.decode("utf-8", "replace")
        try:
            payload = json.loads(detail.raw).get("payload")
        except (ValueError, AttributeError):
            payload = None
    return {
        "event_id": record.event_id.hex(),
        "source": record.source,
        "event_type": record.event_type,
        "entity_id": record.entity_id,
        "event_time": format_instant(record.event_time_us),
        "idempotency_key": record.idempotency_key,
        "payload": payload,
        "ingest_time": format_instant(record.ingest_time_us),
        "lag_ms": record.lag_ms,
        "origin": record.origin,
        "sha256": record.sha256.hex(),
        "verified": detail.verified,
        "read_error": detail.read_error,
        "duplicate_count": record.duplicate_count,
        "conflict_count": record.conflict_count,
        "first_seen": format_instant(record.ingest_time_us),
        "last_seen": format_instant(record.last_seen_us),
        "attempts": [
            {
                "kind": a.kind,
                "origin": a.origin,
                "count": a.count,
                "first_seen": format_instant(a.first_seen_us),
                "last_seen": format_instant(a.last_seen_us),
            }
            for a in detail.attempts
        ],
        "location": {"segment": record.segment, "offset": record.offset, "length": record.length},
        "raw": raw_text,
    }


def coverage_document(start: int, end: int, report: CoverageReport) -> dict[str, Any]:
    return {
        "from": format_instant(start),
        "to": format_instant(end),
        "by": report.granularity,
        "windows": [
            {
                "entity_id": w.entity_id,
                "window_start": format_instant(w.window_start_us),
                "count": w.count,
            }
            for w in report.windows
        ],
        "gaps": [
            {
                "entity_id": g.entity_id,
                "window_start": format_instant(g.window_start_us),
                "window_end": format_instant(g.window_end_us),
                "windows": g.windows,
            }
            for g in report.gaps
        ],
    }


def rate_row(row: RateRecord) -> dict[str, Any]:
    return {
        "minute": format_instant(row.minute_us),
        "source": row.source,
        "accepted": row.accepted,
        "duplicate": row.duplicate,
        "rejected": row.rejected,
        "late": row.late,
        "conflict": row.conflict,
        "lag": dict(zip(LAG_LABELS, row.lag, strict=True)),
    }


def rates_document(start: int, end: int, late_after_ms: int, report: RatesReport) -> dict[str, Any]:
    return {
        "from": format_instant(start),
        "to": format_instant(end),
        "late_after_ms": late_after_ms,
        "rows": [rate_row(r) for r in report.rows],
        "rejections": [{"source": s, "code": c, "count": n} for s, c, n in report.reasons],
    }


def entities_document(rows: list[EntityRecord], next_after: str | None) -> dict[str, Any]:
    return {
        "entities": [
            {
                "entity_id": r.entity_id,
                "sources": list(r.sources),
                "first_event": format_instant(r.first_event_us),
                "last_event": format_instant(r.last_event_us),
                "count": r.count,
            }
            for r in rows
        ],
        "next": next_after,
    }


def problem_document(problem: Problem) -> dict[str, Any]:
    return {
        "kind": problem.kind,
        "severity": problem.severity,
        "message": problem.message,
        "segment": problem.segment,
        "offset": problem.offset,
        "event_id": problem.event_id.hex() if problem.event_id else None,
    }


def verify_document(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "segments": report.segments,
        "events": report.events,
        "bytes": report.bytes_checked,
        "problems": [problem_document(p) for p in report.problems],
    }
