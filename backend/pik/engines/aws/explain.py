"""What an AWS failure means to the person at the keyboard, and what to do about it.

One wording for the CLI (``pik --stack``) and the TUI (``pik-tui --stack``): each shows
the text its own way.
"""

from __future__ import annotations

from pik.engines.aws.clients import error_code
from pik.engines.aws.discovery import StackAccessDeniedError, StackNotFoundError
from pik.storage_errors import StoreUnavailableError


def explain(exc: BaseException, policy: str = "OperatorReadOnlyPolicy") -> str | None:
    """The message for an AWS failure, naming the stack's managed ``policy`` the action
    needs; ``None`` if it is no AWS failure (a bug, to be shown as one)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, StackAccessDeniedError):
        return (
            f"{exc}, and that your identity (`aws sts get-caller-identity`) has the stack's "
            f"{policy}; AWS said: {exc.aws_message}"
        )
    if isinstance(exc, StackNotFoundError):
        return str(exc)
    causes: list[BaseException] = []  # the failure, and what it says it came from
    cause: BaseException | None = exc
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    for cause in causes:
        if isinstance(cause, NoCredentialsError | PartialCredentialsError):
            return (
                "no AWS credentials found: sign in (`aws sso login`, AWS_PROFILE, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) as an identity with the "
                f"stack's {policy}"
            )
        if isinstance(cause, NoRegionError):
            return (
                "no AWS region set: set AWS_DEFAULT_REGION (or `region` in your AWS "
                "profile) to the stack's region"
            )
        if isinstance(cause, ClientError) and not isinstance(exc, StoreUnavailableError):
            message = cause.response.get("Error", {}).get("Message", "")
            return (
                f"AWS refused the request ({error_code(cause)}: {message}); check that "
                f"your identity has the stack's {policy}"
            )
    if isinstance(exc, StoreUnavailableError):
        return str(exc)
    if isinstance(exc, BotoCoreError):
        return f"AWS could not be reached: {exc}"
    return None
