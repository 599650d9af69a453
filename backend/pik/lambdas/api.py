"""The HTTP API in Lambda: API Gateway (REST API, proxy integration, AWS_IAM auth).

Routing, validation and error shapes are exactly :func:`pik.api.routes.build_api`, the
resolver `pik serve` runs locally; this module adds the store's lifecycle, the ingest
origin, logs and metrics.

Replays. The replay routes act as that same principal: the control function writes the
plans, confirmations and audit records for it (:mod:`pik.api.replay_routes`). A request
without an IAM principal is refused with a 403; API Gateway lets none through.

Origin. Events ingested here are labelled ``api:<caller ARN>`` with the IAM principal API
Gateway authenticated (``requestContext.identity.userArn``), so `pik event` shows who sent
each attempt; ``api`` alone when there is none. The ARN goes to the store and the logs,
never into a metric dimension.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pik.api.errors import ApiError
from pik.api.replay_routes import ControlFor
from pik.api.routes import JSON, build_api
from pik.domain.outcome import Outcome
from pik.lambdas.observability import (
    IngestSummary,
    flush_metrics,
    log_failure,
    logger,
    record_count,
    record_ingest,
)
from pik.lambdas.store import Lazy, replay_backend_from_env, store_from_env
from pik.ports import EventStore
from pik.services.replay import ReplayBackend
from pik.services.replay_control import LedgerControl, ReplayControl
from pik.storage_errors import StoreUnavailableError

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
MAX_RESPONSE_BYTES = 6_000_000
"""Lambda returns at most 6 MB (6,291,556 bytes) of response, headers and escaping
included; the rest is margin."""

ORIGIN = "api"
MAX_PRINCIPAL_CHARS = 200
"""Raw frames hold an origin of at most 255 bytes; a longer ARN is cut and marked."""
_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:(?:iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/-]+")


def caller_arn(event: dict[str, Any]) -> str | None:
    """The IAM principal API Gateway authenticated, when it is a well-formed IAM/STS ARN:
    the one caller detail API Gateway vouches for."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    arn = identity.get("userArn")
    return arn if isinstance(arn, str) and _PRINCIPAL.fullmatch(arn) else None


def api_origin(event: dict[str, Any]) -> str:
    """``api:<principal ARN>`` for an IAM-authenticated caller, else ``api``; nothing else
    of the request reaches the store as an origin."""
    arn = caller_arn(event)
    if arn is None:
        return ORIGIN
    if len(arn) > MAX_PRINCIPAL_CHARS:
        arn = arn[: MAX_PRINCIPAL_CHARS - 1] + "…"
    return f"{ORIGIN}:{arn}"


def replay_control_for(backend: Lazy[ReplayBackend]) -> ControlFor:
    """The replay control acting as each request's caller, over one shared backend."""

    def control(event: dict[str, Any]) -> ReplayControl:
        arn = caller_arn(event)
        if arn is None:
            raise ApiError(
                403,
                "not_authenticated",
                "replays need a SigV4-signed request from an IAM principal",
            )
        return LedgerControl(backend.get(), who=arn)

    return control


def _request_id(event: dict[str, Any]) -> str:
    context = event.get("requestContext")
    return str(context.get("requestId", "-")) if isinstance(context, dict) else "-"


def _error(event: dict[str, Any], error: ApiError) -> dict[str, Any]:
    """An error answer in the routes' shape, for failures outside the resolver."""
    headers = {"Content-Type": JSON}
    if error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return {
        "statusCode": error.status,
        "headers": headers,
        "body": error.body(_request_id(event)),
        "isBase64Encoded": False,
    }


def _resolver(
    store: EventStore, replay_backend: Callable[[], ReplayBackend] | None
) -> APIGatewayRestResolver:
    late_after_us = store.limits.late_after_us

    def on_ingest(outcomes: Sequence[Outcome]) -> None:
        summary = IngestSummary(late_after_us)
        summary.add(outcomes)
        record_ingest(summary)
        origin = api_origin(app.current_event.raw_event)
        logger.info("ingest", extra={"origin": origin, **summary.log_fields()})

    def on_refused(error: ApiError) -> None:
        # Nothing of the body was read, so no event counter moves: without this a producer
        # sending malformed requests would be visible only in its own logs.
        record_count("RequestsRefused", 1)
        origin = api_origin(app.current_event.raw_event)
        logger.info(
            "ingest refused", extra={"origin": origin, "status": error.status, "code": error.code}
        )

    replays = None if replay_backend is None else replay_control_for(Lazy(replay_backend))
    stack = os.environ.get("PIK_STACK_NAME")
    resume = f"pik --stack {stack} replay resume" if stack else "pik replay resume"
    app = build_api(
        store,
        origin=api_origin,
        on_ingest=on_ingest,
        on_refused=on_refused,
        replays=replays,
        resume_command=resume,
    )
    return app


def make_handler(
    store_factory: Callable[[], EventStore],
    replay_backend: Callable[[], ReplayBackend] | None = None,
) -> Handler:
    """A Lambda handler serving the API over the store ``store_factory`` makes.

    The factory runs on the first invocation, not at import, and its store (with the
    resolver) is reused by every later invocation of the execution environment. With a
    ``replay_backend`` it serves the replay routes too (made on the first replay request):
    only the replay control function, whose role may write the ledger, does.
    """
    api = Lazy(lambda: _resolver(store_factory(), replay_backend))

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_REST,
        log_event=False,  # an event holds the payloads and the caller's headers
        clear_state=True,
    )
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            malformed = _malformed(event)
            if malformed is not None:  # invoked directly, not through API Gateway
                raise ApiError(
                    400, "invalid_request", f"not an API Gateway proxy request: {malformed}"
                )
            response: dict[str, Any] = api.get().resolve(event, context)
        except ApiError as exc:
            response = _error(event, exc)
        except StoreUnavailableError as exc:  # the store could not even be opened
            log_failure("store unavailable", exc)
            response = _error(
                event, ApiError(503, exc.code, str(exc), retry_after=exc.retry_after_s)
            )
        except Exception as exc:  # a bug: answer in shape, with the id the log line carries
            log_failure("unhandled error", exc)
            response = _error(
                event,
                ApiError(
                    500,
                    "internal_error",
                    "unexpected error; it has been logged with this request id",
                ),
            )
        finally:
            flush_metrics()
        response = _within_lambda_limit(event, response)
        logger.info(
            "request",
            extra={"method": event.get("httpMethod"), "status": response["statusCode"]},
        )
        return response

    return handler


def _malformed(event: dict[str, Any]) -> str | None:
    """What makes ``event`` no proxy request the routes can read, or None."""
    for name in ("httpMethod", "path"):
        if not isinstance(event.get(name), str):
            return f"{name} is not text"
    context = event.get("requestContext")
    if context is not None and not (
        isinstance(context, dict) and isinstance(context.get("identity") or {}, dict)
    ):
        return "requestContext is not a map"
    for name in ("headers", "queryStringParameters", "pathParameters"):
        values = event.get(name)
        if values is not None and not (
            isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
        ):
            return f"{name} is not a map of text"
    for name in ("multiValueHeaders", "multiValueQueryStringParameters"):
        values = event.get(name)
        if values is not None and not (
            isinstance(values, dict)
            and all(
                isinstance(v, list) and all(isinstance(i, str) for i in v) for v in values.values()
            )
        ):
            return f"{name} is not a map of lists of text"
    return None


def _within_lambda_limit(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The response, or an answer saying to ask for less when Lambda could not return it
    (API Gateway would answer 502 with no word of why)."""
    size = len(json.dumps(response, ensure_ascii=False).encode())
    if size <= MAX_RESPONSE_BYTES:
        return response
    return _error(
        event,
        ApiError(
            422,
            "result_too_large",
            f"the answer would be {size} bytes, over the {MAX_RESPONSE_BYTES} a function can "
            "return; ask for less: a shorter time range, fewer entities or a smaller page",
        ),
    )


handler = make_handler(store_from_env)
replay_handler = make_handler(store_from_env, replay_backend_from_env)
