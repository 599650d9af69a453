"""API Gateway REST proxy events, as API Gateway hands a request to a function."""

from __future__ import annotations

import base64
from typing import Any

CALLER_ARN = "arn:aws:sts::123456789012:assumed-role/producer/checkout-1"


def api_event(
    method: str,
    path: str,
    body: str | bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    request_id: str = "apigw-req-1",
    user_arn: str | None = CALLER_ARN,
    binary: bool = True,
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as API Gateway sends it with AWS_IAM auth.

    The stack's API treats every media type as binary, so API Gateway hands the body over
    base64-encoded, byte for byte; ``binary=False`` is the plain-text form a direct
    invocation may use."""
    sent = {"Content-Type": content_type, "Host": "abc.execute-api.eu-west-1.amazonaws.com"}
    sent.update(headers or {})
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": sent,
        "multiValueHeaders": {k: [v] for k, v in sent.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": request_id,
            "accountId": "123456789012",
            "identity": {
                "sourceIp": "203.0.113.9",
                "userArn": user_arn,
                "caller": "AROAEXAMPLE:checkout-1",
                "accountId": "123456789012",
            },
        },
        "body": _encoded(body, binary),
        "isBase64Encoded": body is not None and binary,
    }


def _encoded(body: str | bytes | None, binary: bool) -> str | None:
    if body is None:
        return None
    raw = body.encode() if isinstance(body, str) else body
    return base64.b64encode(raw).decode() if binary else raw.decode()
