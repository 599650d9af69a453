"""Ingest one NDJSON file with several processes, each taking a contiguous range of lines.

With one process, validating and preparing a batch and committing it take turns on one
core. With two, one validates while the other holds the store's write lock, so a large file
goes in markedly faster on two cores (docs/benchmarks.md). Every batch is validated,
written, fsync'd and indexed exactly as with one process; only which process commits which
batch differs, so ingest times no longer follow line order across ranges.

The file is cut at line boundaries, so no line is split; rejected lines keep their line
numbers in the whole file. A worker whose parent has gone stops after its current batch.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

from pik.ports import EventStore
from pik.services.ingest import REPORTED_REJECTIONS, IngestReport, RejectedLine, ingest_ndjson
from pik.storage_errors import StoreFullError, StoreUnavailableError

StoreFactory = Callable[[], EventStore]
"""Opens the store in a worker; must be picklable (a ``functools.partial`` of a class)."""
_POLL_S = 0.2
_LOST_AFTER_S = 10.0


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a parallel ingest stands: bytes of the file read, and the outcomes so far."""

    done_bytes: int
    accepted: int
    duplicate: int
    rejected: int


class WorkerFailedError(RuntimeError):
    """A worker stopped before its range was done; committed batches are stored."""


def split(path: Path, parts: int) -> list[tuple[int, int]]:
    """Up to ``parts`` byte ranges covering the file, each ending just after a newline
    (or at the end of the file); empty ranges are left out."""
    size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as handle:
        for k in range(1, parts):
            at = max(size * k // parts, bounds[-1])
            if at > 0:
                handle.seek(at - 1)
                if handle.read(1) != b"\n":
                    _skip_line(handle)  # to the start of the next line
            else:
                handle.seek(at)
            bounds.append(min(handle.tell(), size))
    bounds.append(size)
    return [(a, b) for a, b in pairwise(bounds) if b > a]


def _skip_line(handle: IO[bytes]) -> None:
    """Move past the next newline, reading a bounded chunk at a time (a line can be huge)."""
    while chunk := handle.readline(1 << 16):
        if chunk.endswith(b"\n"):
            return


class RangeStream:
    """``readline`` over ``[start, end)`` of a file, counting its physical lines."""

    def __init__(self, handle: IO[bytes], start: int, end: int) -> None:
        handle.seek(start)
        self._handle = handle
        self._end = end
        self._newlines = 0
        self._unfinished = False

    def readline(self, size: int = -1) -> bytes:
        remaining = self._end - self._handle.tell()
        if remaining <= 0:
            return b""
        line = self._handle.readline(remaining if size < 0 else min(size, remaining))
        if line.endswith(b"\n"):
            self._newlines += 1
        self._unfinished = bool(line) and not line.endswith(b"\n")
        return line

    def tell(self) -> int:
        return self._handle.tell()

    @property
    def lines(self) -> int:
        """Physical lines seen, a last line without its newline included."""
        return self._newlines + (1 if self._unfinished else 0)


def _work(
    index: int,
    open_store: StoreFactory,
    path: str,
    span: tuple[int, int],
    origin: str,
    batch_size: int,
    messages: Any,
    parent: int,
) -> None:
    """One worker: ingest one range, reporting progress, then its report and line count."""
    try:
        store = open_store()
        try:
            with open(path, "rb") as handle:
                stream = RangeStream(handle, *span)

                def advance(report: IngestReport) -> None:
                    if os.getppid() != parent:
                        raise SystemExit(1)  # nobody is waiting for the rest
                    counts = (report.accepted, report.duplicate, report.rejected)
                    messages.put(("progress", index, stream.tell() - span[0], *counts))

                report = ingest_ndjson(store, stream, origin, batch_size, on_batch=advance)
                messages.put(("done", index, report, stream.lines))
        finally:
            store.close()
    except BaseException as exc:  # reported to the parent, which decides what it means
        kind = (
            "full"
            if isinstance(exc, StoreFullError)
            else "unavailable"
            if isinstance(exc, StoreUnavailableError)
            else "failed"
        )
        messages.put((kind, index, str(exc) or type(exc).__name__))
        raise SystemExit(1) from None


def ingest_file(
    open_store: StoreFactory,
    path: Path,
    origin: str,
    batch_size: int,
    jobs: int,
    on_progress: Callable[[Progress], None] | None = None,
) -> IngestReport:
    """Ingest ``path`` with up to ``jobs`` processes; one report for the whole file."""
    spans = split(path, jobs)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    workers = [
        context.Process(
            target=_work,
            args=(i, open_store, str(path), span, origin, batch_size, messages, os.getpid()),
            daemon=True,
        )
        for i, span in enumerate(spans)
    ]
    for worker in workers:
        worker.start()
    results: dict[int, tuple[IngestReport, int]] = {}
    seen: dict[int, tuple[int, int, int, int]] = {}
    quiet_since: dict[int, float] = {}
    try:
        while len(results) < len(workers):
            try:
                message = messages.get(timeout=_POLL_S)
            except queue.Empty:
                _check_alive(workers, results, quiet_since)
                continue
            kind, index = message[0], message[1]
            if kind == "progress":
                seen[index] = message[2:]
                if on_progress:
                    on_progress(Progress(*(sum(v[i] for v in seen.values()) for i in range(4))))
            elif kind == "done":
                results[index] = (message[2], message[3])
            else:
                raise _failure(kind, message[2])
    finally:
        for worker in workers:
            if worker.is_alive() and len(results) < len(workers):
                worker.terminate()  # a kill at any point is safe: a batch is whole or absent
            worker.join()
    return merge([results[i] for i in range(len(workers))])


def _check_alive(
    workers: list[Any], results: dict[int, Any], quiet_since: dict[int, float]
) -> None:
    """Raise for a worker that ended without its report. One that exited cleanly flushed
    its report before exiting, so that is waited for a while before it counts as lost."""
    now = time.monotonic()
    for index, worker in enumerate(workers):
        if index in results or worker.is_alive() or worker.exitcode is None:
            continue
        if worker.exitcode != 0:
            raise WorkerFailedError(f"an ingest worker died (exit code {worker.exitcode})")
        if now - quiet_since.setdefault(index, now) > _LOST_AFTER_S:
            raise WorkerFailedError("an ingest worker ended without its report")


def _failure(kind: str, message: str) -> Exception:
    if kind == "full":
        return StoreFullError(28, message)
    if kind == "unavailable":
        return StoreUnavailableError(message)
    return WorkerFailedError(message)


def merge(parts: list[tuple[IngestReport, int]]) -> IngestReport:
    """One report from the ranges' reports, in file order, line numbers made whole-file."""
    whole = IngestReport()
    before = 0
    for report, lines in parts:
        whole.accepted += report.accepted
        whole.duplicate += report.duplicate
        whole.rejected += report.rejected
        whole.lines += report.lines
        whole.batches += report.batches
        whole.by_code.update(report.by_code)
        room = REPORTED_REJECTIONS - len(whole.rejections)
        whole.rejections.extend(
            RejectedLine(item.line + before, item.rejection) for item in report.rejections[:room]
        )
        before += lines
    return whole
