"""Fixtures for the template tests: the SAM template, its transform, a stack in moto.

Helpers live in tests/support (on pytest's pythonpath): sam_template, template_checks and
moto_stack.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sam_template import Template, load_template, transform_template

STACK_NAME = "pik-template-test"
REGION = "eu-west-1"


@pytest.fixture(scope="session")
def _transformed() -> Template:
    return transform_template()


@pytest.fixture
def sam() -> Template:
    """The SAM template (a fresh copy: tests may mutate it)."""
    return load_template()


@pytest.fixture
def cfn(_transformed: Template) -> Template:
    """The CloudFormation SAM generates (a fresh copy: tests may mutate it)."""
    return copy.deepcopy(_transformed)


@pytest.fixture
def template_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The stack created in moto: {"outputs": {...}, "region": ..., "name": ...}."""
    from moto import mock_aws
    from moto_stack import create_stack

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        outputs = create_stack(STACK_NAME, REGION)
        yield {"outputs": outputs, "region": REGION, "name": STACK_NAME}
