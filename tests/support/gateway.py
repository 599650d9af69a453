"""What API Gateway does in front of the stack's functions, for clients under test.

moto creates the template's REST API but cannot invoke a function behind it (that needs a
container runtime). This stands in for that one hop, on 127.0.0.1: it checks each
request's SigV4 signature (service ``execute-api``) against the secret of its access key,
refuses what an IAM policy would refuse, and hands the request to a Lambda handler as the
REST proxy event API Gateway builds, with the authenticated principal in
``requestContext.identity.userArn``. The handler and everything behind it are the real ones.

    with Gateway(handler, context, {"AKID": ("secret", "arn:aws:iam::...:user/op")}) as gw:
        os.environ["PIK_API_URL"] = gw.url
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api_events import api_event
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
STAGE = "v1"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"execute-api/aws4_request, SignedHeaders=(?P<headers>[^,]+), Signature=(?P<sig>[0-9a-f]+)"
)


class Gateway:
    """A SigV4-checking stand-in for API Gateway in front of one handler.

    ``principals`` maps an access key id to its secret and the principal's ARN; ``allowed``
    (default: all of them) are the ARNs whose policy lets them invoke the routes.
    """

    def __init__(
        self,
        handler: Handler,
        context: Any,
        principals: dict[str, tuple[str, str]],
        allowed: set[str] | None = None,
    ) -> None:
        self.handler, self.context, self.principals = handler, context, principals
        self.allowed = allowed if allowed is not None else {arn for _, arn in principals.values()}
        self.requests: list[dict[str, Any]] = []
        gateway = self

        class Request(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                gateway.serve(self)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/{STAGE}"

    def __enter__(self) -> Gateway:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length", 0)))
        path = request.path
        if not path.startswith(f"/{STAGE}/"):
            return _answer(request, 403, {"message": "Missing Authentication Token"})
        arn = self._authenticate(request, body)
        if arn is None:
            return _answer(
                request, 403, {"message": "The request signature we calculated does not match"}
            )
        if arn not in self.allowed:
            return _answer(
                request,
                403,
                {"message": f"User: {arn} is not authorized to perform: execute-api:Invoke"},
            )
        event = api_event("POST", path[len(STAGE) + 1 :], body, user_arn=arn)
        self.requests.append(event)
        response = self.handler(event, self.context)
        _answer(request, response["statusCode"], json.loads(response["body"] or "null"))

    def _authenticate(self, request: BaseHTTPRequestHandler, body: bytes) -> str | None:
        found = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if found is None or found["key"] not in self.principals:
            return None
        secret, arn = self.principals[found["key"]]
        signed = found["headers"].split(";")
        headers = {name: request.headers.get(name, "") for name in signed}
        host = request.headers.get("Host", "")
        again = AWSRequest("POST", f"http://{host}{request.path}", data=body, headers=headers)
        again.context["timestamp"] = request.headers.get("X-Amz-Date", "")
        signer = SigV4Auth(Credentials(found["key"], secret), "execute-api", found["region"])
        expected = signer.signature(
            signer.string_to_sign(again, signer.canonical_request(again)), again
        )
        return arn if expected == found["sig"] else None


def _answer(request: BaseHTTPRequestHandler, status: int, document: Any) -> None:
    data = json.dumps(document).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
