"""The template's timeouts and the engine's lease agree, so no edit of one breaks the other."""

from __future__ import annotations

from sam_template import Template

from pik.engines.aws.engine import LEASE_US

INGESTING = ("IngestFunction", "QueueIngestFunction")
"""The functions that claim events (and so may leave claims when killed)."""


def _timeout_s(sam: Template, function: str) -> int:
    properties = sam["Resources"][function]["Properties"]
    return int(properties.get("Timeout", sam["Globals"]["Function"]["Timeout"]))


def test_no_ingest_invocation_outlives_the_lease_of_its_claims(sam: Template) -> None:
    """A claim is taken over only once its request cannot be storing any more."""
    for function in INGESTING:
        lease_s = LEASE_US / 1_000_000
        assert lease_s >= 2 * _timeout_s(sam, function), function


def test_a_batch_whose_invocation_died_is_stored_by_a_redelivery_not_dead_lettered(
    sam: Template,
) -> None:
    """An invocation killed between its claims and its commit leaves claims no one
    released. SQS redelivers the batch after the visibility timeout: by then the lease has
    run out, so the redelivery takes them over, well before the queue's tries are spent and
    the batch goes to the dead-letter queue."""
    queue = sam["Resources"]["IngestQueue"]["Properties"]
    visibility_s = int(queue["VisibilityTimeout"])
    tries = int(queue["RedrivePolicy"]["maxReceiveCount"])
    lease_s = LEASE_US / 1_000_000
    assert lease_s < visibility_s
    assert tries >= 3
