"""Find a deployed stack's resources by the stack's name alone (``pik --stack NAME``).

The SAM template publishes everything a client needs as stack outputs; this reads them
with ``cloudformation:DescribeStacks`` (in the operator policies) and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pik.engines.aws.clients import error_code, unavailable_on_failure
from pik.engines.aws.engine import AwsConfig, split_targets

REQUIRED_OUTPUTS = ("IndexTableName", "RawBucketName")
USABLE_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)


class StackNotFoundError(LookupError):
    """No usable stack of that name (wrong name, region or account, or not deployed)."""


class StackAccessDeniedError(StackNotFoundError):
    """Describing the stack was refused: its policies cover that one stack only, so to its
    operators a wrong name or region looks like this; so does a missing policy."""

    def __init__(self, message: str, aws_message: str) -> None:
        super().__init__(message)
        self.aws_message = aws_message


ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CLOUDFORMATION",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "PIK_API_URL",
)
"""Settings that name where requests go: checked before any is sent, because the SDK
answers a malformed one with a traceback from deep inside it."""


def check_endpoint_settings(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse a set endpoint variable that is no http(s) URL with a host (and a valid port)."""
    for name in ENDPOINT_VARIABLES:
        value = environ.get(name)
        if value and not _is_url(value):
            raise StackNotFoundError(
                f"{name} is not a URL such as https://host[:port][/path]; fix or unset it"
            )


def _is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def stack_outputs(
    stack_name: str, session: Any = None, region: str | None = None
) -> dict[str, str]:
    """The outputs of a deployed stack, by output key."""
    import boto3
    from botocore.exceptions import ClientError

    check_endpoint_settings()

    session = session or boto3.session.Session()
    client = session.client("cloudformation", region_name=region)
    where = region or client.meta.region_name
    try:
        with unavailable_on_failure("describing the stack"):
            stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError":
            raise StackNotFoundError(
                f"no stack named {stack_name!r} in {where}; check the name, the region "
                "(AWS_DEFAULT_REGION or your profile's) and the account your credentials "
                "belong to (`aws sts get-caller-identity`)"
            ) from None
        if error_code(exc) in {"AccessDenied", "AccessDeniedException"}:
            raise StackAccessDeniedError(
                f"not allowed to describe a stack named {stack_name!r} in {where}: check the "
                "name and the region (AWS_DEFAULT_REGION or your profile's), which the "
                "stack's policies must match exactly",
                exc.response.get("Error", {}).get("Message", ""),
            ) from None
        raise
    stack = stacks[0]
    if stack["StackStatus"] not in USABLE_STATES:
        raise StackNotFoundError(
            f"stack {stack_name!r} is {stack['StackStatus']}; wait for its deployment to finish"
        )
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def discover(stack_name: str, session: Any = None, region: str | None = None) -> AwsConfig:
    """The AWS engine's configuration for a stack deployed from template.yaml."""
    outputs = stack_outputs(stack_name, session, region)
    missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
    if missing:
        raise StackNotFoundError(
            f"stack {stack_name!r} has no output {', '.join(missing)}: it was not deployed "
            "from the Pipeline Investigation Kit template"
        )
    return AwsConfig(
        outputs["IndexTableName"],
        outputs["RawBucketName"],
        region=region,
        replay_queue_url=outputs.get("ReplayQueueUrl"),
        replay_queue_arn=outputs.get("ReplayQueueArn"),
        replay_work_queue_url=outputs.get("ReplayWorkQueueUrl"),
        # Present only when the deployer listed queues (ReplayTargetQueueArns).
        replay_targets=split_targets(outputs.get("ReplayTargetQueueArns", "")),
        api_url=outputs.get("ApiUrl"),
        replay_control=outputs.get("ReplayControlFunctionName"),
        processor_spec=_processor_spec(outputs.get("ProcessorSpec")),
    )


def _processor_spec(value: str | None) -> tuple[str, str | None] | None:
    """``WINDOW:SUM`` (the window names hold no colon; a pointer may)."""
    if not value or ":" not in value:
        return None
    window, total = value.split(":", 1)
    return window, total or None
