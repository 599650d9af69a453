"""What every SQS-triggered function shares: do the invocation's work on all its records at
once, then report each record's fate in the ``batchItemFailures`` shape (the event source
mapping must enable ReportBatchItemFailures).

The work returns the message ids SQS is to deliver again; the Batch utility then walks the
records only to report them. Even when every record fails the response lists them all
rather than raising, so the invocation's metrics and log line are still written. Any other
error is a bug: the invocation fails with a message of our own (the original may quote the
input), and SQS delivers the whole batch again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pik.lambdas.observability import flush_metrics, log_failure, logger, record_count

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
Work = Callable[[list[dict[str, Any]]], tuple[set[str], dict[str, Any]]]
"""An invocation's work on its records: the message ids to deliver again, and the fields
of the invocation's log line."""


class RetryLaterError(RuntimeError):
    """The record was not done; SQS is to deliver it again."""


def batch_handler(name: str, work: Work) -> Handler:
    """An SQS event source handler that runs ``work`` and reports partial failures."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    @logger.inject_lambda_context(log_event=False, clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        logger.set_correlation_id(context.aws_request_id)
        records: list[dict[str, Any]] = list(event.get("Records") or [])
        if not records:  # never sent by Lambda; the Batch utility would refuse it
            return {"batchItemFailures": []}
        try:
            retry, fields = work(records)
            record_count("RecordsRetried", len(retry))

            def report(record: SQSRecord) -> None:
                if record.message_id in retry:
                    raise RetryLaterError(f"{name}: not done, to be delivered again")

            response: dict[str, Any] = dict(
                process_partial_response(
                    event=event, record_handler=report, processor=processor, context=context
                )
            )
        except Exception as exc:
            log_failure("unhandled error; the batch goes back to the queue", exc)
            raise RuntimeError(
                f"{name} failed ({type(exc).__name__}); see the log line of this request id"
            ) from None
        finally:
            flush_metrics()
        logger.info(name, extra={"records": len(records), "retried": sorted(retry), **fields})
        return response

    return handler
