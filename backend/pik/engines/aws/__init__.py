"""The AWS engine: S3 for raw segments, DynamoDB for the index (see engine.py)."""

from pik.engines.aws.engine import AwsConfig, AwsEngine

__all__ = ["AwsConfig", "AwsEngine"]
