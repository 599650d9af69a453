"""`pik ingest --jobs N`: a file cut into ranges at line boundaries, each ingested by its own
process into one store; the report is the one a single process would give."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from children import store_on_a_full_disk
from click.testing import CliRunner

from pik.cli.main import cli
from pik.demo import demo_lines
from pik.domain.instants import parse_instant
from pik.engines.local import LocalEngine
from pik.services.parallel_ingest import RangeStream, ingest_file, split
from pik.storage_errors import StoreFullError

END = parse_instant("2026-11-20T00:00:00Z")
# Codes that do not depend on which of two lines was stored first.
ORDER_FREE = {"invalid_json", "missing_field", "invalid_characters"}


def ingest(store: Path, data: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["--store", str(store), "ingest", str(data), "--json", *extra])
    assert result.exit_code in (0, 1), result.output
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("ending", [b"\n", b""], ids=["newline-at-end", "none-at-end"])
def test_ranges_cover_the_file_and_end_at_line_boundaries(tmp_path: Path, ending: bytes) -> None:
    data = tmp_path / "lines.ndjson"
    lines = [b"x" * (n * 37 % 500) for n in range(400)]
    data.write_bytes(b"\n".join(lines) + ending)
    for parts in (1, 2, 3, 7):
        spans = split(data, parts)
        assert spans[0][0] == 0 and spans[-1][1] == data.stat().st_size
        assert all(a[1] == b[0] for a, b in pairwise(spans))
        counted = 0
        with open(data, "rb") as handle:
            for start, end in spans:
                if start:
                    handle.seek(start - 1)
                    assert handle.read(1) == b"\n", "a range begins at a line's start"
                stream = RangeStream(handle, start, end)
                while stream.readline(100):
                    pass
                counted += stream.lines
        assert counted == len(lines)
    assert len(split(data, 1000)) <= len(lines)


def test_several_processes_report_what_one_would(tmp_path: Path) -> None:
    data = tmp_path / "demo.ndjson"
    body = b"\n".join(demo_lines(end_us=END))
    data.write_bytes(b"\n\n" + body + b"\n\n" + body[: body.index(b"\n")])  # blanks; no newline
    one = ingest(tmp_path / "one", data, "--jobs", "1", "--batch-size", "2000")
    three = ingest(tmp_path / "three", data, "--jobs", "3", "--batch-size", "2000")
    for key in ("accepted", "duplicate", "rejected", "lines", "by_code"):
        assert one[key] == three[key], key
    assert (one["batches"], three["batches"]) == (5, 6), "three ranges of about 3,000 lines"

    def order_free(report: dict[str, Any]) -> list[tuple[int, str]]:
        return [(r["line"], r["code"]) for r in report["rejections"] if r["code"] in ORDER_FREE]

    assert order_free(one) == order_free(three)
    for name in ("one", "three"):
        engine = LocalEngine(tmp_path / name, create=False, read_only=True)
        try:
            report = engine.verify()
            assert report.ok and report.events == one["accepted"], report.problems
        finally:
            engine.close()


def test_several_processes_need_a_file_on_a_local_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--store", str(tmp_path / "s"), "ingest", "-", "--jobs", "2"], input=b"{}\n"
    )
    assert result.exit_code == 2 and "regular file" in result.output


def test_a_worker_failure_is_raised_with_what_it_means(tmp_path: Path) -> None:
    data = tmp_path / "demo.ndjson"
    data.write_bytes(b"\n".join(demo_lines(end_us=END)) + b"\n")
    with pytest.raises(StoreFullError, match="No space left"):
        ingest_file(store_on_a_full_disk, data, "test", 100, 2)  # type: ignore[arg-type]


def test_progress_adds_up_over_the_workers(tmp_path: Path) -> None:
    data = tmp_path / "demo.ndjson"
    data.write_bytes(b"\n".join(demo_lines(end_us=END)) + b"\n")
    LocalEngine(tmp_path / "s").close()
    seen: list[Any] = []
    opener = functools.partial(LocalEngine, tmp_path / "s", create=False)
    report = ingest_file(opener, data, "test", 500, 2, seen.append)
    assert seen[-1].done_bytes == data.stat().st_size
    assert (seen[-1].accepted, seen[-1].rejected) == (report.accepted, report.rejected)
    assert [p.done_bytes for p in seen] == sorted(p.done_bytes for p in seen)


def test_standard_input_redirected_from_a_large_file_is_read_by_one_process(
    tmp_path: Path,
) -> None:
    data = tmp_path / "big.ndjson"
    body = b"\n".join(demo_lines(end_us=END)) + b"\n"
    data.write_bytes(body * (5 * 1024 * 1024 // len(body) + 1))  # over 4 MiB
    (tmp_path / "<stdin>").write_bytes(b"{}\n")  # a file by that name must not be read
    with open(data, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "pik", "--store", str(tmp_path / "s"), "ingest", "--json"],
            stdin=stdin,
            capture_output=True,
            cwd=tmp_path,
            timeout=300,
        )
    report = json.loads(done.stdout)
    assert report["lines"] == data.read_bytes().count(b"\n"), done.stderr


def test_a_descriptor_path_is_read_by_one_process(tmp_path: Path) -> None:
    data = tmp_path / "big.ndjson"
    body = b"\n".join(demo_lines(end_us=END)) + b"\n"
    data.write_bytes(body * (5 * 1024 * 1024 // len(body) + 1))
    with open(data, "rb") as handle:
        fd = handle.fileno()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pik",
                "--store",
                str(tmp_path / "s"),
                "ingest",
                "--json",
                f"/dev/fd/{fd}",
            ],
            capture_output=True,
            pass_fds=(fd,),
            timeout=300,
        )
    report = json.loads(done.stdout)
    assert report["lines"] == data.read_bytes().count(b"\n"), done.stderr
