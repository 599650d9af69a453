"""template.yaml, loaded and transformed offline by the SAM translator (no AWS calls)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"

# The translator rejects a local CodeUri (`sam build`/`sam package` replace it with an S3
# location); any s3:// URI stands in for the bundle when nothing is deployed.
PLACEHOLDER_CODE_URI = "s3://pik-code-bundle/pik.zip"

Template = dict[str, Any]


class _NoManagedPolicies(ManagedPolicyLoader):
    """Offline stand-in: the real loader lists AWS managed policies through IAM.

    It is consulted only to resolve managed policy *names* in a function's Policies; the
    template names none, so an empty map is exact.
    """

    def __init__(self) -> None:  # the base class wants an IAM client
        pass

    def load(self) -> dict[str, str]:
        return {}


def load_template(path: Path = TEMPLATE_PATH) -> Template:
    """The SAM template as a dict (short-form tags such as !Ref become Fn:: mappings)."""
    template: Template = yaml_parse(path.read_text())
    return template


def transform_template(
    template: Template | None = None,
    *,
    code_uri: str = PLACEHOLDER_CODE_URI,
    parameters: dict[str, Any] | None = None,
) -> Template:
    """The CloudFormation that `sam deploy` would submit (the input is not modified)."""
    sam = copy.deepcopy(load_template() if template is None else template)
    sam.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = code_uri
    for resource in sam["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            if "CodeUri" in properties:
                properties["CodeUri"] = code_uri
    with _some_region():
        result: Template = transform(sam, parameters or {}, _NoManagedPolicies())
    return result


@contextmanager
def _some_region() -> Iterator[None]:
    """The translator looks up the partition from the SDK's region: make sure there is one."""
    if os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"):
        yield
        return
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        yield
    finally:
        os.environ.pop("AWS_DEFAULT_REGION", None)
