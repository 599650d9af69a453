"""Index raw frames the index does not know yet: after a crash, and for a full rebuild.

The index is derived data. Whatever the writer indexed from a frame, this module derives
from the same frame, so `pik reindex` reproduces the index the write path built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pik import frames
from pik.domain.envelope import parse_event_id, validate
from pik.domain.limits import Limits
from pik.domain.rejection import RejectedError
from pik.engines.local import segments
from pik.engines.local.batch import IndexBatch
from pik.engines.local.index import SqliteIndex
from pik.ports import Progress

_APPLY_EVERY = 5_000


def _trusting(limits: Limits) -> Limits:
    # A frame was validated when it was written; its time checks held against its own
    # ingest clock, so recovery does not re-apply the plausibility window.
    return replace(limits, earliest_event_time_us=-(2**62), max_future_us=2**62)


def index_frames(
    index: SqliteIndex,
    segment_id: int,
    data: bytes,
    start: int,
    limits: Limits,
    reached: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Index every complete batch of frames in a segment's bytes from ``start`` on;
    ``reached`` hears how far into ``data`` each commit got.

    Returns ``(end, torn)``: where the last complete batch ends, and how many bytes past it
    do not form one (a torn tail that was never acknowledged).
    """
    trusting = _trusting(limits)
    batch = IndexBatch(segment_id, limits.late_after_us)
    pending = 0
    end = start
    seen: set[bytes] = set()

    def flush() -> None:
        nonlocal batch, pending
        if pending:
            known = index.known([row[0] for row in batch.rows])
            if known:  # never index one event twice, whatever the bytes say
                batch.rows = [row for row in batch.rows if row[0] not in known]
            index.apply(batch.rows, batch.attempts, batch.tally, segment_id, end)
            if reached:
                reached(end)
        batch, pending = IndexBatch(segment_id, limits.late_after_us), 0

    unfinished: list[frames.Frame] = []
    for item in frames.scan(data, start, len(data)):
        if isinstance(item, int):
            if unfinished and _later_batch_follows(data, item, unfinished[0].ingest_time_us):
                # A later batch was only written once this one's fsync had returned, so this
                # one was whole on disk and the damage came after: the frames it has before
                # the damage are kept, not lost with the bytes that were damaged.
                for frame in unfinished:
                    _index_frame(batch, frame, trusting, seen)
                pending += len(unfinished)
                end = unfinished[-1].end
            break
        if item.kind != frames.BATCH_END:
            unfinished.append(item)
            continue
        for frame in unfinished:
            _index_frame(batch, frame, trusting, seen)
        pending += len(unfinished) + 1
        unfinished.clear()
        end = item.end
        if pending >= _APPLY_EVERY:
            flush()
    flush()
    torn = len(data) - end
    return end, torn


def _index_frame(batch: IndexBatch, frame: frames.Frame, limits: Limits, seen: set[bytes]) -> None:
    ingest = frame.ingest_time_us
    if frame.kind == frames.VOID:
        return  # holds no data
    if frame.kind == frames.EVENT:
        origin, raw = frame.event_parts()
        try:
            event = validate(raw, ingest, limits)
        except RejectedError:
            return  # cannot happen for bytes this engine wrote; `verify` reports it
        if event.event_id in seen:
            return
        seen.add(event.event_id)
        batch.event(event, origin, ingest, frame.raw_offset)
        return
    record = frame.record()
    source = str(record.get("source", "(unknown)"))
    origin = str(record.get("origin", ""))
    if frame.kind == frames.REJECTION:
        batch.rejection(source, str(record.get("code", "unknown")), ingest)
        return
    event_id = parse_event_id(str(record["event_id"]))
    if frame.kind == frames.DUPLICATE:
        batch.duplicate(event_id, source, origin, ingest)
    else:
        batch.conflict(event_id, source, origin, ingest)


def _later_batch_follows(data: bytes, broken: int, ingest_time_us: int) -> bool:
    """Whether valid frames of a batch after the one broken at ``broken`` lie past it.

    Valid frames right after the damage are not enough: a power cut during a write whose
    fsync never returned can leave a hole in its middle and its later pages (its end frame
    too) on disk. A frame of another ingest time, or one past an end frame, is of a batch
    written after this one, which only happens once this one was durable."""
    resumes = frames.resumes_after(data, broken)
    if resumes is None:
        return False
    ended = False
    for item in frames.scan(data, resumes, len(data)):
        if isinstance(item, int):
            return False
        if ended or item.ingest_time_us != ingest_time_us:
            return True
        ended = item.kind == frames.BATCH_END
    return False


def _offset_within(progress: Progress, before: int, total: int) -> Callable[[int], None]:
    """Progress over all segments, from an offset into the one at ``before`` bytes."""
    return lambda offset: progress(before + offset, total)


def damaged_tail(data: bytes, end: int) -> tuple[int, int] | None:
    """For the bytes past a segment's indexed ``end``: where they break off and where valid
    frames resume after that, when they do (damage); None for a torn tail, or none."""
    broken = next((i for i in frames.scan(data, end, len(data)) if isinstance(i, int)), None)
    if broken is None:
        return None
    resumes = frames.resumes_after(data, broken)
    return None if resumes is None else (broken, resumes)


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes of a segment that a rebuild could not read, with valid frames after them."""

    segment_id: int
    offset: int
    resumes: int


def rebuild(
    index_path: Path,
    store_id: str,
    segment_files: list[tuple[int, Path]],
    limits: Limits,
    timestamps: dict[int, tuple[int, int | None]],
    progress: Progress | None = None,
) -> list[Damage]:
    """Build a complete index at ``index_path`` from the segment files alone; returns the
    damage that stopped it short of a segment's valid frames (their events not indexed).

    ``timestamps`` carries each segment's (created, sealed) times from the old index when it
    could still be read; otherwise the file's modification time stands in for both.
    """
    damages: list[Damage] = []
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{index_path}{suffix}").unlink(missing_ok=True)
    index = SqliteIndex(index_path, store_id, create=True)
    index.build_without_wal()
    built = False
    try:
        total = sum(path.stat().st_size for _, path in segment_files)
        done = 0
        last = segment_files[-1][0] if segment_files else None
        for segment_id, path in segment_files:
            data = segments.read_all(path)
            mtime = int(os.path.getmtime(path) * 1_000_000)
            created, sealed = timestamps.get(segment_id, (mtime, None))
            has_magic = data.startswith(frames.SEGMENT_MAGIC)
            start = len(frames.SEGMENT_MAGIC) if has_magic else 0
            index.add_segment(segment_id, created, start)
            if has_magic:
                # A segment is up to 64 MiB: the bar moves with each commit inside it.
                within = None if progress is None else _offset_within(progress, done, total)
                end, torn = index_frames(index, segment_id, data, start, limits, within)
            else:
                end, torn = 0, len(data)
            damage = damaged_tail(data, end) if torn else None
            if damage is not None:
                damages.append(Damage(segment_id, *damage))
            # Only the last segment, begun by this engine and whole, can take more frames.
            if segment_id != last or torn or not has_magic or segments.is_read_only(path):
                sealed_at = sealed if sealed is not None else mtime
                segments.seal(path)
                index.seal_segment(segment_id, sealed_at, segments.digest(path, end), torn)
            done += len(data)
            if progress:
                progress(done, total)
        built = True
    finally:
        if built:
            index.finish_build()
        else:
            index.close()
    return damages
