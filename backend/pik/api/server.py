"""`pik serve`: the API's routes over the local engine, on a small threaded HTTP server.

Bound to 127.0.0.1 by default. Any other address needs a bearer token, and then every
request must carry it. Requests naming a foreign ``Host`` are refused (DNS rebinding), a
body over the limit is refused before it is read, and no input takes the server down: an
unexpected error is answered 500 and the server keeps serving.

Slow clients cannot hold it either: a connection idle for ``CLIENT_TIMEOUT_S`` is closed, a
request must arrive whole (request line, headers, body) within ``REQUEST_DEADLINE_S`` of its
first byte however it trickles in (more for a large body), and beyond ``MAX_CONNECTIONS``
open connections a new one is answered 503 at once, without a thread of its own.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import socket
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from aws_lambda_powertools.utilities.typing import LambdaContext

from pik.api.errors import ApiError
from pik.api.routes import MAX_BODY_BYTES, build_api, too_large
from pik.domain.numbers import whole_number
from pik.ports import EventStore

CLIENT_TIMEOUT_S = 15
REQUEST_DEADLINE_S = 30
MIN_BODY_BYTES_PER_S = 64 * 1024
"""A body may take as long again as its length at this rate: a large upload on a slow link
is not cut off, a trickle is."""
MAX_CONNECTIONS = 64
MIN_TOKEN_CHARS = 16
"""A guessable token is no guard on an address others can reach."""


_REFUSALS: dict[int, tuple[str, str]] = {
    HTTPStatus.BAD_REQUEST: ("bad_request", "the request line or a header cannot be read"),
    HTTPStatus.REQUEST_URI_TOO_LONG: ("uri_too_long", "the request line is too long"),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: (
        "headers_too_large",
        "a header is too long, or there are too many",
    ),
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: (
        "http_version_not_supported",
        "send HTTP/1.1 (or HTTP/1.0)",
    ),
}


def _busy_reply() -> bytes:
    error = ApiError(503, "busy", "too many open connections; retry in a moment")
    body = error.body(uuid.uuid4().hex)
    data = body.encode("utf-8")
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode("ascii") + data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # Connections the kernel queues before they are accepted: the standard library's 5
    # had bursts of a dozen clients reset, unanswered, far below MAX_CONNECTIONS.
    request_queue_size = 128

    def __init__(
        self, store: EventStore, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"binding to {host} exposes the store beyond this machine: set PIK_TOKEN "
                "to a secret, and clients must send `Authorization: Bearer <token>`"
            )
        if token is not None and (
            len(token) < MIN_TOKEN_CHARS
            or not token.isascii()
            or not token.isprintable()
            or any(c.isspace() for c in token)
        ):
            # ASCII: a header arrives as bytes, and clients do not agree on how to encode
            # any other character in it.
            raise ValueError(
                f"PIK_TOKEN must be at least {MIN_TOKEN_CHARS} printable ASCII characters "
                "without spaces, e.g. `openssl rand -hex 16`"
            )
        self.api = build_api(store)
        self.token = token
        self._connections = 0
        self._deadlines: dict[socket.socket, float] = {}
        self._guard = threading.Lock()
        if ":" in host:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.allowed_hosts = self._hosts(host, self.server_address[1])

    # --- slow and many clients -------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._guard:
            full = self._connections >= MAX_CONNECTIONS
            if not full:
                self._connections += 1
        if full:  # answered here, on the accepting thread: a full server starts no thread
            try:
                request.settimeout(1)
                request.sendall(_busy_reply())
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (none left): its place is free again
            with self._guard:
                self._connections -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._guard:
                self._connections -= 1
                self._deadlines.pop(request, None)

    def request_started(self, connection: socket.socket) -> None:
        """``connection`` sent a request's first byte: it must deliver the rest within the
        deadline."""
        with self._guard:
            self._deadlines[connection] = time.monotonic() + REQUEST_DEADLINE_S

    def body_announced(self, connection: socket.socket, length: int) -> None:
        """A body of ``length`` bytes follows: time for it at the slowest rate allowed."""
        with self._guard:
            if connection in self._deadlines:
                self._deadlines[connection] += length / MIN_BODY_BYTES_PER_S

    def request_read(self, connection: socket.socket) -> None:
        """The request arrived: answering it takes as long as it takes."""
        with self._guard:
            self._deadlines.pop(connection, None)

    def service_actions(self) -> None:
        # Called by serve_forever between polls: end the requests past their deadline. A
        # shut-down socket makes the handler's pending read fail, and its thread ends.
        now = time.monotonic()
        with self._guard:  # held: a request read meanwhile is not cut off after all
            overdue = [c for c, deadline in self._deadlines.items() if deadline < now]
            for connection in overdue:
                del self._deadlines[connection]
                with contextlib.suppress(OSError):  # closed meanwhile: nothing to end
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection that broke mid-request (reset, timeout, garbage): one line, no
        # traceback and nothing of the request, and the server goes on.
        kind = type(sys.exc_info()[1]).__name__
        print(f"pik serve: dropped a connection from {client_address[0]}: {kind}", file=sys.stderr)

    @staticmethod
    def _hosts(host: str, port: int) -> set[str] | None:
        if not is_loopback(host):
            return None  # the token guards a public bind; the Host may be any name
        names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host.lower()}
        return {f"{name}:{port}" for name in names} | names


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    timeout = CLIENT_TIMEOUT_S
    server_version = "pik"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # Methods no route has are answered by the routes too (404 JSON, as from the stack),
    # not by the standard library's HTML 501.
    def do_PATCH(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        """What GET would answer, headers only (a body here would corrupt the connection)."""
        self._handle()

    def handle_one_request(self) -> None:
        # The deadline runs from the request's first byte: waiting idle for it is bounded
        # by the idle timeout alone.
        try:
            first = self.rfile.peek(1)  # type: ignore[attr-defined]
        except OSError:  # idle too long, or reset: nothing was asked
            first = b""
        if not first:
            self.close_connection = True
            return
        self.server.request_started(self.connection)
        super().handle_one_request()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals, as the API's JSON errors that echo nothing
        of the request: a request line or header it cannot read, one too long, too many
        headers, an HTTP version it does not speak. A method it has no handler for goes to
        the routes, which answer it as the stack does."""
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            self._handle()
            return
        error_code, text = _REFUSALS.get(code, _REFUSALS[HTTPStatus.BAD_REQUEST])
        # Its status line and headers are sent whatever version the request claimed.
        self.request_version = "HTTP/1.1"
        self.close_connection = True
        self._send(code, ApiError(code, error_code, text).body(uuid.uuid4().hex), close=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines would carry query strings; nothing is logged by default

    def _handle(self) -> None:
        request_id = uuid.uuid4().hex
        body: bytes | None = None
        try:
            self._check_framing()
            self._check_access()
            body = self._read_body()
            self.server.request_read(self.connection)
            context = cast(
                LambdaContext, SimpleNamespace(function_name="pik-serve", aws_request_id=request_id)
            )
            result = self.server.api.resolve(self._event(body, request_id), context)
        except ApiError as error:
            # A body left unread would be taken for the next request: close instead.
            self._send(error.status, error.body(request_id), close=body is None)
            return
        except Exception as exc:  # a bug, never the client's fault: answer, keep serving
            print(f"pik serve: request {request_id} failed: {type(exc).__name__}", file=sys.stderr)
            self._send(
                500,
                ApiError(
                    500,
                    "internal_error",
                    "unexpected error; it has been logged with this request id",
                ).body(request_id),
                close=body is None,
            )
            return
        headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}
        headers.update(result.get("headers") or {})
        self._send(int(result["statusCode"]), result.get("body") or "", headers)

    def _check_framing(self) -> None:
        """Refuse what two parsers could read differently (behind a proxy, a smuggled
        request): a header that decides access or framing sent twice, or a chunked body."""
        if self.headers.defects or self.headers.get_payload():
            # The parser stopped at a line that is not `name: value` and kept the rest
            # aside: headers after it (a second Content-Length, say) would go unchecked.
            raise ApiError(400, "malformed_header", "a header line is not `name: value`")
        for name in ("Host", "Content-Length", "Authorization", "Transfer-Encoding"):
            if len(self.headers.get_all(name) or ()) > 1:
                raise ApiError(400, "repeated_header", f"{name} is sent more than once", name)
        if self.headers.get("Transfer-Encoding") is not None:
            raise ApiError(
                411,
                "length_required",
                "send the body with a Content-Length header, not Transfer-Encoding",
                "transfer-encoding",
            )

    def _check_access(self) -> None:
        allowed = self.server.allowed_hosts
        if allowed is not None and self.headers.get("Host", "").lower() not in allowed:
            raise ApiError(
                421, "host_not_allowed", "this server answers only to 127.0.0.1/localhost", "host"
            )
        token = self.server.token
        if token is not None:
            sent = self.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                raise ApiError(401, "unauthorized", "send `Authorization: Bearer <token>`")

    def _read_body(self) -> bytes:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            if self.command in ("POST", "PUT"):
                raise ApiError(411, "length_required", "send a Content-Length header")
            return b""
        length = whole_number(length_text)
        if length is None:
            raise ApiError(400, "invalid_content_length", "Content-Length is not a number")
        if length > MAX_BODY_BYTES:  # the replay routes, which allow more, are not served here
            raise too_large(length, MAX_BODY_BYTES)
        self.server.body_announced(self.connection, length)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = b""
        if len(body) < length:
            raise ApiError(
                400,
                "incomplete_body",
                f"the body ended before the {length} bytes its Content-Length announced",
                "content-length",
            )
        return body

    def _event(self, body: bytes, request_id: str) -> dict[str, Any]:
        """The request as an API Gateway (REST) proxy event: the shape Lambda receives."""
        try:
            url = urlsplit(self.path)
        except ValueError:  # an absolute form with a broken host, such as http://[::1/
            raise ApiError(400, "invalid_path", "the request's path cannot be read") from None
        multi = parse_qs(url.query, keep_blank_values=True)
        headers = {name: value for name, value in self.headers.items()}
        return {
            "httpMethod": "GET" if self.command == "HEAD" else self.command,
            "path": url.path,
            "resource": "/{proxy+}",
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
            "multiValueQueryStringParameters": multi or None,
            "body": base64.b64encode(body).decode() if body else None,
            "isBase64Encoded": bool(body),
            "requestContext": {
                "requestId": request_id,
                "identity": {"sourceIp": self.client_address[0]},
            },
        }

    def _send(
        self, status: int, body: str, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
