"""`pik --stack NAME serve`: the local HTTP server over the AWS engine (the stack in moto)
answers as it does over a local store: one routing and validation path for both."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

from pik.api.server import ApiServer
from pik.engines.aws import AwsEngine


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, json.loads(answer) if answer else None


def test_serve_over_a_stack_ingests_dedupes_rejects_and_answers_queries(
    aws_engine: AwsEngine,
) -> None:
    server = ApiServer(aws_engine, "127.0.0.1", 0, None)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = int(server.server_address[1])
    try:
        event = {
            "source": "checkout",
            "event_type": "order.created",
            "entity_id": "served-1",
            "event_time": "2026-11-01T10:00:00Z",
            "payload": {"amount": 1},
        }
        status, accepted = call(port, "POST", "/events", event)
        assert status == 201 and accepted["status"] == "accepted"
        status, again = call(port, "POST", "/events", [event, {"source": "checkout"}])
        assert status == 200 and (again["duplicate"], again["rejected"]) == (1, 1)
        assert again["results"][1]["error"]["code"] == "missing_field"
        status, broken = call(port, "POST", "/events", b"[{")
        assert status == 400 and broken["error"]["code"]
        status, stored = call(port, "GET", f"/events/{accepted['event_id']}")
        assert status == 200 and stored["verified"] and stored["duplicate_count"] == 1
        status, page = call(
            port, "GET", "/entities/served-1/timeline?from=2026-11-01&to=2026-11-02"
        )
        assert status == 200 and [e["event_id"] for e in page["events"]] == [accepted["event_id"]]
        status, listed = call(port, "GET", "/entities?prefix=served-")
        assert status == 200 and [e["entity_id"] for e in listed["entities"]] == ["served-1"]
        status, missing = call(port, "GET", "/events/" + "0" * 32)
        assert status == 404 and missing["error"]["code"] == "event_not_found"
        assert aws_engine.counts()["events"] == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
