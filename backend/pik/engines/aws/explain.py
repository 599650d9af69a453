"""What an AWS failure means to the person at the keyboard, and what to do about it.

One wording for the CLI (``pik --stack``) and the TUI (``pik-tui --stack``): each shows
the text its own way.
"""

from __future__ import annotations

from pik.engines.aws.clients import error_code
from pik.engines.aws.discovery import StackAccessDeniedError, StackNotFoundError
from pik.storage_errors import StoreUnavailableError

READING = "the stack's OperatorReadOnlyPolicy"
REPLAYING = "the stack's ReplayOperatorPolicy (OperatorReadOnlyPolicy for `status` and `audit`)"
WRITING = (
    "write access to the stack's table and bucket, which none of the stack's policies "
    "grant (docs/cli.md lists it; producers send through the API or the ingest queue)"
)


def explain(exc: BaseException, needs: str = READING) -> str | None:
    """The message for an AWS failure, saying which permissions the action ``needs`` (one
    of READING, REPLAYING, WRITING); ``None`` if it is no AWS failure (a bug, to be shown
    as one)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(exc, StackAccessDeniedError):
        return (
            f"{exc}, and that your identity (`aws sts get-caller-identity`) has {needs}; "
            f"AWS said: {exc.aws_message}"
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
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) as an identity with {needs}"
            )
        if isinstance(cause, ProfileNotFound):
            return (
                f"{cause}: check AWS_PROFILE (or the profile you named) against "
                "`aws configure list-profiles`"
            )
        if isinstance(cause, SSOError | TokenRetrievalError):
            return f"your AWS sign-in has expired or is missing ({cause}); run `aws sso login`"
        if isinstance(cause, NoRegionError):
            return (
                "no AWS region set: set AWS_DEFAULT_REGION (or `region` in your AWS "
                "profile) to the stack's region"
            )
        if isinstance(cause, ClientError) and not isinstance(exc, StoreUnavailableError):
            message = cause.response.get("Error", {}).get("Message", "")
            return (
                f"AWS refused the request ({error_code(cause)}: {message}); check that "
                f"your identity has {needs}"
            )
    if isinstance(exc, StoreUnavailableError):
        return str(exc)
    if isinstance(exc, BotoCoreError):
        return f"AWS could not be reached: {exc}"
    return None
