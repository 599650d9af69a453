"""`pik serve` in a test: a server on a free port of 127.0.0.1, and a client for it."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

from pik.api.server import ApiServer
from pik.engines.local import LocalEngine


def envelope(**changes: Any) -> dict[str, Any]:
    return {
        "source": "checkout",
        "event_type": "order.created",
        "entity_id": "customer-1",
        "event_time": "2026-11-01T10:00:00Z",
        "payload": {"amount": 1},
        **changes,
    }


class Client:
    def __init__(self, port: int, token: str | None = None) -> None:
        self.port, self.token = port, token

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Content-Type": content_type, **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def status_read(raw: socket.socket) -> int:
    """The status of the next response on ``raw``, its body read."""
    response = http.client.HTTPResponse(raw)
    response.begin()
    response.read()
    return response.status


TOKEN = "s3cret-token-0123456789"


@contextlib.contextmanager
def serving(store: LocalEngine, token: str | None = None) -> Iterator[ApiServer]:
    """A server on a free port of 127.0.0.1, stopped on the way out."""
    server = ApiServer(store, "127.0.0.1", 0, token)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
