"""AWS Lambda handlers: the HTTP API behind API Gateway, and the SQS ingest consumer.

Both run the same services over the storage port as `pik serve` and the CLI; this package
adds only what Lambda needs: the event shapes, structured logs and EMF metrics.
"""
