"""Fixtures of the AWS tests: moto's server mode, for the async reader (aiobotocore is out
of ``mock_aws()``'s reach), and a log of every request an engine makes.

One server and one stack per test module: creating the stack is the slow part, and the
tests that use it only read once their module's data is in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_requests import RequestLog
from moto_server import REGION, moto_server
from moto_stack import create_stack

from pik.engines.aws import AwsConfig
from pik.engines.aws.discovery import discover

SERVER_STACK = "pik-server"


@pytest.fixture(scope="module")
def moto_server_url() -> Iterator[str]:
    """A moto server every client of this process reaches (through AWS_ENDPOINT_URL)."""
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def server_config(moto_server_url: str) -> AwsConfig:
    """The template's stack created in the server, and found by its name like `pik --stack`."""
    create_stack(SERVER_STACK, REGION)
    return discover(SERVER_STACK, region=REGION)


@pytest.fixture
def log() -> RequestLog:
    """Every AWS request of the engines built on ``log.session()``; ``log.fail`` injects."""
    return RequestLog()
