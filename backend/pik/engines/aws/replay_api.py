"""`pik replay --stack`: plan, confirm, resume and cancel through the stack's API.

Every change to the replay ledger is a SigV4-signed request to the stack's API (IAM auth);
the replay control function makes it as the principal API Gateway authenticated. The
operator's own credentials only read the ledger (status, audit, a plan before it is
confirmed), so no operator can write a plan, a run or an audit record directly.

The API is found by the stack's ``ApiUrl`` output; ``PIK_API_URL`` overrides it (a custom
domain name, a private endpoint).
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from pik.domain.replay import AuditRecord, Plan, ReplayError, ReplayRun, Selection
from pik.engines.aws.clients import Clients, unavailable_on_failure
from pik.engines.aws.engine import AwsConfig
from pik.engines.aws.ledger import AwsReplayLedger
from pik.ports import Progress
from pik.storage_errors import StoreUnavailableError

TIMEOUT_S = 30
POLICY = "ReplayOperatorPolicy"


class SignedApi:
    """POST JSON to an API Gateway stage with SigV4 (``execute-api``) signatures."""

    def __init__(self, base_url: str, region: str | None, session: Any = None) -> None:
        self._base = base_url.rstrip("/")
        self._region = region
        self._session = session

    def post(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import NoCredentialsError, NoRegionError

        session = self._session or boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        region = self._region or session.region_name
        if not region:
            raise NoRegionError()
        body = json.dumps(document, ensure_ascii=False).encode()
        request = AWSRequest(
            "POST", self._base + path, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        prepared = request.prepare()
        sent = urllib.request.Request(
            prepared.url, data=body, headers=dict(prepared.headers.items()), method="POST"
        )
        try:
            with urllib.request.urlopen(sent, timeout=TIMEOUT_S) as answer:
                found = json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            raise _refusal(refused.code, refused.read()) from None
        except urllib.error.URLError as exc:  # before the request reached the API
            raise StoreUnavailableError(
                f"the stack's API at {self._base} could not be reached ({exc.reason}); "
                "nothing was changed, try again"
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise StoreUnavailableError(
                f"the stack's API did not answer in full ({type(exc).__name__}); the request "
                "may or may not have taken effect: check with `pik replay status` and "
                "`pik replay audit` before trying again"
            ) from None
        if not isinstance(found, dict):
            raise StoreUnavailableError(
                "the stack's API answered with something other than a JSON object; check "
                "that PIK_API_URL (if set) names the stack's API"
            )
        return found


def _refusal(status: int, body: bytes) -> Exception:
    """The error an API answer stands for: ours carry a code and a field."""
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        error = None
    elif error["code"].isupper():
        # API Gateway's own refusal (the stack's gateway responses give it our shape).
        document, error = error, None
    if error is not None:
        if status >= 500:
            request = error.get("request_id")
            return StoreUnavailableError(
                f"{error.get('message')} [{error['code']}] (request id {request})"
            )
        return ReplayError(error["code"], str(error.get("message")), status, error.get("field"))
    message = document.get("message") if isinstance(document, dict) else None
    if status in (401, 403):  # API Gateway's own answer: the signature or the policy
        return ReplayError(
            "forbidden",
            f"the stack's API refused the request ({message or status}); sign in as an "
            f"identity with the stack's {POLICY}",
            status,
        )
    if status == 504:
        return StoreUnavailableError(
            "the stack's API timed out; the request may still have taken effect: check with "
            "`pik replay status` and `pik replay audit` before trying again"
        )
    return StoreUnavailableError(f"the stack's API answered {status} ({message or 'no detail'})")


class ApiReplayControl:
    """A :class:`~pik.services.replay_control.ReplayControl` on a deployed stack."""

    def __init__(self, config: AwsConfig, api_url: str, *, session: Any = None) -> None:
        self._clients = Clients(config.region, session, config.endpoint_url)
        self._ledger = AwsReplayLedger(config, clients=self._clients)
        self._api = SignedApi(api_url, config.region, session)
        self._who: str | None = None

    @classmethod
    def open(
        cls, stack_name: str, *, region: str | None = None, session: Any = None
    ) -> ApiReplayControl:
        from pik.engines.aws.discovery import StackNotFoundError, discover

        config = discover(stack_name, session, region)
        api_url = os.environ.get("PIK_API_URL") or config.api_url
        if not (api_url and config.replay_work_queue_url and config.replay_control):
            raise StackNotFoundError(
                f"stack {stack_name!r} has no replay routes (output "
                "ReplayControlFunctionName): update it to this version of the template "
                "(docs/deploy.md, Phase 2: replay)"
            )
        return cls(config, api_url, session=session)

    @property
    def who(self) -> str:
        """The caller's IAM principal, as the function will audit it."""
        if self._who is None:
            with unavailable_on_failure("finding the caller's identity"):
                self._who = str(self._clients.sts.get_caller_identity()["Arn"])
        return self._who

    def plan(self, selection: Selection) -> Plan:
        return Plan.from_document(self._api.post("/replays/plans", selection.to_document()))

    def confirm(self, plan_id: str, rate: int) -> ReplayRun:
        """Confirmed and handed to the replay function in one request."""
        path = f"/replays/plans/{quote(plan_id, safe='')}/confirm"
        return ReplayRun.from_document(self._api.post(path, {"confirm": True, "rate": rate}))

    def start(self, run: ReplayRun, progress: Progress | None = None) -> ReplayRun:
        """Nothing to do: the API started the run when it confirmed or resumed it."""
        return self._ledger.run(run.replay_id) or run

    def resume(self, replay_id: str, rate: int | None = None) -> ReplayRun:
        path = f"/replays/{quote(replay_id, safe='')}/resume"
        return ReplayRun.from_document(self._api.post(path, {} if rate is None else {"rate": rate}))

    def cancel(self, replay_id: str) -> ReplayRun:
        path = f"/replays/{quote(replay_id, safe='')}/cancel"
        return ReplayRun.from_document(self._api.post(path, {}))

    def find_plan(self, plan_id: str) -> Plan | None:
        return self._ledger.plan(plan_id)

    def run(self, replay_id: str) -> ReplayRun | None:
        return self._ledger.run(replay_id)

    def runs(self, limit: int) -> list[ReplayRun]:
        return self._ledger.runs(limit)

    def audit_log(self, since_us: int, limit: int) -> list[AuditRecord]:
        return self._ledger.audit_log(since_us, limit)

    def close(self) -> None:
        self._ledger.close()
