"""SQS event source records, as Lambda hands them to a queue-triggered function."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def sqs_event(messages: Iterable[dict[str, Any]], queue: str = "queue") -> dict[str, Any]:
    """An event of ``messages`` in ReceiveMessage's shape (``MessageId``, ``ReceiptHandle``,
    ``Body``, optionally ``MD5OfBody``), first deliveries all."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def bodies_event(*bodies: str | bytes, queue: str = "queue") -> dict[str, Any]:
    """An event of messages never sent through a queue: ids msg-0, msg-1, … in order."""
    return sqs_event(
        (
            {
                "MessageId": f"msg-{i}",
                "ReceiptHandle": f"handle-{i}",
                "Body": body.decode() if isinstance(body, bytes) else body,
            }
            for i, body in enumerate(bodies)
        ),
        queue,
    )
