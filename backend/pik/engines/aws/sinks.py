"""A replay sink on AWS: a run's messages into an SQS queue.

Messages go out with ``SendMessageBatch``, packed into as few requests as the limits
allow: at most 10 messages and at most 256 KiB of bodies a request (the limits moto and
SQS's long-standing documentation enforce; SQS now takes 1 MiB). In the usual case that is
one request per 10 messages. A message larger than 256 KiB goes in a request of its own,
so the queue's ``MaximumMessageSize`` decides: the stack's replay queue takes 1 MiB, the
most SQS allows, and every replay message of a valid event fits in it (an event is at
most 256 KiB of raw; quoting it inside the message at most doubles it). A message the
queue refuses stops the run with a :class:`ReplayError` that says why; it is never
dropped silently.

Entries SQS reports as failed on its side are sent again, a few times with backoff, then
the send raises ``StoreUnavailableError``: the run stops and resumes from its ledger, so
the messages of the batch may arrive twice (consumers drop repeats by replay id and seq),
never not at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from pik.domain.replay import ReplayError
from pik.engines.aws.clients import Clients, error_code, unavailable_on_failure
from pik.storage_errors import StoreUnavailableError

MAX_ENTRIES = 10
"""Messages one SendMessageBatch carries."""
MAX_REQUEST_BYTES = 256 * 1024
"""Bodies one request carries, unless a single message is larger."""
MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message any SQS queue takes."""
SEND_ATTEMPTS = 4
REFUSALS = frozenset(
    {
        "InvalidParameterValue",
        "InvalidMessageContents",
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
    }
)
"""What SQS answers to a request it will never take as it is. SQS's JSON protocol reports
the codes of its older query protocol (``AWS.SimpleQueueService.…``, ``KMS.…``), which
botocore passes on; moto uses the shorter names, so both are listed."""
UNREACHABLE = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "KmsAccessDenied",
        "KmsDisabled",
        "KmsNotFound",
        "KmsInvalidState",
        "KmsInvalidKeyUsage",
        "KmsOptInRequired",
        "AccessDenied",
        "AccessDeniedException",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "KMS.NotFoundException",
        "KMS.InvalidStateException",
        "KMS.InvalidKeyUsageException",
        "KMS.OptInRequired",
    }
)
"""What SQS answers when the queue is gone or this function may not send to it: retrying
the same request cannot help, someone has to mend the target."""

# SQS takes only these characters in a body (XML 1.0's): no U+FFFE, U+FFFF. A replay
# message is JSON, where they can only stand inside a string, and the escape means the
# same string to any JSON reader. Everything else below U+0020 is escaped by JSON already.
_ESCAPES = str.maketrans({"\ufffe": "\\ufffe", "\uffff": "\\uffff"})


def body_of(message: bytes) -> str:
    """A replay message as an SQS message body."""
    return message.decode("utf-8").translate(_ESCAPES)


def pack(bodies: Sequence[str]) -> Iterator[list[str]]:
    """The bodies in order, in requests of at most 10 messages and 256 KiB (a larger
    message alone)."""
    request: list[str] = []
    size = 0
    for body in bodies:
        length = len(body.encode("utf-8"))
        if request and (len(request) == MAX_ENTRIES or size + length > MAX_REQUEST_BYTES):
            yield request
            request, size = [], 0
        request.append(body)
        size += length
    if request:
        yield request


class QueueSink:
    """A :class:`~pik.ports.ReplaySink` sending to one SQS queue."""

    max_batch = MAX_ENTRIES

    def __init__(
        self,
        queue_url: str,
        clients: Clients,
        *,
        region: str | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.queue_url = queue_url
        self._sqs = clients.sqs_in(region) if region else clients.sqs
        self._pause = pause
        self._random = random.Random()

    def close(self) -> None:
        """Nothing to release: clients hold pooled connections only."""

    def send(self, messages: Sequence[bytes]) -> None:
        bodies = [body_of(m) for m in messages]
        for body in bodies:
            size = len(body.encode("utf-8"))
            if size > MAX_MESSAGE_BYTES:
                raise _too_large(size, f"SQS takes ({MAX_MESSAGE_BYTES:,} bytes)")
        sent = 0
        for request in pack(bodies):
            self._send_request(request, sent)
            sent += len(request)

    def _send_request(self, bodies: list[str], before: int) -> None:
        """Send one request's bodies (``before`` of the batch went in earlier requests);
        resend the entries SQS failed on its side."""
        from botocore.exceptions import ClientError

        pending = {str(i): body for i, body in enumerate(bodies)}
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                self._pause(0.1 * 2**attempt * (0.5 + self._random.random()))
            entries = [{"Id": key, "MessageBody": body} for key, body in pending.items()]
            try:
                with unavailable_on_failure("sending replay messages to SQS"):
                    answer: dict[str, Any] = self._sqs.send_message_batch(
                        QueueUrl=self.queue_url, Entries=entries
                    )
            except ClientError as exc:
                code = error_code(exc)
                if code in REFUSALS:
                    raise _refused(exc, list(pending.values())) from None
                if code in UNREACHABLE:
                    raise _unreachable(exc, self.queue_url) from None
                raise
            failed = answer.get("Failed") or []
            for failure in failed:
                if failure.get("SenderFault"):
                    taken = before + len(bodies) - len(failed)
                    raise _refused_entry(failure, pending.get(str(failure.get("Id")), ""), taken)
            pending = {str(f["Id"]): pending[str(f["Id"])] for f in failed}
            if not pending:
                return
        raise StoreUnavailableError(
            f"SQS kept failing {len(pending)} replay message(s) after {SEND_ATTEMPTS} tries; "
            "the run stops here and resumes from its ledger"
        )


def _too_large(size: int, limit: str) -> ReplayError:
    return ReplayError(
        "message_too_large",
        f"a replay message of {size:,} bytes is larger than {limit}; the run stopped before "
        "it (the messages before it were sent). Raise the queue's MaximumMessageSize (SQS "
        "allows 1 MiB) or leave the event out of the selection",
        413,
    )


def _refused(exc: Exception, bodies: list[str]) -> ReplayError:
    error = getattr(exc, "response", {}).get("Error", {})
    sizes = [len(body.encode("utf-8")) for body in bodies]
    if len(bodies) == 1 and sizes[0] > MAX_REQUEST_BYTES:
        return _too_large(sizes[0], "the queue takes (its MaximumMessageSize)")
    return ReplayError(
        "message_refused",
        f"the queue refused {len(bodies)} replay message(s) "
        f"({error.get('Code')}: {error.get('Message')}); the run stopped there",
        422,
    )


def _unreachable(exc: Exception, queue_url: str) -> ReplayError:
    return ReplayError(
        "target_unavailable",
        f"the replay target {queue_url} answered {error_code(exc)}: the queue is gone or "
        "this stack may not send to it (its policy or key). The run stopped there (the "
        "messages before were sent); mend the queue, then plan and confirm the rest again",
        409,
    )


def _refused_entry(failure: dict[str, Any], body: str, taken: int) -> ReplayError:
    """One entry of a request refused: SQS took the request's other entries all the same
    (``taken`` messages of the batch in all, some after the refused one), which the
    message says, since the run's record stops at the batch's first message."""
    size = len(body.encode("utf-8"))
    if size > MAX_REQUEST_BYTES:
        refusal = _too_large(size, "the queue takes (its MaximumMessageSize)")
    else:
        seq = _seq(body)
        refusal = ReplayError(
            "message_refused",
            f"replay {'a message' if seq is None else f'message {seq}'} was refused "
            f"({failure.get('Code')}: {failure.get('Message')}); the run stopped there",
            422,
        )
    return ReplayError(
        refusal.code,
        f"{refusal}. SQS took {taken} other message(s) of the same batch, later ones among "
        "them: consumers may see those, though the run's count of messages sent stops at "
        "the batch's first",
        refusal.status,
    )


def _seq(body: str) -> int | None:
    """The ``seq`` of a replay message's body, if it reads as one."""
    try:
        seq = orjson.loads(body).get("seq")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None
