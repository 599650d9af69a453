#!/usr/bin/env python3
"""Set up the project's virtual environment from the lock file, then run a job.

    python3 dev.py demo      # set up, build the demo store, open pik-tui on it
    python3 dev.py test      # set up, then lint, type-check, check template.yaml, run the tests

Needs only Python 3.11+ (with venv) and network access to the package index.
Set-up is skipped when the lock file has not changed since the last run. The template
checker checkov lives in .venv-tools (requirements/tools.lock): it pins an older boto3.
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
TOOLS_VENV = ROOT / ".venv-tools"
TOOLS_LOCK = ROOT / "requirements" / "tools.lock"


def _bin(name: str, env: Path = VENV) -> str:
    return str(env / ("Scripts" if os.name == "nt" else "bin") / name)


def _fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _install(env: Path, lock: Path, *, project: bool) -> None:
    """Create `env` and install `lock` into it (and the project, editable), unless done."""
    if not (env / "pyvenv.cfg").exists():
        print(f"creating {env.name} ...", flush=True)
        venv.create(env, with_pip=True)
    stamp = env / ".pik-installed"
    wanted = _fingerprint(lock, *([ROOT / "pyproject.toml"] if project else []))
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"installing locked dependencies into {env.name} ...", flush=True)
    pip = [_bin("python", env), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--require-hashes", "-r", str(lock)], check=True)
    if project:
        subprocess.run(
            [*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True
        )
    stamp.write_text(wanted)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    _install(VENV, LOCK, project=True)


def _workers(args: list[str]) -> list[str]:
    """Tests run in parallel processes, one a core up to four (pytest-xdist), unless the
    arguments choose (``-n 0`` runs them one by one)."""
    chosen = any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) for a in args)
    return [] if chosen else ["--numprocesses=auto", "--maxprocesses=4"]


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
    _install(TOOLS_VENV, TOOLS_LOCK, project=False)
    checkov = [_bin("checkov", TOOLS_VENV), "-f", "template.yaml", "--framework", "cloudformation"]
    for step in (
        [_bin("ruff"), "check", "."],
        [_bin("ruff"), "format", "--check", "."],
        [_bin("mypy")],
        [_bin("cfn-lint"), "template.yaml"],  # any error, warning or note fails
        # A failed check fails; skips are in the template, each with its reason.
        # --skip-download: no calls to the vendor's platform (guidelines, severities).
        [*checkov, "--quiet", "--compact", "--skip-download"],
        [_bin("pytest"), *_workers(argv[1:]), *argv[1:]],
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
