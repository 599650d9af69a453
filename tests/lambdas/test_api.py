"""The API Lambda handler: API Gateway REST proxy events over a real local store."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_events import CALLER_ARN, api_event

from pik.api.routes import MAX_BODY_BYTES, MAX_REPLAY_BODY_BYTES
from pik.engines.local import LocalEngine
from pik.lambdas.api import MAX_PRINCIPAL_CHARS, api_origin, make_handler
from pik.lambdas.observability import lag_sample
from pik.storage_errors import StoreUnavailableError

Envelope = Callable[..., dict[str, Any]]
EMITTED = {
    "Accepted": "Count",
    "Duplicate": "Count",
    "Rejected": "Count",
    "Late": "Count",
    "LagMs": "Milliseconds",
}


def compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


class Api:
    """Calls the handler as Lambda would and decodes the proxy response."""

    def __init__(self, handler: Any, context: Any) -> None:
        self.handler, self.context = handler, context

    def call(self, method: str, path: str, body: str | bytes | None = None, **kw: Any) -> Any:
        response = self.handler(api_event(method, path, body, **kw), self.context)
        self.response = response
        headers = {**(response.get("headers") or {})}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = values[-1]
        return response["statusCode"], headers, json.loads(response["body"])


@pytest.fixture
def api(engine: LocalEngine, context: Any) -> Api:
    return Api(make_handler(lambda: engine), context)


def test_one_event_accepted_then_duplicate_then_read_back(
    api: Api, make_envelope: Envelope
) -> None:
    body = compact(make_envelope())
    status, _, accepted = api.call("POST", "/events", body)
    assert status == 201 and accepted["status"] == "accepted"
    status, _, again = api.call("POST", "/events", body)
    assert (status, again["status"], again["event_id"]) == (200, "duplicate", accepted["event_id"])
    status, _, event = api.call("GET", f"/events/{accepted['event_id']}")
    assert status == 200 and event["verified"] is True and event["duplicate_count"] == 1
    assert event["origin"] == f"api:{CALLER_ARN}"


def test_array_and_ndjson_report_every_item(api: Api, make_envelope: Envelope) -> None:
    items = [make_envelope(entity_id=f"customer-{i}") for i in range(3)]
    status, _, batch = api.call("POST", "/events", json.dumps(items))
    assert status == 200 and (batch["accepted"], batch["duplicate"]) == (3, 0)
    lines = [compact(make_envelope(entity_id="customer-9")), "{not json", compact(items[0])]
    status, _, batch = api.call(
        "POST", "/events", "\n".join(lines) + "\n", content_type="application/x-ndjson"
    )
    assert status == 200
    assert [r["status"] for r in batch["results"]] == ["accepted", "rejected", "duplicate"]
    assert batch["results"][1]["error"]["code"] == "invalid_json"


def test_bad_json_is_400_in_the_error_shape(api: Api, engine: LocalEngine) -> None:
    for body in ('{"source": ', "[1,"):
        status, _, error = api.call("POST", "/events", body, request_id="req-bad")
        assert status == 400
        assert set(error["error"]) == {"code", "message", "field", "request_id"}
        assert error["error"]["code"] == "invalid_json"
        assert error["error"]["request_id"] == "req-bad"
    status, _, error = api.call("POST", "/events", "{}", content_type="text/plain")
    assert status == 415 and error["error"]["code"] == "unsupported_media_type"
    assert engine.counts()["events"] == 0


def test_any_body_within_the_limit_fits_lambdas_request_limit_once_encoded(
    make_envelope: Envelope,
) -> None:
    """API Gateway hands the body over base64-encoded (the API's media types are all
    binary); Lambda refuses an event over 6,291,456 bytes before the handler could answer
    413. Sent as text it would be escaped instead, which at worst doubles it."""
    line = compact(make_envelope(payload={"q": '"\\' * 2000}))
    body = "\n".join([line] * (MAX_BODY_BYTES // (len(line) + 1)))
    assert MAX_BODY_BYTES - len(body) < len(line) + 1
    headers = {f"X-Header-{i}": "v" * 100 for i in range(40)}  # a generous set of headers
    for binary in (True, False):
        event = api_event("POST", "/events", body, "application/x-ndjson", headers, binary=binary)
        encoded = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        assert len(encoded) > 1.3 * len(body)
        assert len(encoded) <= 6_291_456
    replay = api_event("POST", "/replays/plans", b"x" * MAX_REPLAY_BODY_BYTES, headers=headers)
    assert len(json.dumps(replay, separators=(",", ":"))) <= 6_291_456  # as API Gateway sends it


def test_a_body_that_is_not_utf8_is_rejected_not_altered(
    api: Api, engine: LocalEngine, make_envelope: Envelope
) -> None:
    good = compact(make_envelope(entity_id="customer-1")).encode()
    doc = make_envelope(entity_id="customer-2", payload={"item": "caf\u00e9"})
    latin1 = json.dumps(doc, ensure_ascii=False).encode("latin-1")
    status, _, batch = api.call(
        "POST", "/events", good + b"\n" + latin1 + b"\n", content_type="application/x-ndjson"
    )
    assert status == 200
    assert [r["status"] for r in batch["results"]] == ["accepted", "rejected"]
    assert batch["results"][1]["error"]["code"] == "invalid_utf8"
    assert engine.counts()["events"] == 1


def test_too_large_is_413(api: Api, engine: LocalEngine, make_envelope: Envelope) -> None:
    status, _, error = api.call("POST", "/events", " " * (MAX_BODY_BYTES + 1))
    assert status == 413 and error["error"]["code"] == "body_too_large"
    many = "\n".join(compact(make_envelope(entity_id=f"c-{i}")) for i in range(10_001))
    status, _, error = api.call("POST", "/events", many, content_type="application/x-ndjson")
    assert status == 413 and error["error"]["code"] == "too_many_events"
    assert engine.counts()["events"] == 0


def test_query_routes(api: Api, make_envelope: Envelope) -> None:
    api.call("POST", "/events", compact(make_envelope(entity_id="team/a")))
    status, _, entities = api.call("GET", "/entities", query={"prefix": ["team"]})
    assert status == 200 and [e["entity_id"] for e in entities["entities"]] == ["team/a"]
    status, _, page = api.call("GET", f"/entities/{quote('team/a', safe='')}/timeline")
    assert status == 200 and len(page["events"]) == 1
    status, _, coverage = api.call("GET", "/coverage", query={"by": ["hour"]})
    assert status == 200 and coverage
    status, _, rates = api.call("GET", "/rates", query={"since": ["-1h"]})
    assert status == 200 and rates
    status, _, error = api.call("GET", "/rates", query={"since": ["yesterday-ish"]})
    assert status == 400 and error["error"]["field"] == "since"
    status, _, error = api.call("GET", "/nowhere")
    assert status == 404 and error["error"]["code"] == "not_found"


def test_the_store_is_made_on_first_use_and_kept(engine: LocalEngine, context: Any) -> None:
    made: list[LocalEngine] = []

    def factory() -> LocalEngine:
        made.append(engine)
        return engine

    api = Api(make_handler(factory), context)
    assert made == []  # nothing at import or handler creation: cold start stays cheap
    api.call("GET", "/entities")
    api.call("GET", "/rates")
    assert len(made) == 1


def test_a_store_that_cannot_open_is_503_and_tried_again(engine: LocalEngine, context: Any) -> None:
    attempts: list[int] = []

    def factory() -> LocalEngine:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreUnavailableError("the table is throttled", retry_after_s=3)
        return engine

    api = Api(make_handler(factory), context)
    status, headers, error = api.call("GET", "/entities")
    assert (status, headers["Retry-After"]) == (503, "3")
    assert error["error"]["code"] == "storage_unavailable"
    status, _, _ = api.call("GET", "/entities")
    assert status == 200 and len(attempts) == 2


def test_a_failing_commit_is_503_with_retry_after(
    aws_store: Callable[..., Any], context: Any, make_envelope: Envelope
) -> None:
    engine, log = aws_store()
    log.fail = lambda _n, _service, operation: "SlowDown" if operation == "PutObject" else None
    api = Api(make_handler(lambda: engine), context)
    status, headers, error = api.call("POST", "/events", compact(make_envelope()))
    assert status == 503 and int(headers["Retry-After"]) >= 1
    assert error["error"]["code"] == "storage_unavailable"
    assert "retry" in error["error"]["message"]
    assert engine.counts()["events"] == 0


def test_a_bug_is_a_500_in_shape_logged_without_the_input(
    engine: LocalEngine, context: Any, logs: Any, canary: str
) -> None:
    class Broken:
        limits = engine.limits

        def list_entities(self, *args: Any) -> None:
            raise AssertionError

        def entities(self, *args: Any) -> None:
            raise ValueError(f"cannot handle {canary}")

    api = Api(make_handler(lambda: Broken()), context)
    status, _, error = api.call("GET", "/entities", request_id="req-500")
    assert status == 500
    assert error["error"] == {
        "code": "internal_error",
        "message": "unexpected error; it has been logged with this request id",
        "field": None,
        "request_id": "req-500",
    }
    failure = next(line for line in logs.lines() if line["level"] == "ERROR")
    assert failure["error_type"] == "ValueError" and failure["correlation_id"] == "req-500"
    assert canary not in logs.text


def test_logs_are_json_with_the_request_id_and_never_the_input(
    api: Api, logs: Any, emf: Any, canary: str, make_envelope: Envelope
) -> None:
    secret = {"Authorization": f"Bearer {canary}", "X-Api-Key": canary}
    bodies = [
        compact(make_envelope(payload={"card": canary})),  # accepted
        compact(make_envelope(entity_id=canary, payload={"k": canary})),  # accepted
        compact({"source": "checkout", "entity_id": canary}),  # 422: fields missing
        '{"password": "' + canary + '", ',  # 400, recorded as a rejection
        json.dumps([{"x": canary}, make_envelope(entity_id="c-2", payload=[canary])]),  # batch
    ]
    for n, body in enumerate(bodies):
        status, _, answer = api.call("POST", "/events", body, headers=secret, request_id=f"req-{n}")
        if status >= 400:
            assert canary not in json.dumps(answer)
    api.call("GET", f"/entities/{canary}/timeline", headers=secret, request_id="req-get")
    api.call("GET", "/entities", query={"prefix": [canary]}, request_id="req-q")
    api.call("POST", "/events", canary, content_type=canary, request_id="req-415")

    lines = logs.lines()  # every line is JSON
    assert lines and all(line["correlation_id"].startswith("req-") for line in lines)
    assert {line["function_request_id"] for line in lines} == {"lambda-req-1"}
    ingest = [line for line in lines if line["message"] == "ingest"]
    assert [line["correlation_id"] for line in ingest] == [f"req-{n}" for n in range(5)]
    assert ingest[-1]["origin"] == f"api:{CALLER_ARN}"
    assert canary not in logs.text
    emf.read()
    assert emf.blobs and canary not in json.dumps(emf.blobs)


def test_ingest_metrics_are_emf_with_bounded_dimensions(
    api: Api, emf: Any, make_envelope: Envelope
) -> None:
    fresh = [make_envelope(entity_id=f"customer-{i}") for i in range(3)]
    late = make_envelope(entity_id="customer-late", ago=timedelta(hours=1))
    api.call("POST", "/events", json.dumps(fresh))
    emf.read()
    items = [*fresh[:1], late, {"source": "checkout"}, *fresh[1:2], make_envelope()]
    status, _, _ = api.call("POST", "/events", json.dumps(items))
    assert status == 200
    values = emf.read()
    assert len(emf.blobs) == 1
    [directive] = emf.blobs[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "PipelineInvestigationKit"
    assert directive["Dimensions"] == [["service"]] and emf.blobs[0]["service"] == "pik"
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == EMITTED
    assert values["Accepted"] == [2] and values["Duplicate"] == [2]
    assert values["Rejected"] == [1] and values["Late"] == [1]
    lags = sorted(values["LagMs"])
    assert len(lags) == 2 and 0 <= lags[0] < 60_000 and 3_600_000 <= lags[1] < 3_700_000


def test_fifty_sources_in_one_request_add_no_dimension(
    api: Api, emf: Any, make_envelope: Envelope
) -> None:
    items = [make_envelope(source=f"producer-{i:02d}") for i in range(50)]
    status, _, batch = api.call("POST", "/events", json.dumps(items))
    assert status == 200 and batch["accepted"] == 50
    values = emf.read()
    assert values["Accepted"] == [50] and len(values["LagMs"]) == 50
    for blob in emf.blobs:
        assert [d["Dimensions"] for d in blob["_aws"]["CloudWatchMetrics"]] == [[["service"]]]
        assert "producer-" not in json.dumps(blob)
        assert set(blob) == {"_aws", "service", *EMITTED}


def test_lag_values_per_request_are_capped_at_100(
    api: Api, emf: Any, make_envelope: Envelope
) -> None:
    items = [make_envelope(entity_id=f"c-{i}", ago=timedelta(seconds=10 + i)) for i in range(150)]
    api.call("POST", "/events", json.dumps(items))
    values = emf.read()
    assert values["Accepted"] == [150] and len(values["LagMs"]) == 100
    lags = sorted(values["LagMs"])
    assert 10_000 <= lags[0] < 11_000 and 159_000 <= lags[-1] < 160_000


def test_lag_sample_keeps_the_extremes_and_the_shape() -> None:
    assert lag_sample([5, 1, 3]) == [5, 1, 3]
    sample = lag_sample(list(range(1, 1001)))
    assert len(sample) == 100 and sample[0] == 1 and sample[-1] == 1000
    assert 480 <= sample[49] <= 520  # the median stays the median


def test_a_request_refused_whole_is_counted_though_no_event_was_read(
    api: Api, emf: Any, engine: LocalEngine
) -> None:
    status, _, _ = api.call("POST", "/events", "[1, 2", content_type="application/json")
    assert status == 400
    status, _, _ = api.call("POST", "/events", "a,b", content_type="text/csv")
    assert status == 415
    values = emf.read()
    assert values == {"RequestsRefused": [1, 1]}
    assert engine.counts()["events"] == 0


def test_queries_emit_no_metrics_and_no_warnings(api: Api, emf: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, _, _ = api.call("GET", "/entities")
    assert status == 200 and emf.read() == {} and emf.blobs == []


def test_the_origin_names_the_iam_caller_within_bounds() -> None:
    def origin(arn: Any) -> str:
        return api_origin({"requestContext": {"identity": {"userArn": arn}}})

    assert origin(CALLER_ARN) == f"api:{CALLER_ARN}"
    assert origin("arn:aws:iam::123456789012:user/ops/alice") == (
        "api:arn:aws:iam::123456789012:user/ops/alice"
    )
    assert origin(None) == origin("") == origin(42) == "api"
    assert origin("arn:aws:sts::123:assumed-role/x\n[bold]") == "api"
    assert api_origin({}) == "api"
    long = "arn:aws:iam::123456789012:user/" + "p/" * 300 + "bob"
    label = origin(long)
    assert label.startswith("api:arn:aws:iam::123456789012:user/p/") and label.endswith("…")
    assert len(label) == len("api:") + MAX_PRINCIPAL_CHARS and len(label.encode()) <= 255


def test_a_long_principal_is_stored(
    engine: LocalEngine, context: Any, make_envelope: Envelope, tmp_path: Path
) -> None:
    api = Api(make_handler(lambda: engine), context)
    long = "arn:aws:iam::123456789012:user/" + "team/" * 100 + "bob"
    status, _, accepted = api.call("POST", "/events", compact(make_envelope()), user_arn=long)
    assert status == 201
    _, _, event = api.call("GET", f"/events/{accepted['event_id']}")
    assert event["origin"].startswith("api:arn:aws:iam::123456789012:user/team/")


def test_importing_the_handlers_loads_no_aws_engine_and_no_sdk() -> None:
    code = (
        "import sys, pik.lambdas.api, pik.lambdas.queue\n"
        "loaded = {'boto3', 'pik.engines.aws'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_names_no_stored_one_can_have_are_refused_before_the_store_is_asked(api: Api) -> None:
    """They would be over DynamoDB's key size limits, which moto does not enforce."""
    long = "e" * 257
    status, _, error = api.call("GET", f"/entities/{long}/timeline")
    assert (status, error["error"]["code"], error["error"]["field"]) == (
        400,
        "too_long",
        "entity_id",
    )
    for name, value in (("prefix", long), ("after", long), ("source", "s" * 129)):
        status, _, error = api.call("GET", "/entities", query={name: [value]})
        assert (status, error["error"]["field"]) == (400, name)
    status, _, error = api.call("GET", "/coverage", query={"entity": ["a", long]})
    assert (status, error["error"]["field"]) == (400, "entity")
    status, _, error = api.call("GET", "/rates", query={"source": ["s" * 129]})
    assert (status, error["error"]["field"]) == (400, "source")
    status, _, _ = api.call("GET", "/entities", query={"prefix": ["e" * 256]})
    assert status == 200


def test_an_answer_over_what_lambda_can_return_says_to_ask_for_less(
    api: Api, make_envelope: Envelope, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pik.lambdas import api as api_module

    batch = "\n".join(compact(make_envelope(entity_id=f"c-{i}")) for i in range(20))
    assert api.call("POST", "/events", batch, content_type="application/x-ndjson")[0] == 200
    monkeypatch.setattr(api_module, "MAX_RESPONSE_BYTES", 2_000)  # 20 entities are more
    status, _, error = api.call("GET", "/entities")
    assert (status, error["error"]["code"]) == (422, "result_too_large")
    assert "shorter time range" in error["error"]["message"]
    status, _, _ = api.call("GET", "/entities", query={"limit": ["1"]})
    assert status == 200


def test_a_batch_of_unknown_fields_gets_an_answer_of_bounded_size(api: Api) -> None:
    lines = "\n".join(json.dumps({"k" * 380 + str(i): 1}) for i in range(100))
    status, _, answer = api.call("POST", "/events", lines, content_type="application/x-ndjson")
    assert status == 200
    fields = [r["error"]["field"] for r in answer["results"]]
    assert all(len(f) == 64 and f.endswith("…") for f in fields)


def test_an_offset_whose_plus_became_a_space_is_read_as_sent(
    api: Api, make_envelope: Envelope
) -> None:
    """A query string's '+' means a space: a time sent as ...+05:45 without %2B."""
    api.call("POST", "/events", compact({**make_envelope(), "event_time": "2026-11-01T06:00:00Z"}))
    sent = {"from": ["2026-11-01T11:44:00 05:45"], "to": ["2026-11-01T11:46:00 05:45"]}
    status, _, page = api.call("GET", "/entities/customer-1/timeline", query=sent)
    assert status == 200 and len(page["events"]) == 1
    status, _, error = api.call("GET", "/rates", query={"since": ["2026-11-01 junk"]})
    assert status == 400 and error["error"]["code"] == "invalid_time"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"body": "not base64!", "isBase64Encoded": True}, None),
        ({"body": {"source": "x"}}, None),
        ({"body": 7}, None),
        ({"body": '{"source": "\ud800"}', "isBase64Encoded": False}, None),
        ({"httpMethod": None}, "httpMethod"),
        ({"path": 3}, "path"),
        ({"queryStringParameters": {"limit": 5}}, "queryStringParameters"),
        ({"multiValueQueryStringParameters": {"limit": "5"}}, "multiValueQueryStringParameters"),
        ({"headers": ["content-type"]}, "headers"),
        ({"requestContext": "ctx"}, "requestContext"),
    ],
)
def test_an_event_api_gateway_would_never_send_is_a_400_not_a_crash(
    engine: LocalEngine, context: Any, change: dict[str, Any], field: str | None
) -> None:
    """A direct invocation with a malformed event is refused in the error shape."""
    handler = make_handler(lambda: engine)
    event = {**api_event("POST", "/events", "{}"), **change}
    response = handler(event, context)
    error = json.loads(response["body"])["error"]
    assert response["statusCode"] == 400, error
    assert error["code"] in ("invalid_request", "invalid_body")
    if field is not None:
        assert field in error["message"]
    assert engine.counts()["events"] == 0
