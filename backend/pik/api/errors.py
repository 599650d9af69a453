"""The one shape of every API error: ``{"error": {"code", "message", "field", "request_id"}}``."""

from __future__ import annotations

import json
from dataclasses import dataclass


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
