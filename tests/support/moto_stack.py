"""Create the stack of template.yaml in moto's CloudFormation (inside an active mock_aws()).

    from moto_stack import create_stack

    with mock_aws():
        outputs = create_stack("pik-test", "eu-west-1")
        outputs["IndexTableName"], outputs["RawBucketName"], ...

The template is transformed offline by the SAM translator, then the few resources that
moto's CloudFormation cannot create (or would make unusable) are removed, each in its own
step below with the reason. What is left is created for real in moto: bucket, table with
its indexes, queues with their redrive policies, functions, roles, managed policies and
the REST API; the stack's Outputs are returned exactly as the CLI would read them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from typing import Any

import boto3
from sam_template import Template, load_template, transform_template

# Stand-in parameters: the template's defaults, stated explicitly so a test reads them here.
DEFAULT_PARAMETERS = {
    "RetentionDays": "0",
    "TransitionDays": "90",
    "EnableObjectLock": "false",
    "ObjectLockDays": "365",
    "EnableProcessor": "false",
    "LogRetentionDays": "30",
    "AlarmTopicArn": "",
    "IndexCapacity": "on-demand",
}

_CODE_KEY = "pik-lambda.zip"


def create_stack(
    stack_name: str, region: str, parameters: dict[str, str] | None = None
) -> dict[str, str]:
    """Create the stack in moto and return its Outputs ({OutputKey: OutputValue})."""
    code_bucket = _upload_code(stack_name, region)
    cfn = transform_template(load_template(), code_uri=f"s3://{code_bucket}/{_CODE_KEY}")
    cfn = moto_compatible(cfn)
    values = {**DEFAULT_PARAMETERS, **(parameters or {})}
    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def moto_compatible(cfn: Template) -> Template:
    """The transformed template without what moto's CloudFormation cannot take."""
    cfn = json.loads(json.dumps(cfn))  # a private copy
    # 1. AWS::ApiGateway::Deployment: moto does not import the inline OpenAPI Body, so the
    #    REST API has no methods, and moto refuses to deploy an API without methods.
    # 2. AWS::ApiGateway::Stage: moto's CloudFormation cannot create stages (and the stage
    #    names the deployment). The API id, and so ApiUrl, exist without it.
    _remove_types(cfn, {"AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"})
    # 3. AWS::Lambda::EventSourceMapping: with it, moto tries to run QueueIngestFunction in
    #    a Docker container on every send_message to the ingest queue. Tests call the
    #    handler in-process instead.
    _remove_types(cfn, {"AWS::Lambda::EventSourceMapping"})
    # 4. AWS::S3::BucketPolicy: moto's CloudFormation skips it with a warning (and the
    #    skipped resource then breaks describe_stack_resources); attached by hand, moto
    #    cannot evaluate its conditional Denys and refuses every request, conditional PUTs
    #    and GETs included. Its contents are checked statically (tests/template).
    _remove_types(cfn, {"AWS::S3::BucketPolicy"})
    # 5. AWS::CloudWatch::Alarm: moto's CloudFormation cannot create alarms (it warns and
    #    skips them). That every dead-letter queue has one is checked statically.
    _remove_types(cfn, {"AWS::CloudWatch::Alarm"})
    # 6. AWS::ApplicationAutoScaling::*: (provisioned index capacity only) moto's
    #    CloudFormation cannot create scalable targets or policies. The table is created
    #    with its provisioned throughput; the scaling is checked statically.
    _remove_types(
        cfn,
        {
            "AWS::ApplicationAutoScaling::ScalableTarget",
            "AWS::ApplicationAutoScaling::ScalingPolicy",
        },
    )
    return cfn


def _remove_types(cfn: Template, types: set[str]) -> None:
    resources: dict[str, Any] = cfn["Resources"]
    removed = {name for name, resource in resources.items() if resource["Type"] in types}
    for name in removed:
        del resources[name]
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if isinstance(depends, str):
            depends = [depends]
        if depends is not None:
            kept = [d for d in depends if d not in removed]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
    dangling = sorted(removed & set(_referenced_names(cfn)))
    if dangling:
        raise ValueError(f"removed resources are still referenced: {dangling}")


def _referenced_names(node: Any) -> Iterable[str]:
    """Logical ids named by Ref, Fn::GetAtt and ${...} in Fn::Sub strings."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value[0] if isinstance(value, list) else str(value).split(".")[0]
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                for part in str(text).split("${")[1:]:
                    yield part.split("}")[0].split(".")[0]
            if key != "Ref":
                yield from _referenced_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _referenced_names(item)


def _upload_code(stack_name: str, region: str) -> str:
    """A small zip in a moto bucket: moto's Lambda needs the code object to exist."""
    bucket = f"{stack_name.lower()}-lambda-code"
    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", "Placeholder code for moto; tests call handlers in-process.\n")
    s3.put_object(Bucket=bucket, Key=_CODE_KEY, Body=archive.getvalue())
    return bucket
