"""Replay routes of the HTTP API: plan, confirm, resume and cancel, as the caller.

On a stack these are the only way to change the replay ledger: operators are allowed
``execute-api:Invoke`` on them, never a write to the table, so every plan, confirmation and
audit record is written by the replay control function, naming the IAM principal API
Gateway authenticated. Reads (status, audit, plans) stay with the operator's read access.

    POST /replays/plans                      {"entity_ids", "start", "end", "target",
                                              "sources"?, "event_types"?}      -> 201 plan
    POST /replays/plans/{plan_id}/confirm    {"confirm": true, "rate"?}        -> 201 run
    POST /replays/{replay_id}/resume         {"rate"?}                         -> 200 run
    POST /replays/{replay_id}/cancel                                           -> 200 run

A confirmed or resumed run is handed to the replay function at once; the answer is the run
as it then stands. ``"confirm": true`` must be sent: a stray request confirms nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from pik.api.errors import ApiError, status_of
from pik.domain import replay
from pik.domain.instants import TimeFormatError, parse_query_time
from pik.domain.limits import DEFAULT_LIMITS
from pik.domain.rejection import RejectedError
from pik.domain.replay import ReplayError, ReplayRun, Selection
from pik.domain.strictjson import WHITESPACE, decode
from pik.services.replay_control import ReplayControl

_log = logging.getLogger(__name__)

ControlFor = Callable[[dict[str, Any]], ReplayControl]
"""The control acting as the caller of a request (its proxy event), or an ``ApiError``."""

BODY_LIMITS = replace(DEFAULT_LIMITS, max_event_bytes=1 << 30)
"""A replay body is read as strictly as an event, its size limited by the route
(``MAX_REPLAY_BODY_BYTES``) before it is read."""

JsonResponse = Callable[[dict[str, Any], int], Response[str]]


def add_replay_routes(
    app: APIGatewayRestResolver,
    control_for: ControlFor,
    body_of: Callable[[dict[str, Any]], bytes],
    respond: JsonResponse,
    error_response: Callable[[ApiError], Response[str]],
    resume_command: str = "pik replay resume",
) -> None:
    """Register the replay routes on ``app`` (which maps ``ApiError`` to answers);
    ``resume_command`` is the command an answer names to start a confirmed run later."""

    def control() -> ReplayControl:
        return control_for(app.current_event.raw_event)

    def document() -> dict[str, Any]:
        raw = body_of(app.current_event.raw_event)  # refuses one over the replay limit
        if not raw.strip(WHITESPACE):
            return {}
        try:  # as strictly as an event: no repeated key, NaN or UTF-16 reaches a field
            found = decode(raw, BODY_LIMITS)
        except RejectedError as exc:
            rejection = exc.rejection
            raise ApiError(
                status_of(rejection), rejection.code, f"the body: {rejection.message}"
            ) from None
        if not isinstance(found, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object")
        return found

    def replay_error(error: ReplayError) -> Response[str]:
        return error_response(ApiError(error.status, error.code, str(error), error.field))

    app.exception_handler(ReplayError)(replay_error)

    @app.post("/replays/plans")
    def post_plan() -> Response[str]:
        fields = document()
        selection = Selection.build(
            _names(fields, "entity_ids", required=True),
            _instant(fields, "start"),
            _instant(fields, "end"),
            _text(fields, "target"),
            _names(fields, "sources"),
            _names(fields, "event_types"),
        )
        return respond(control().plan(selection).to_document(), 201)

    @app.post("/replays/plans/<plan_id>/confirm")
    def post_confirm(plan_id: str) -> Response[str]:
        fields = document()
        if fields.get("confirm") is not True:
            raise ApiError(
                400,
                "confirmation_required",
                'send {"confirm": true} to confirm the plan; nothing was started',
                "confirm",
            )
        rate = _rate(fields.get("rate", replay.DEFAULT_RATE))
        acting = control()
        return respond(
            _started(acting, acting.confirm(plan_id, rate), resume_command).to_document(), 201
        )

    @app.post("/replays/<replay_id>/resume")
    def post_resume(replay_id: str) -> Response[str]:
        given = document().get("rate")
        rate = None if given is None else _rate(given)
        acting = control()
        return respond(
            _started(acting, acting.resume(replay_id, rate), resume_command).to_document(), 200
        )

    @app.post("/replays/<replay_id>/cancel")
    def post_cancel(replay_id: str) -> Response[str]:
        return respond(control().cancel(replay_id).to_document(), 200)


def _rate(value: object) -> int:
    """A rate as sent: a whole number (its range is the ledger's to judge, and audit)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "invalid_rate", "rate is a whole number of events a second", "rate")
    return value


def _started(acting: ReplayControl, run: ReplayRun, resume_command: str) -> ReplayRun:
    """Hand a confirmed or resumed run to the replay function. The run exists whatever
    happens here, so a failure says which run it is and how to start it later."""
    try:
        return acting.start(run)
    except Exception as exc:
        # By type only: an exception's message can quote what the caller sent.
        _log.error(
            "replay %s was not handed to the replay function (%s)",
            run.replay_id,
            type(exc).__name__,
        )
        raise ApiError(
            503,
            "replay_not_started",
            f"replay {run.replay_id} is confirmed but could not be handed to the replay "
            f"function ({type(exc).__name__}); start it with `{resume_command} "
            f"{run.replay_id}`",
            "replay_id",
            retry_after=5,
        ) from None


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"{name} is required and must be a string", name)
    return value


def _instant(fields: dict[str, Any], name: str) -> int:
    try:
        return parse_query_time(_text(fields, name))
    except TimeFormatError as exc:
        raise ApiError(400, exc.code, f"{name}: {exc}", name) from None


def _names(fields: dict[str, Any], name: str, required: bool = False) -> tuple[str, ...]:
    value = fields.get(name, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "invalid_field", f"{name} must be a list of strings", name)
    return tuple(value)
