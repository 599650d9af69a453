"""Make moto's emulation faithful enough (and fast enough) for the AWS engine's tests.

Both patches change the emulator only, never our code: they restore properties real AWS
has and moto lacks. Used by the test fixtures and by bench/aws_requests.py.
"""

from __future__ import annotations

import copy
import threading
import types
from typing import Any

import pytest


def serialise_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's in-process backends are not thread-safe (concurrent transactions corrupt its
    dictionaries), while every real AWS request is applied atomically. Serialising the
    emulated requests restores that; our own code still runs fully concurrently."""
    from moto.core.botocore_stubber import BotocoreStubber

    emulate = BotocoreStubber.process_request
    lock = threading.Lock()

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return emulate(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)


def patch_moto_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto backs a table up before *each action* of a transaction (100 deep copies of the
    whole table for one TransactWriteItems): one backup per table per transaction rolls
    back the same, and keeps a 1,000-event batch from taking minutes."""
    from moto.dynamodb import models

    transact = models.DynamoDBBackend.transact_write_items

    def backed_up_once(self: Any, transact_items: Any) -> Any:
        copies: dict[int, Any] = {}

        def deepcopy(value: Any, memo: Any = None) -> Any:
            if not isinstance(value, models.Table):
                return copy.deepcopy(value, memo)
            if id(value) not in copies:  # the table outlives the transaction: ids stay unique
                copies[id(value)] = copy.deepcopy(value, memo)
            return copies[id(value)]

        monkeypatch.setattr(
            models, "copy", types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)
        )
        try:
            return transact(self, transact_items)
        finally:
            monkeypatch.setattr(models, "copy", copy)

    monkeypatch.setattr(models.DynamoDBBackend, "transact_write_items", backed_up_once)
