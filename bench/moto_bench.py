"""What the AWS benchmarks share: their arguments, and moto's fake credentials."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path


def moto_arguments(doc: str | None) -> argparse.Namespace:
    """Parse ``--out``; point boto3 at fake credentials in us-east-1, so that nothing a
    benchmark sends can reach a real account (moto answers it)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the SAM translator's chatter while making the stack
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    return args
