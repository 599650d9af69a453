"""The one shape of every API error: ``{"error": {"code", "message", "field", "request_id"}}``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pik.domain.rejection import Rejection


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    code: str
    message: str
    field: str | None = None
    retry_after: int | None = None

    def body(self, request_id: str) -> str:
        return json.dumps(
            {
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "field": self.field,
                    "request_id": request_id,
                }
            }
        )


UNPROCESSABLE = frozenset(
    {
        "nesting_too_deep",
        "number_out_of_range",
        "non_finite_number",
        "duplicate_key",
        "lone_surrogate",
    }
)
"""Codes of JSON that parses but holds what no event may: refused as unprocessable (422),
like an invalid field, not as malformed (400)."""


def status_of(rejection: Rejection) -> int:
    """The HTTP status a request refused for ``rejection`` is answered with."""
    if rejection.code == "idempotency_conflict":
        return 409
    if rejection.code == "too_large":
        return 413
    if rejection.field is not None or rejection.code in UNPROCESSABLE:
        return 422
    return 400
