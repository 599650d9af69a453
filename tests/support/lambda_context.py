"""A stand-in for the Lambda context: the fields the handlers and Powertools read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeContext:
    aws_request_id: str = "lambda-req-1"
    function_name: str = "pik-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:pik-api"
    remaining_ms: int = 900_000
    """What ``get_remaining_time_in_millis`` answers: time left before the deadline."""

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
