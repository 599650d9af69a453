"""Routes of the HTTP API over any :class:`~pik.ports.EventStore`.

The same resolver runs in Lambda (API Gateway proxy events) and behind `pik serve`, so
routing, validation and error shapes exist once.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from pik.api.errors import ApiError, status_of
from pik.api.replay_routes import ControlFor, add_replay_routes
from pik.documents import (
    coverage_document,
    entities_document,
    event_document,
    rates_document,
    timeline_document,
)
from pik.domain.envelope import entity_shape_problem, parse_event_id
from pik.domain.instants import (
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    TimeFormatError,
    parse_query_time,
    query_range,
)
from pik.domain.numbers import whole_number
from pik.domain.outcome import Outcome, Status
from pik.domain.rejection import RejectedError
from pik.domain.strictjson import WHITESPACE, decode
from pik.ports import EventStore
from pik.services import query
from pik.services.ingest import ingest_batch
from pik.storage_errors import StoreFullError, StoreUnavailableError
from pik.textsafe import json_text

MAX_BODY_BYTES = 3_000_000
"""The limit of an ingest request's body, for `pik serve` and the stack alike."""
MAX_REPLAY_BODY_BYTES = 4 * 1024 * 1024
"""The limit of a replay request's body: room for the largest selection the domain allows
(1,000 entities of 256 characters, 100 sources and 100 event types of 128), even with every
character a 4-byte one escaped as a surrogate pair (12 bytes).

Both limits fit the stack: its API Gateway base64-encodes the body into the event it hands
Lambda (4/3 of its size, 5.6 MB for 4 MiB), and Lambda refuses an event over 6,291,456
bytes before any code runs, so any body within them reaches the function with room for
the event's headers and context."""
REPLAY_PATH = "/replays"


def body_limit(path: str) -> int:
    """The largest body a request to ``path`` may carry."""
    if path == REPLAY_PATH or path.startswith(REPLAY_PATH + "/"):
        return MAX_REPLAY_BODY_BYTES
    return MAX_BODY_BYTES


JSON = "application/json"

Origin = str | Callable[[dict[str, Any]], str]
"""The ingest origin label, or a function of the proxy event that names it per request."""
IngestObserver = Callable[[Sequence[Outcome]], None]
"""Told the outcomes of every ingest request the store committed (e.g. to emit metrics)."""
RefusalObserver = Callable[[ApiError], None]
"""Told why an ingest request was refused whole, before any of its events was read."""


def _json(document: dict[str, Any], status: int = 200) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=json_text(document))


def build_api(
    store: EventStore,
    origin: Origin = "http",
    on_ingest: IngestObserver | None = None,
    on_refused: RefusalObserver | None = None,
    replays: ControlFor | None = None,
    resume_command: str = "pik replay resume",
) -> APIGatewayRestResolver:
    """An API Gateway (REST, proxy) resolver serving ``store``.

    ``origin`` labels what the requests ingest (a function of the event when it depends on
    the caller); ``on_ingest`` is told each committed batch's outcomes, ``on_refused`` each ingest
    request refused whole before its events were read; ``replays``, when
    given, serves the replay routes (:mod:`pik.api.replay_routes`) as the caller, and
    ``resume_command`` is what an answer tells the caller to run to start a run later.
    """
    app = APIGatewayRestResolver()

    def request_id() -> str:
        context = app.current_event.get("requestContext") or {}
        return str(context.get("requestId", "-"))

    def param(name: str) -> str | None:
        values = app.current_event.query_string_parameters or {}
        return values.get(name)

    def time_param(name: str) -> int | None:
        value = param(name)
        if value is None:
            return None
        try:
            return parse_query_time(value)
        except TimeFormatError as exc:
            # A query string's '+' means a space (API Gateway and `pik serve` decode it
            # so): an offset sent as +05:45 without %2B arrives as " 05:45".
            if " " in value:
                try:
                    return parse_query_time(value.replace(" ", "+"))
                except TimeFormatError:
                    pass
            raise ApiError(400, exc.code, f"{name}: {exc}", name) from None

    def time_range(
        names: tuple[str, str], span: int | None = None, ahead: int = 0
    ) -> tuple[int, int]:
        """The range the query's two time parameters ask for (defaults as the CLI's)."""
        start, end = time_param(names[0]), time_param(names[1])
        try:
            return query_range(start, end, span, ahead)
        except TimeFormatError as exc:
            raise ApiError(
                400, exc.code, f"{names[0]} must be before {names[1]}", names[0]
            ) from None

    def int_param(name: str, default: int, low: int, high: int) -> int:
        value = param(name)
        if value is None:
            return default
        number = whole_number(value)
        if number is None or not low <= number <= high:
            raise ApiError(
                400, "invalid_parameter", f"{name} is a whole number from {low} to {high}", name
            )
        return number

    def api_error(error: ApiError) -> Response[str]:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return Response(
            status_code=error.status,
            content_type=JSON,
            body=error.body(request_id()),
            headers=headers,
        )

    def storage_full(error: StoreFullError) -> Response[str]:
        return api_error(ApiError(507, "storage_full", f"{error}; nothing was acknowledged"))

    def unavailable(error: StoreUnavailableError) -> Response[str]:
        return api_error(ApiError(503, error.code, str(error), retry_after=error.retry_after_s))

    def storage_busy(error: sqlite3.OperationalError) -> Response[str]:
        return api_error(ApiError(503, "storage_unavailable", str(error), retry_after=1))

    app.exception_handler(ApiError)(api_error)
    app.exception_handler(StoreFullError)(storage_full)
    app.exception_handler(StoreUnavailableError)(unavailable)
    app.exception_handler(sqlite3.OperationalError)(storage_busy)
    if replays is not None:
        add_replay_routes(app, replays, _body, _json, api_error, resume_command)

    @app.not_found
    def not_found(_: NotFoundError) -> Response[str]:
        # The path is not repeated: it may hold what the caller did not mean to send twice.
        return api_error(
            ApiError(404, "not_found", "no route has this method and path (docs/api.md lists them)")
        )

    @app.post("/events")
    def post_events() -> Response[str]:
        event = app.current_event.raw_event
        try:
            items, single = _items(event, store)
        except ApiError as error:
            if on_refused is not None:
                on_refused(error)
            raise
        outcomes = ingest_batch(store, items, origin(event) if callable(origin) else origin)
        if on_ingest is not None:
            on_ingest(outcomes)
        if single:
            return _single_response(outcomes[0], api_error)
        return _json(_batch_document(outcomes))

    @app.get("/events/<event_id>")
    def get_event(event_id: str) -> Response[str]:
        try:
            key = parse_event_id(unquote(event_id))
        except ValueError as exc:
            raise ApiError(400, "invalid_event_id", str(exc), "event_id") from None
        detail = query.event_detail(store, key)
        if detail is None:
            raise ApiError(404, "event_not_found", f"no event {key.hex()}", "event_id")
        return _json(event_document(detail))

    def bounded(value: str | None, field: str, limit: int) -> str | None:
        """A name to look up, refused when no stored one can be that long (such a key
        would also be over DynamoDB's key size limits)."""
        if value is not None and len(value) > limit:
            raise ApiError(
                400, "too_long", f"{field} is {len(value)} characters; the limit is {limit}", field
            )
        return value

    def entity_param(value: str | None, field: str) -> str | None:
        return bounded(value, field, store.limits.max_entity_id_chars)

    def entity_id_param(value: str, field: str) -> str:
        """An entity to look up: one no stored entity can have is a mistake to point out
        (a pasted trailing space, say), not an empty answer."""
        problem = entity_shape_problem(value)
        if problem is not None:
            raise ApiError(400, "invalid_entity_id", problem, field)
        return bounded(value, field, store.limits.max_entity_id_chars) or value

    def source_param() -> str | None:
        return bounded(param("source"), "source", store.limits.max_source_chars)

    @app.get("/entities")
    def get_entities() -> Response[str]:
        limit = int_param("limit", 100, 1, query.MAX_PAGE)
        page = query.entity_page(
            store,
            entity_param(param("prefix"), "prefix") or "",
            source_param(),
            limit,
            entity_param(param("after"), "after"),
        )
        return _json(entities_document(page.entities, page.next))

    @app.get("/entities/<entity_id>/timeline")
    def get_timeline(entity_id: str) -> Response[str]:
        entity = entity_id_param(unquote(entity_id), "entity_id")
        start, end = time_range(("from", "to"))
        limit = int_param("limit", 100, 1, query.MAX_PAGE)
        try:
            page = query.timeline_page(
                store, entity, start, end, limit, param("cursor"), latest=param("latest") == "true"
            )
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", str(exc), "cursor") from None
        return _json(timeline_document(entity, start, end, page))

    @app.get("/coverage")
    def get_coverage() -> Response[str]:
        start, end = time_range(("from", "to"), 7 * US_PER_DAY, US_PER_DAY)
        by = param("by") or "day"
        if by not in ("hour", "day"):
            raise ApiError(400, "invalid_parameter", "by is hour or day", "by")
        entities = (app.current_event.multi_value_query_string_parameters or {}).get("entity")
        for entity in entities or ():
            entity_id_param(entity, "entity")
        report = query.coverage_report(store, start, end, by, entities, source_param())
        return _json(coverage_document(start, end, report))

    @app.get("/rates")
    def get_rates() -> Response[str]:
        start, end = time_range(("since", "until"), US_PER_HOUR, US_PER_MINUTE)
        report = query.rates_report(store, start, end, source_param())
        return _json(rates_document(start, end, store.limits.late_after_us // 1000, report))

    return app


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body is {size} bytes; the limit is {limit}")


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise ApiError(400, "invalid_body", "the request's body is not text or base64 text")
    try:
        raw = (
            base64.b64decode(body, validate=True)
            if event.get("isBase64Encoded")
            else body.encode("utf-8")
        )
    except (binascii.Error, ValueError):  # UnicodeEncodeError: a lone surrogate
        raise ApiError(400, "invalid_body", "the request's body cannot be read as sent") from None
    limit = body_limit(str(event.get("path") or ""))
    if len(raw) > limit:
        raise too_large(len(raw), limit)
    return raw


def _content_type(event: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    encoding = str(headers.get("content-encoding", "identity")).strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_content_encoding",
            "bodies are read as sent, never decompressed: send the events uncompressed",
            "content-encoding",
        )
    return str(headers.get("content-type", "")).split(";")[0].strip().lower()


def _items(event: dict[str, Any], store: EventStore) -> tuple[list[bytes], bool]:
    """The events of a request, and whether it sent one bare object rather than a batch.

    A request holds one JSON object, a JSON array of them, or NDJSON lines.

    A single object or NDJSON line is kept byte for byte; items of an array are stored as
    their compact re-encoding (their exact bytes cannot be cut out of the array).
    """
    kind, raw = _content_type(event), _body(event)
    single = False
    if kind == "application/x-ndjson":
        items = [line.rstrip(b"\r") for line in raw.split(b"\n") if line.strip(WHITESPACE)]
    elif kind == JSON:
        if raw.lstrip(WHITESPACE)[:1] == b"{":
            items, single = [raw.strip(WHITESPACE)], True
        else:
            limits = replace(
                store.limits, max_event_bytes=MAX_BODY_BYTES, max_depth=store.limits.max_depth + 1
            )
            try:
                document = decode(raw, limits)
            except RejectedError as exc:
                rejection = exc.rejection
                message = rejection.message
                if rejection.code == "nesting_too_deep":  # counted from the array, one up
                    message = f"an event nests deeper than {store.limits.max_depth} levels"
                raise ApiError(status_of(rejection), rejection.code, message) from None
            if not isinstance(document, list):
                raise ApiError(
                    400,
                    "invalid_body",
                    "send one event object, an array of them, or NDJSON (application/x-ndjson)",
                )
            items = [_reencode(item) for item in document]
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send application/json (one event or "
            "an array) or application/x-ndjson (one event a line)",
            "content-type",
        )
    if not items:
        raise ApiError(400, "empty", "the request holds no events")
    if len(items) > store.limits.max_batch_events:
        raise ApiError(
            413,
            "too_many_events",
            f"a request holds at most {store.limits.max_batch_events} events; split it",
        )
    return items, single


def _reencode(item: Any) -> bytes:
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a "\ud800" escape): kept escaped, so the event is rejected on
        # its own (lone_surrogate) like the same line in NDJSON, not the whole request.
        return json.dumps(item, separators=(",", ":")).encode()


def _result(index: int, outcome: Outcome) -> dict[str, Any]:
    return {
        "index": index,
        "status": outcome.status.value,
        "event_id": outcome.event_id.hex() if outcome.event_id else None,
        "lag_ms": outcome.lag_ms,
        "error": outcome.rejection.as_dict() if outcome.rejection else None,
    }


def _batch_document(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = {s.value: 0 for s in Status}
    for outcome in outcomes:
        counts[outcome.status.value] += 1
    return {**counts, "results": [_result(i, o) for i, o in enumerate(outcomes)]}


def _single_response(outcome: Outcome, error: Callable[[ApiError], Response[str]]) -> Response[str]:
    rejection = outcome.rejection
    if rejection is None:
        return _json(_result(0, outcome), 201 if outcome.status is Status.ACCEPTED else 200)
    return error(ApiError(status_of(rejection), rejection.code, rejection.message, rejection.field))
