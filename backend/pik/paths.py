"""Where stores live by default: the user data directory (XDG on Linux)."""

from __future__ import annotations

from pathlib import Path

import platformdirs


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir("pik", appauthor=False))


def default_store() -> Path:
    return data_dir() / "store"


def demo_store() -> Path:
    return data_dir() / "demo"
