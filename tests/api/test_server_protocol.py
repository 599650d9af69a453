"""`pik serve` at the HTTP layer: what the standard library would refuse in HTML is refused
in the API's JSON, echoing nothing; connections are queued, not reset, in a burst."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from api_client import Client, connect

from pik.api.server import MAX_CONNECTIONS, ApiServer
from pik.engines.local import LocalEngine


def _exchange(port: int, request: bytes) -> bytes:
    with connect(port) as raw:
        raw.sendall(request)
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    return reply


def _error(reply: bytes) -> tuple[bytes, dict[str, str]]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0]
    assert b"content-type: application/json" in head.lower(), reply[:300]
    return status_line, json.loads(body)["error"]


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"414", "uri_too_long"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", b"431", "headers_too_large"),
        (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 120 + b"\r\n", b"431", "headers_too_large"),
        (b"GET /entities HTTP/2.0\r\n\r\n", b"505", "http_version_not_supported"),
        (b"GET /entities HTTP/1.x\r\n\r\n", b"400", "bad_request"),
        (b"GET /entities HTTP/1.1 extra-<b>word</b>\r\n\r\n", b"400", "bad_request"),
    ],
)
def test_what_the_library_refuses_is_a_json_error_echoing_nothing(
    api: Client, request_bytes: bytes, status: bytes, code: str
) -> None:
    reply = _exchange(api.port, request_bytes)
    status_line, error = _error(reply)
    assert status_line.startswith(b"HTTP/1.1 " + status), status_line
    assert error["code"] == code
    assert b"<" not in reply and b"aaaa" not in reply and b"bbbb" not in reply
    assert api.call("GET", "/entities")[0] == 200, "still serving"


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT", b"PROPFIND"])
def test_a_method_without_a_route_is_answered_as_the_stack_answers_it(
    api: Client, method: bytes
) -> None:
    port = api.port
    reply = _exchange(
        port,
        method
        + b" /entities HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        + b"Connection: close\r\n\r\n",
    )
    status_line, error = _error(reply)
    assert status_line.startswith(b"HTTP/1.1 404") and error["code"] == "not_found"


def test_a_request_target_that_cannot_be_read_is_400(api: Client) -> None:
    port = api.port
    reply = _exchange(
        port,
        b"GET http://[::1/entities HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
        % port,
    )
    status_line, error = _error(reply)
    assert status_line.startswith(b"HTTP/1.1 400") and error["code"] == "invalid_path"


def test_a_burst_of_connections_is_queued_until_the_server_accepts_them(
    engine: LocalEngine,
) -> None:
    """Connections made before the server accepts any wait in the kernel's queue; with the
    standard library's queue of 5 the rest were reset or left hanging, unanswered."""
    server = ApiServer(engine, "127.0.0.1", 0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    waiting = []
    try:
        for _ in range(MAX_CONNECTIONS - 4):
            waiting.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            waiting[-1].sendall(b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        thread.start()
        deadline = time.monotonic() + 30
        for connection in waiting:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            assert connection.recv(12) == b"HTTP/1.1 200"
    finally:
        for connection in waiting:
            connection.close()
        if thread.is_alive():
            server.shutdown()
        server.server_close()


def test_host_names_are_matched_whatever_their_case(api: Client) -> None:
    assert api.call("GET", "/entities", headers={"Host": f"LOCALHOST:{api.port}"})[0] == 200


def test_a_token_must_be_ascii(engine: LocalEngine) -> None:
    # A header arrives as bytes; a token clients would encode differently never matches.
    with pytest.raises(ValueError, match="printable ASCII"):
        ApiServer(engine, "0.0.0.0", 0, "é" * 16)


def test_serves_on_ipv6_loopback(engine: LocalEngine) -> None:
    try:
        server = ApiServer(engine, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 on this machine")
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with socket.create_connection(("::1", port), timeout=10) as raw:
            raw.sendall(b"GET /entities HTTP/1.1\r\nHost: [::1]:%d\r\n\r\n" % port)
            assert raw.recv(12) == b"HTTP/1.1 200"
    finally:
        server.shutdown()
        server.server_close()


def test_errors_repeat_nothing_sent_and_name_the_limit_that_holds(
    api: Client, engine: LocalEngine
) -> None:
    status, _, body = api.call("GET", "/CANARY-secret-123")
    assert status == 404 and "CANARY" not in json.dumps(body)
    status, _, body = api.call("GET", "/events/" + "g" * 32)
    assert (status, body["error"]["code"]) == (400, "invalid_event_id")
    assert "0-9 and a-f" in body["error"]["message"]
    depth = engine.limits.max_depth
    nested = "[" * (depth + 1) + "]" * (depth + 1)
    document = json.dumps([{"payload": "X"}]).replace('"X"', nested).encode()
    status, _, body = api.call("POST", "/events", document)
    assert (status, body["error"]["code"]) == (422, "nesting_too_deep")
    assert f"deeper than {depth} levels" in body["error"]["message"]


def test_an_entity_id_no_event_can_have_is_pointed_out(api: Client) -> None:
    for path, field in [
        ("/entities/customer-1%20/timeline", "entity_id"),
        ("/entities/a%00b/timeline", "entity_id"),
        ("/coverage?entity=ok&entity=..%2F..", "entity"),
    ]:
        status, _, body = api.call("GET", path)
        assert (status, body["error"]["code"], body["error"]["field"]) == (
            400,
            "invalid_entity_id",
            field,
        ), path
