"""moto as a local HTTP server, for clients the in-process mock cannot reach.

``mock_aws()`` intercepts botocore's HTTP layer; aiobotocore sends its requests with
aiohttp, so async clients need moto's server mode. Every SDK client in the process
(boto3 and aiobotocore alike) finds the server through ``AWS_ENDPOINT_URL``:

    with moto_server() as url:
        outputs = create_stack("pik-test", "us-east-1")  # boto3, through the server
        ...                                              # aiobotocore, the same server

The server runs in this process and shares moto's backends with ``mock_aws()``; it is
reset when the block ends, so what it held cannot leak into later tests.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto_patches import patch_moto_transactions

REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on a free local port, and the environment that points every
    client at it (with fake credentials); yields the server's URL."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        # werkzeug serves each request in a thread of its own, and moto's backends are not
        # thread-safe: concurrent requests corrupt its dictionaries (and the transaction
        # patch swaps a module global per call). Real AWS applies each request atomically;
        # one request at a time restores that, while clients still send many at once.
        serve = DomainDispatcherApplication.__call__
        lock = threading.Lock()

        def one_at_a_time(self: Any, environ: Any, start_response: Any) -> Any:
            with lock:
                return serve(self, environ, start_response)

        patch.setattr(DomainDispatcherApplication, "__call__", one_at_a_time)
        patch_moto_transactions(patch)
        patch.setattr(MotoRequestHandler, "log_request", lambda *_, **__: None)  # a line each

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        patch.setenv("AWS_ENDPOINT_URL", url)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.delenv("AWS_PROFILE", raising=False)
        try:
            yield url
        finally:
            reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
            urllib.request.urlopen(reset, timeout=10).close()
            server.stop()
