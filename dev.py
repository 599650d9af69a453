#!/usr/bin/env python3
"""Set up the project's virtual environment from the lock file, then run a job.

    python3 dev.py demo      # set up, build the demo store, open pik-tui on it
    python3 dev.py test      # set up, then lint, type-check and run the whole test suite

Needs only Python 3.11+ (with venv) and network access to the package index.
Set-up is skipped when the lock file has not changed since the last run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements" / "dev.lock"
STAMP = VENV / ".pik-installed"


def _bin(name: str) -> str:
    return str(VENV / ("Scripts" if os.name == "nt" else "bin") / name)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (LOCK, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not (VENV / "pyvenv.cfg").exists():
        print("creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing locked dependencies into .venv ...", flush=True)
    pip = [_bin("python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--require-hashes", "-r", str(LOCK)], check=True)
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True
    )
    STAMP.write_text(wanted)


def run(*argv: str) -> int:
    return subprocess.run(list(argv), cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    job = argv[0] if argv else "help"
    if job not in {"demo", "test"}:
        print(__doc__)
        return 0 if job in {"help", "-h", "--help"} else 2
    setup()
    if job == "demo":
        return run(_bin("pik-tui"), "--demo", *argv[1:])
    for step in (
        [_bin("ruff"), "check", "."],
        [_bin("ruff"), "format", "--check", "."],
        [_bin("mypy")],
        [_bin("pytest"), *argv[1:]],
    ):
        print(
            "$",
            " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)),
            flush=True,
        )
        code = run(*step)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
