"""`pik serve`: the HTTP API over a real local store, driven over a real socket."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import socketserver
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_client import TOKEN, Client, connect, envelope, serving, status_read

from pik.api.routes import MAX_BODY_BYTES
from pik.api.server import ApiServer
from pik.engines.local import LocalEngine


def test_ingest_one_event_then_read_it_back(api: Client) -> None:
    status, _, body = api.call("POST", "/events", json.dumps(envelope()).encode())
    assert status == 201 and body["status"] == "accepted"
    event_id = body["event_id"]
    status, _, again = api.call("POST", "/events", json.dumps(envelope()).encode())
    assert (status, again["status"], again["event_id"]) == (200, "duplicate", event_id)
    status, _, event = api.call("GET", f"/events/{event_id}")
    assert status == 200 and event["verified"] is True and event["duplicate_count"] == 1
    assert event["origin"] == "http"


def test_batches_as_array_and_ndjson_report_every_item(api: Client) -> None:
    items = [envelope(entity_id="a"), {"source": "x"}, envelope(entity_id="b/c")]
    status, _, body = api.call("POST", "/events", json.dumps(items).encode())
    assert status == 200
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["results"][1]["error"]["code"] == "missing_field"
    ndjson = b"\n".join(json.dumps(envelope(entity_id=f"n{i}")).encode() for i in range(3))
    status, _, body = api.call("POST", "/events", ndjson, "application/x-ndjson")
    assert status == 200 and body["accepted"] == 3
    status, _, page = api.call("GET", "/entities/b%2Fc/timeline?limit=5")
    assert status == 200 and [e["entity_id"] for e in page["events"]] == ["b/c"]
    status, _, listed = api.call("GET", "/entities?prefix=n&limit=2")
    assert [e["entity_id"] for e in listed["entities"]] == ["n0", "n1"]
    assert listed["next"] == "n1"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{oops", "application/json", 400, "invalid_json"),
        (b'{"source": "a"} trailing', "application/json", 400, "invalid_json"),
        (b"[1, 2", "application/json", 400, "invalid_json"),
        (b'"text"', "application/json", 400, "invalid_body"),
        (b"[]", "application/json", 400, "empty"),
        (b"source=a", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (
            json.dumps(envelope(entity_id="../etc")).encode(),
            "application/json",
            422,
            "invalid_characters",
        ),
        (
            json.dumps(envelope(event_time="2026-11-01T10:00:00")).encode(),
            "application/json",
            422,
            "naive_time",
        ),
        # JSON that parses but holds what no event may: unprocessable, not malformed.
        (b'[{"a": 1, "a": 2}]', "application/json", 422, "duplicate_key"),
        (
            json.dumps(envelope(payload={"deep": [[[[]]]]}))
            .replace("[[[[]]]]", "[" * 99 + "]" * 99)
            .encode(),
            "application/json",
            422,
            "nesting_too_deep",
        ),
        (
            json.dumps(envelope())
            .replace('"payload": {', '"payload": {"n": ' + "9" * 5000 + ", ")
            .encode(),
            "application/json",
            422,
            "number_out_of_range",
        ),
        (
            json.dumps(envelope()).replace('"payload": {', '"payload": {"n": NaN, ').encode(),
            "application/json",
            422,
            "non_finite_number",
        ),
        (
            json.dumps(envelope(payload={"pad": "x" * 300_000})).encode(),
            "application/json",
            413,
            "too_large",
        ),
    ],
)
def test_bad_requests_get_their_code_and_store_nothing(
    api: Client, engine: LocalEngine, body: bytes, content_type: str, status: int, code: str
) -> None:
    got, _, error = api.call("POST", "/events", body, content_type)
    assert (got, error["error"]["code"]) == (status, code), error
    assert error["error"]["request_id"] and error["error"]["message"]
    assert engine.counts()["events"] == 0


def test_idempotency_conflict_is_409(api: Client) -> None:
    first = json.dumps(envelope(idempotency_key="k", payload={"a": 1})).encode()
    other = json.dumps(envelope(idempotency_key="k", payload={"a": 2})).encode()
    assert api.call("POST", "/events", first)[0] == 201
    status, _, error = api.call("POST", "/events", other)
    assert (status, error["error"]["code"]) == (409, "idempotency_conflict")


def test_a_full_disk_is_507_and_the_server_goes_on(api: Client, engine: LocalEngine) -> None:
    db = engine._index._db  # SQLite's own page limit stands in for a full disk
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    batch = [envelope(entity_id=f"e{n}", payload={"pad": "x" * 900}) for n in range(100)]
    status, _, body = api.call("POST", "/events", json.dumps(batch).encode())
    assert status == 507 and body["error"]["code"] == "storage_full"
    assert "nothing was acknowledged" in body["error"]["message"]
    db.execute("PRAGMA max_page_count = 1073741823")
    assert engine.counts()["events"] == 0, "nothing refused is stored"
    status, _, body = api.call("POST", "/events", json.dumps(batch).encode())
    assert status == 200 and body["accepted"] == 100


def test_queries_and_their_errors(api: Client) -> None:
    api.call("POST", "/events", json.dumps(envelope()).encode())
    assert api.call("GET", "/rates?since=2000-01-01")[2]["rows"][0]["accepted"] == 1
    coverage = api.call("GET", "/coverage?from=2026-11-01&to=2026-11-02&by=hour")[2]
    assert coverage["windows"][0]["count"] == 1
    for path, status, code in [
        ("/events/nothex", 400, "invalid_event_id"),
        ("/events/" + "0" * 32, 404, "event_not_found"),
        ("/coverage?by=week", 400, "invalid_parameter"),
        ("/rates?since=yesterday", 400, "invalid_time"),
        ("/entities?limit=0", 400, "invalid_parameter"),
        ("/entities/x/timeline?cursor=bad", 400, "invalid_cursor"),
        ("/nowhere", 404, "not_found"),
        # A reversed range is an error (as on the command line), not an empty answer.
        ("/entities/x/timeline?from=2026-11-02&to=2026-11-01", 400, "invalid_range"),
        ("/coverage?from=2026-11-02&to=2026-11-01", 400, "invalid_range"),
        ("/rates?since=2026-11-02&until=2026-11-01", 400, "invalid_range"),
        # Digits of other scripts are not ISO-8601's.
        ("/rates?since=" + quote("\u0662\u0660\u0662\u0666-11-01"), 400, "invalid_time"),
        ("/rates?since=" + quote("-\u0662h"), 400, "invalid_time"),
    ]:
        got, _, error = api.call("GET", path)
        assert (got, error["error"]["code"]) == (status, code), path


def test_ranges_that_end_near_the_year_1_are_answered(api: Client) -> None:
    # The default start reaches back from the end: held at the year 1, never past it.
    for path in ("/coverage?to=0001-01-02", "/rates?until=0001-01-01T00:02:00Z"):
        status, _, body = api.call("GET", path)
        assert status == 200, (path, body)
        assert body["from"] == "0001-01-01T00:00:00.000000Z"


def test_a_body_over_the_limit_is_refused_before_it_is_read(api: Client) -> None:
    with connect(api.port) as raw:
        raw.sendall(
            b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * 1024 * 1024)
        )
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"body_too_large" in reply
    assert api.call("GET", "/entities")[0] == 200, "still serving"
    assert MAX_BODY_BYTES < 50 * 1024 * 1024


def test_a_foreign_host_header_is_refused(api: Client) -> None:
    status, _, error = api.call("GET", "/entities", headers={"Host": "evil.example:80"})
    assert (status, error["error"]["code"]) == (421, "host_not_allowed")


def test_binding_beyond_loopback_needs_a_token(engine: LocalEngine) -> None:
    with pytest.raises(ValueError, match="PIK_TOKEN"):
        ApiServer(engine, "0.0.0.0", 0)
    for weak in (" ", "x", "short-token", "sixteen chars ok", "tab\tin-the-middle-here"):
        with pytest.raises(ValueError, match="at least 16 printable ASCII characters"):
            ApiServer(engine, "0.0.0.0", 0, weak)


def test_with_a_token_every_request_must_carry_it(engine: LocalEngine) -> None:
    with serving(engine, token=TOKEN) as server:
        port = server.server_address[1]
        assert Client(port).call("GET", "/entities")[0] == 401
        assert Client(port, token="wrong" * 4).call("GET", "/entities")[0] == 401
        assert Client(port, token=TOKEN).call("GET", "/entities")[0] == 200


def test_garbage_on_the_wire_never_stops_the_server(api: Client, store_path: Path) -> None:
    for junk in (
        b"\x00\xff\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    ):
        with connect(api.port) as raw:
            raw.sendall(junk)
            raw.recv(4096)
    assert api.call("GET", "/entities")[0] == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Content-Length: 2\r\nContent-Length: 60\r\n", b"400"),
        (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"411"),
        (b"Transfer-Encoding: chunked\r\n", b"411"),
        (b"Host: evil.example\r\nContent-Length: 2\r\n", b"400"),
        # A line that is not `name: value` hid the headers after it from every check.
        (b"Content-Length: 2\r\nX\r\nContent-Length: 60\r\n", b"400"),
        (b"Content-Length: 2\r\nX\r\nTransfer-Encoding: chunked\r\n", b"400"),
    ],
)
def test_a_request_two_parsers_could_read_differently_is_refused_and_closed(
    api: Client, engine: LocalEngine, headers: bytes, status: bytes
) -> None:
    """What a proxy in front might frame otherwise (a smuggled second request) is refused,
    and the connection closed, before a byte of the body is taken as anything."""
    smuggled = b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(api.port) as raw:
        raw.sendall(
            b"POST /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % api.port
            + b"Content-Type: application/json\r\n"
            + headers
            + b"\r\n{}"
            + smuggled
        )
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 " + status) and reply.count(b"HTTP/1.1") == 1
    assert engine.counts()["events"] == 0


def test_a_slow_client_does_not_block_others(api: Client) -> None:
    with connect(api.port) as slow:
        slow.sendall(b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n")
        assert api.call("GET", "/entities")[0] == 200


def test_beyond_the_connection_cap_a_client_is_answered_busy_at_once(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pik.api.server.MAX_CONNECTIONS", 2)
    with serving(engine) as server:
        port = server.server_address[1]
        held = [connect(port) for _ in range(2)]
        for connection in held:  # each is served by a thread of its own, waiting
            connection.sendall(b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status, headers, body = Client(port).call("GET", "/entities")
        assert (status, body["error"]["code"], headers["Retry-After"]) == (503, "busy", "1")
        held.pop().close()
        deadline = time.monotonic() + 5
        while (status := Client(port).call("GET", "/entities")[0]) == 503:
            assert time.monotonic() < deadline, "a closed connection frees its place"
            time.sleep(0.05)
        assert status == 200
        held[0].close()


def cut_off(raw: socket.socket) -> bool:
    """Send one more header line (never idle long); whether the server has ended it."""
    try:
        raw.sendall(b"X-Slow: 1\r\n")
        return raw.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:  # open, nothing to read
        return False
    except OSError:  # reset or a broken pipe: ended
        return True


def test_a_request_trickling_in_past_its_deadline_is_cut_off(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pik.api.server.REQUEST_DEADLINE_S", 0.5)
    with serving(engine) as server:
        port = server.server_address[1]
        with connect(port) as raw:
            started = time.monotonic()
            raw.sendall(b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while not cut_off(raw):
                assert time.monotonic() - started < 5, "the trickle was let go on"
                time.sleep(0.1)
            assert time.monotonic() - started >= 0.5
        assert Client(port).call("GET", "/entities")[0] == 200


def test_the_deadline_runs_from_a_request_s_first_byte_not_the_idle_wait(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pik.api.server.REQUEST_DEADLINE_S", 1.0)
    with serving(engine) as server, connect(server.server_address[1]) as raw:
        request = b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for idle in (0.8, 0.8):  # keep-alive: idle longer than the rest of a deadline
            time.sleep(idle)
            for part in (request[:10], request[10:30], request[30:]):
                raw.sendall(part)  # the request itself arrives whole within 0.5 s
                time.sleep(0.2)
            assert status_read(raw) == 200


def test_a_body_gets_time_by_its_length(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pik.api.server.REQUEST_DEADLINE_S", 0.3)
    monkeypatch.setattr("pik.api.server.MIN_BODY_BYTES_PER_S", 1000)
    body = json.dumps(envelope(payload={"pad": "x" * 2000})).encode()  # 2 s more
    with serving(engine) as server, connect(server.server_address[1]) as raw:
        raw.sendall(
            b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:100]
        )
        time.sleep(0.8)  # past the bare deadline, well within the body's time
        raw.sendall(body[100:])
        assert status_read(raw) == 201


def test_a_connection_whose_thread_cannot_start_gives_its_place_back(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pik.api.server.MAX_CONNECTIONS", 1)
    real = socketserver.ThreadingMixIn.process_request
    failures = iter([True])

    def no_thread_once(self: ApiServer, request: Any, client_address: Any) -> None:
        if next(failures, False):
            raise RuntimeError("can't start new thread")
        real(self, request, client_address)

    monkeypatch.setattr(socketserver.ThreadingMixIn, "process_request", no_thread_once)
    with serving(engine) as server:
        client = Client(server.server_address[1])
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            client.call("GET", "/entities")  # dropped: no thread to answer it
        assert client.call("GET", "/entities")[0] == 200, "its place was given back"


def test_a_refused_request_with_a_body_closes_the_connection(engine: LocalEngine) -> None:
    with serving(engine, token=TOKEN) as server:
        body = json.dumps(envelope()).encode()
        smuggled = (
            b"GET /entities HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
            % TOKEN.encode()
        )
        with connect(server.server_address[1]) as raw:
            raw.sendall(
                b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(body) + len(smuggled)) + body + smuggled
            )
            reply = b""
            while chunk := raw.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 401") and reply.count(b"HTTP/1.1") == 1
        assert engine.counts()["events"] == 0


CANARY = "CANARY-7f3a9c"


def test_secrets_in_requests_never_come_back_or_get_logged(
    api: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_headers = {
        "Authorization": f"Bearer {CANARY}",
        "Cookie": f"session={CANARY}",
        "X-Api-Key": CANARY,
    }
    bodies = [
        json.dumps(envelope(entity_id=f"{CANARY} with spaces")).encode(),
        json.dumps(envelope(source=f"{CANARY}!")).encode(),
        json.dumps(envelope(event_time=CANARY)).encode(),
        json.dumps(envelope(payload={"token": CANARY}, extra=CANARY)).encode(),
        json.dumps([envelope(idempotency_key=f"{CANARY} x")]).encode(),
        f'{{"payload": {{"token": "{CANARY}"}}, oops'.encode(),
    ]
    replies = [api.call("POST", "/events", body, headers=secret_headers) for body in bodies]
    replies.append(api.call("GET", f"/events/{CANARY}", headers=secret_headers))
    replies.append(api.call("GET", f"/rates?since={CANARY}", headers=secret_headers))
    for status, headers, body in replies:
        assert status >= 400 or body["rejected"], body
        assert CANARY not in json.dumps(body) and CANARY not in json.dumps(headers)
    captured = capsys.readouterr()
    assert CANARY not in captured.out and CANARY not in captured.err


def test_odd_methods_numbers_and_characters_get_json_errors(
    api: Client, engine: LocalEngine
) -> None:
    for method in ("OPTIONS", "PATCH"):
        status, _, body = api.call(method, "/events")
        assert status == 404 and body["error"]["code"] == "not_found", (method, body)
    # HEAD answers what GET would, without the body, and the connection stays usable.
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    connection.request("HEAD", "/entities")
    head = connection.getresponse()
    assert (head.status, head.read()) == (200, b"")
    connection.request("GET", "/entities")
    got = connection.getresponse()
    assert got.status == 200 and int(head.headers["Content-Length"]) == len(got.read())
    connection.close()
    status, _, body = api.call("GET", "/entities?limit=%C2%B2")  # "²" passes str.isdigit()
    assert (status, body["error"]["field"]) == (400, "limit")
    status, _, body = api.call("GET", "/entities?limit=" + "9" * 5000)
    assert (status, body["error"]["field"]) == (400, "limit")
    # A lone surrogate in one item of an array rejects that item, as the same line would.
    items = (
        b'[%s, {"source": "a", "event_type": "t", "entity_id": "e", '
        % json.dumps(envelope(entity_id="kept")).encode()
        + b'"event_time": "2026-11-01T10:00:00Z", "payload": {"x": "\\ud800"}}]'
    )
    status, _, body = api.call("POST", "/events", items)
    assert status == 200 and (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["error"]["code"] == "lone_surrogate"
    assert engine.counts()["events"] == 1
    gzipped = gzip.compress(json.dumps(envelope()).encode())
    status, _, body = api.call("POST", "/events", gzipped, headers={"Content-Encoding": "gzip"})
    assert (status, body["error"]["field"]) == (415, "content-encoding")
    assert engine.counts()["events"] == 1


def test_a_body_shorter_than_its_length_or_an_odd_length_is_400(api: Client) -> None:
    head = b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    for request, code in (
        (head + b"Content-Length: 100\r\n\r\n" + b'{"source":', b"incomplete_body"),
        (head + "Content-Length: ²\r\n\r\n".encode(), b"invalid_content_length"),
    ):
        with connect(api.port) as raw:
            raw.sendall(request)
            raw.shutdown(socket.SHUT_WR)  # the client is done: the rest never comes
            reply = b""
            while chunk := raw.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400") and code in reply, reply
    assert api.call("GET", "/entities")[0] == 200
