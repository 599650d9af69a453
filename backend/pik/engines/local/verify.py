"""`pik verify` for the local engine: re-hash raw, cross-check index and raw both ways."""

from __future__ import annotations

import hashlib

from pik import frames
from pik.domain.records import Problem, VerifyReport
from pik.engines.local import segments
from pik.engines.local.index import IndexCorruptError, SqliteIndex
from pik.engines.local.layout import Layout
from pik.engines.local.recovery import damaged_tail
from pik.engines.local.rows import segment_name
from pik.ports import Progress

_PROGRESS_EVERY = 4096
"""Events re-hashed between two reports of progress inside a segment."""


def verify_store(
    layout: Layout, index: SqliteIndex, progress: Progress | None = None
) -> VerifyReport:
    # Segment ends and event locations from different moments of a store being written
    # would disagree: events indexed in between would look misplaced.
    problems: list[Problem] = []
    try:
        with index.one_snapshot():
            return _verify(layout, index, progress, problems)
    except IndexCorruptError as exc:
        # A damaged page stops the cross-check where it is met. What was found before it
        # stands: damage to raw is not repaired by rebuilding the index.
        return VerifyReport(0, 0, 0, (*problems, Problem("index_integrity", str(exc))))


def _verify(
    layout: Layout, index: SqliteIndex, progress: Progress | None, problems: list[Problem]
) -> VerifyReport:
    problems.extend(
        Problem("index_integrity", f"SQLite integrity check: {line}")
        for line in index.integrity_problems()
    )
    rows = index.segments()
    known_ids = {row.segment_id for row in rows}
    for segment_id in layout.segment_ids():
        if segment_id not in known_ids:
            problems.append(
                Problem(
                    "orphan_segment",
                    "a segment file the index does not know (a crash may have "
                    "left it; the next write adopts it)",
                    segment_name(segment_id),
                    severity="warning",
                )
            )

    locations = index.event_locations()
    pending = next(locations, None)
    total_bytes = sum(
        segments.size(layout.segment(r.segment_id))
        for r in rows
        if layout.segment(r.segment_id).exists()
    )
    checked = events = 0
    for row in rows:
        name = segment_name(row.segment_id)
        path = layout.segment(row.segment_id)
        if not path.exists():
            problems.append(Problem("segment_missing", "the segment file is gone", name))
            while pending is not None and pending[1] == row.segment_id:
                problems.append(
                    Problem(
                        "event_missing",
                        "indexed event whose segment is missing",
                        name,
                        pending[2],
                        pending[0],
                    )
                )
                pending = next(locations, None)
            continue
        data = segments.read_all(path)
        checked += len(data)
        if row.sealed_us is not None:
            if hashlib.sha256(data[: row.committed_end]).hexdigest() != row.sha256:
                problems.append(
                    Problem(
                        "segment_checksum_mismatch",
                        "sealed segment bytes no longer match the "
                        "checksum recorded when it was sealed",
                        name,
                    )
                )
            if not segments.is_read_only(path):
                problems.append(
                    Problem(
                        "segment_writable",
                        "a sealed segment should be read-only",
                        name,
                        severity="warning",
                    )
                )
        beyond = len(data) - row.committed_end
        damage = damaged_tail(data, row.committed_end) if beyond > 0 else None
        if damage is not None:
            broken, resumes = damage
            problems.append(
                Problem(
                    "frames_after_damage",
                    f"the bytes from offset {broken} are damaged and valid frames follow from"
                    f" offset {resumes}: events stored there are not indexed, and cannot be"
                    " until the damage is dealt with (keep a copy of the segment)",
                    name,
                    broken,
                )
            )
        elif beyond > 0:
            problems.append(
                Problem(
                    "unacknowledged_tail",
                    f"{beyond} bytes past the indexed end were never acknowledged "
                    "(a torn write, or frames the next write will index)",
                    name,
                    row.committed_end,
                    severity="warning",
                )
            )
        elif beyond < 0:
            problems.append(
                Problem(
                    "segment_truncated",
                    f"the file is {-beyond} bytes shorter than indexed",
                    name,
                )
            )

        start = len(frames.SEGMENT_MAGIC) if row.committed_end else 0
        if row.committed_end and not data.startswith(frames.SEGMENT_MAGIC):
            problems.append(Problem("segment_header", "the segment magic is damaged", name, 0))
        raw_frames: dict[int, int] = {}
        broken_at = len(data)
        for item in frames.scan(data, start, min(len(data), row.committed_end)):
            if isinstance(item, int):
                broken_at = item
                problems.append(
                    Problem(
                        "frame_corrupt",
                        "a frame inside the acknowledged range fails its length "
                        "or checksum; nothing from here on in this segment can be trusted",
                        name,
                        item,
                    )
                )
                break
            if item.kind == frames.EVENT:
                raw_frames[item.raw_offset] = item.end

        before = checked - len(data)
        while pending is not None and pending[1] == row.segment_id:
            event_id, _, offset, length, digest = pending
            events += 1
            if progress and events % _PROGRESS_EVERY == 0:  # a segment is up to 64 MiB
                progress(before + offset, total_bytes)
            framed = raw_frames.pop(offset, None) == offset + length
            if hashlib.sha256(data[offset : offset + length]).digest() != digest:
                problems.append(
                    Problem(
                        "event_hash_mismatch",
                        "the stored bytes no longer hash to the indexed sha256",
                        name,
                        offset,
                        event_id,
                    )
                )
            elif not framed and offset < broken_at:
                problems.append(
                    Problem(
                        "event_location_invalid",
                        "the index points where no stored event starts",
                        name,
                        offset,
                        event_id,
                    )
                )
            pending = next(locations, None)
        for offset in sorted(raw_frames):
            problems.append(
                Problem(
                    "orphan_raw_event",
                    "a stored event the index does not know",
                    name,
                    offset,
                )
            )
        if progress:
            progress(checked, total_bytes)
    while pending is not None:
        problems.append(
            Problem(
                "event_location_invalid",
                "indexed event in an unknown segment",
                segment_name(pending[1]),
                pending[2],
                pending[0],
            )
        )
        pending = next(locations, None)
    return VerifyReport(len(rows), events, checked, tuple(problems))
