"""The template's security properties, on the CloudFormation SAM generates from it.

The compliant template has no findings; every mutation below breaks one property and
must be reported, so no check can pass silently. RELIABILITY.md, row "Template".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sam_template import Template, transform_template
from template_checks import (
    LEDGER_KEYS,
    VERSION_KEYS,
    actions,
    allows,
    as_list,
    expiring_rules,
    findings,
    render,
    resolve,
    resources,
    statements,
)

ROUTES = {
    ("POST", "/events"),
    ("GET", "/events/{event_id}"),
    ("GET", "/entities"),
    ("GET", "/entities/{entity_id}/timeline"),
    ("GET", "/coverage"),
    ("GET", "/rates"),
    ("POST", "/replays/plans"),
    ("POST", "/replays/plans/{plan_id}/confirm"),
    ("POST", "/replays/{replay_id}/resume"),
    ("POST", "/replays/{replay_id}/cancel"),
}
TABLE = ["${IndexTable.Arn}", "${IndexTable.Arn}/index/*"]
RAW_OBJECTS = "${RawBucket.Arn}/raw/*"


def test_the_template_has_no_findings(cfn: Template) -> None:
    assert findings(cfn) == []


def test_the_api_has_exactly_the_documented_routes_all_behind_sigv4(cfn: Template) -> None:
    body = cfn["Resources"]["Api"]["Properties"]["Body"]
    routes = {(m.upper(), path) for path, item in body["paths"].items() for m in item}
    assert routes == ROUTES
    for item in body["paths"].values():
        for operation in item.values():
            assert operation["security"] == [{"AWS_IAM": []}]
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert cfn["Resources"]["Apiv1Stage"]["Properties"]["StageName"] == "v1"


def test_every_body_reaches_the_functions_byte_for_byte(cfn: Template) -> None:
    """As text, API Gateway would hand on a body that is not UTF-8 altered."""
    body = cfn["Resources"]["Api"]["Properties"]["Body"]
    assert body["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_api_gateways_own_refusals_come_in_the_apis_error_shape(cfn: Template) -> None:
    """A missing signature, a denied policy or a timed-out function answers as the API
    does: {"error": {code, message, field, request_id}} (docs/api.md)."""
    body = cfn["Resources"]["Api"]["Properties"]["Body"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert set(responses) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    sample = {
        "$context.error.responseType": "ACCESS_DENIED",
        "$context.error.messageString": '"User: x is not \\"authorized\\""',
        "$context.requestId": "r-1",
    }
    for response in responses.values():
        text = response["responseTemplates"]["application/json"]
        for variable, value in sample.items():
            text = text.replace(variable, value)
        assert json.loads(text) == {
            "error": {
                "code": "ACCESS_DENIED",
                "message": 'User: x is not "authorized"',
                "field": None,
                "request_id": "r-1",
            }
        }


def statement_grants(cfn: Template, role: str) -> set[tuple[tuple[str, ...], tuple[str, ...], str]]:
    """(actions, resources, condition) of each statement of a role's one inline policy."""
    document = cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]
    return {
        (
            tuple(actions(s)),
            tuple(render(r) for r in as_list(s["Resource"])),
            str(s.get("Condition")),
        )
        for s in statements(document)
    }


def _role_grants(cfn: Template, role: str) -> dict[str, set[str]]:
    """{action: {resources}} of a role's inline policies."""
    grants: dict[str, set[str]] = {}
    for policy in cfn["Resources"][role]["Properties"]["Policies"]:
        for stmt in statements(policy["PolicyDocument"]):
            for action in actions(stmt):
                targets = {render(r) for r in as_list(stmt["Resource"])}
                grants.setdefault(action, set()).update(targets)
    return grants


def test_function_roles_grant_exactly_what_each_function_needs(cfn: Template) -> None:
    common = {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    # Ingest: the claim lookup (BatchGetItem) and transactions of Put and Update actions,
    # on the table alone (no index, no Query, no ConditionCheck is ever sent).
    write_index = {"dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    read_index = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
    poll = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    raw = {"s3:GetObject", "s3:ListBucket"}
    expected = {
        "IngestRole": common | write_index | raw | {"s3:PutObject"},
        "QueryRole": common | read_index | raw,
        "QueueIngestRole": common | write_index | raw | {"s3:PutObject"} | poll,
    }
    for role, wanted in expected.items():
        grants = _role_grants(cfn, role)
        assert set(grants) == wanted, role
        for action in wanted:
            if action in write_index and role != "QueryRole":
                assert grants[action] == {"${IndexTable.Arn}"}
            elif action.startswith("dynamodb:"):
                assert sorted(grants[action]) == TABLE
            elif action == "s3:ListBucket":
                assert grants[action] == {"${RawBucket.Arn}"}
            elif action.startswith("s3:"):
                assert grants[action] == {RAW_OBJECTS}
            elif action.startswith("sqs:"):
                assert grants[action] == {"${IngestQueue.Arn}"}
        assert "ManagedPolicyArns" not in cfn["Resources"][role]["Properties"]


def test_the_replay_function_reads_events_writes_the_ledger_and_sends_replays(
    cfn: Template,
) -> None:
    """No Scan, no delete, no wildcard, nothing on "*" but X-Ray; item writes only under
    the ledger's partitions; sends to the replay queue, its own work queue and, when the
    deployer lists any, the target queues (an empty list grants nothing)."""
    document = cfn["Resources"]["ReplayRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert statement_grants(cfn, "ReplayRole") == {
        (("logs:CreateLogStream", "logs:PutLogEvents"), ("${ReplayLogGroup.Arn}",), "None"),
        (("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ("*",), "None"),
        (("s3:GetObject",), (RAW_OBJECTS,), "None"),
        (("s3:ListBucket",), ("${RawBucket.Arn}",), "None"),
        (
            ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"),
            ("${IndexTable.Arn}", "${IndexTable.Arn}/index/timeline"),
            "None",
        ),
        (("dynamodb:PutItem", "dynamodb:UpdateItem"), ("${IndexTable.Arn}",), str(LEDGER_KEYS)),
        (("sqs:SendMessage",), ("${ReplayQueue.Arn}", "${ReplayWorkQueue.Arn}"), "None"),
        (("sqs:SendMessage",), ("${ReplayTargetQueueArns}",), "None"),
        (
            (
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ),
            ("${ReplayWorkQueue.Arn}",),
            "None",
        ),
    }
    (targets,) = (s for s in document["Statement"] if "Fn::If" in s)
    condition, granted, nothing = targets["Fn::If"]
    assert (condition, nothing) == ("ReplayTargetsGiven", {"Ref": "AWS::NoValue"})
    by_default = resolve(cfn, document["Statement"])  # no queues listed: left out
    given = {"ReplayTargetQueueArns": "arn:aws:sqs:eu-west-1:123456789012:downstream"}
    listed = resolve(cfn, document["Statement"], given)
    assert granted not in by_default and listed == [*by_default[:7], granted, by_default[7]]
    assert "ManagedPolicyArns" not in cfn["Resources"]["ReplayRole"]["Properties"]


def test_functions_run_the_handlers_with_the_resource_names(cfn: Template) -> None:
    handlers = {
        "IngestFunction": ("pik.lambdas.api.handler", "IngestRole", 512, 30),
        "QueryFunction": ("pik.lambdas.api.handler", "QueryRole", 512, 30),
        "QueueIngestFunction": ("pik.lambdas.queue.handler", "QueueIngestRole", 512, 30),
        # A replay selection is collected whole (up to 500,000 events).
        "ReplayFunction": ("pik.lambdas.replay.handler", "ReplayRole", 2048, 300),
        "ReplayControlFunction": ("pik.lambdas.api.replay_handler", "ReplayControlRole", 2048, 30),
        "ProcessorFunction": ("pik.lambdas.processor.handler", "ProcessorRole", 512, 30),
    }
    for name, (handler, role, memory, timeout) in handlers.items():
        props = cfn["Resources"][name]["Properties"]
        assert props["Handler"] == handler
        assert props["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        variables = props["Environment"]["Variables"]
        assert variables["PIK_TABLE"] == {"Ref": "IndexTable"}
        assert variables["PIK_BUCKET"] == {"Ref": "RawBucket"}
        assert variables["POWERTOOLS_SERVICE_NAME"] == "pik"
        assert (props["MemorySize"], props["Timeout"]) == (memory, timeout)
    mappings = {
        render(p["FunctionName"]): p for _, p in resources(cfn, "AWS::Lambda::EventSourceMapping")
    }
    assert set(mappings) == {
        "${QueueIngestFunction}",
        "${ReplayFunction}",
        "${ProcessorFunction}",
    }
    ingest = mappings["${QueueIngestFunction}"]
    assert ingest["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert ingest["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (ingest["BatchSize"], ingest["MaximumBatchingWindowInSeconds"]) == (100, 5)
    work = mappings["${ReplayFunction}"]
    assert work["EventSourceArn"] == {"Fn::GetAtt": ["ReplayWorkQueue", "Arn"]}
    assert work["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert work["BatchSize"] == 1  # one run per invocation
    assert work["ScalingConfig"] == {"MaximumConcurrency": 2}  # replays never starve ingest
    replay_variables = cfn["Resources"]["ReplayFunction"]["Properties"]["Environment"]["Variables"]
    assert replay_variables["PIK_REPLAY_QUEUE_URL"] == {"Ref": "ReplayQueue"}
    assert replay_variables["PIK_REPLAY_WORK_QUEUE_URL"] == {"Ref": "ReplayWorkQueue"}
    assert replay_variables["PIK_REPLAY_TARGETS"] == {
        "Fn::Join": [",", {"Ref": "ReplayTargetQueueArns"}]
    }
    processor = cfn["Resources"]["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    assert processor["PIK_PROCESSOR_WINDOW"] == {"Ref": "ProcessorWindow"}
    assert processor["PIK_PROCESSOR_SUM"] == {"Ref": "ProcessorSum"}


def test_overwrites_are_refused_by_the_exact_conditional_write_keys(cfn: Template) -> None:
    policy = cfn["Resources"]["RawBucketPolicy"]["Properties"]["PolicyDocument"]
    (stmt,) = (s for s in statements(policy) if s.get("Sid") == "DenyUnconditionalWrites")
    assert stmt["Action"] == "s3:PutObject"
    assert stmt["Condition"] == {
        "Null": {"s3:if-none-match": "true"},
        "Bool": {"s3:ObjectCreationOperation": "true"},
    }


def test_raw_data_expires_only_when_a_retention_is_chosen(cfn: Template) -> None:
    assert expiring_rules(cfn) == []
    assert expiring_rules(cfn, {"RetentionDays": 400}) == ["RawBucket/ExpireRawObjects"]
    bucket = cfn["Resources"]["RawBucket"]["Properties"]
    rules = resolve(cfn, bucket["LifecycleConfiguration"], {"RetentionDays": 400})["Rules"]
    (expire,) = (r for r in rules if r["Id"] == "ExpireRawObjects")
    assert expire["ExpirationInDays"] == {"Ref": "RetentionDays"}
    # The bytes an expiry keeps as a noncurrent version go a day later, not N days later.
    assert expire["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


def test_object_lock_only_when_enabled(cfn: Template) -> None:
    bucket = cfn["Resources"]["RawBucket"]["Properties"]
    off = resolve(cfn, bucket)
    assert "ObjectLockEnabled" not in off and "ObjectLockConfiguration" not in off
    on = resolve(cfn, bucket, {"EnableObjectLock": "true"})
    assert on["ObjectLockEnabled"] is True
    retention = on["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": "GOVERNANCE", "Days": {"Ref": "ObjectLockDays"}}


def test_provisioned_capacity_scales_the_table_and_both_indexes(cfn: Template) -> None:
    table = cfn["Resources"]["IndexTable"]["Properties"]
    on_demand = resolve(cfn, table)
    assert on_demand["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in on_demand
    assert all("ProvisionedThroughput" not in i for i in on_demand["GlobalSecondaryIndexes"])
    provisioned = resolve(cfn, table, {"IndexCapacity": "provisioned"})
    assert provisioned["BillingMode"] == "PROVISIONED"
    for described in [provisioned, *provisioned["GlobalSecondaryIndexes"]]:
        # A constant seed: a parameter there would reset the live capacity on updates.
        assert described["ProvisionedThroughput"] == {
            "ReadCapacityUnits": 5,
            "WriteCapacityUnits": 5,
        }

    resources = cfn["Resources"]
    targets = {
        name: r
        for name, r in resources.items()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    }
    scaled = set()
    for name, target in targets.items():
        assert target["Condition"] == "IndexProvisioned"
        props = target["Properties"]
        io = props["ScalableDimension"].rsplit(":", 1)[1].removesuffix("CapacityUnits")
        assert props["MinCapacity"] == {"Ref": f"Index{io}CapacityMin"}
        assert props["MaxCapacity"] == {"Ref": f"Index{io}CapacityMax"}
        resource_id = props["ResourceId"]["Fn::Sub"]
        scaled.add((resource_id, props["ScalableDimension"]))
        (policy,) = [
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
            and r["Properties"]["ScalingTargetId"] == {"Ref": name}
        ]
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == 70
        metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        assert metric == f"DynamoDB{io}CapacityUtilization"
    assert scaled == {
        (resource, f"dynamodb:{kind}:{io}CapacityUnits")
        for resource, kind in [
            ("table/${IndexTable}", "table"),
            ("table/${IndexTable}/index/timeline", "index"),
            ("table/${IndexTable}/index/directory", "index"),
        ]
        for io in ("Read", "Write")
    }


def test_the_replay_operator_can_do_all_the_reader_can(cfn: Template) -> None:
    def document(name: str) -> list[dict[str, Any]]:
        return statements(cfn["Resources"][name]["Properties"]["PolicyDocument"])

    replay = document("ReplayOperatorPolicy")
    for stmt in document("OperatorReadOnlyPolicy"):
        assert stmt in replay
    producer = {s["Sid"]: s for s in document("ProducerPolicy")}
    assert render(producer["PostEvents"]["Resource"]).endswith("${Api}/v1/POST/events")
    assert producer["SendToIngestQueue"]["Resource"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    (consumer,) = document("ReplayConsumerPolicy")
    assert consumer["Resource"] == {"Fn::GetAtt": ["ReplayQueue", "Arn"]}
    assert set(consumer["Action"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }


def test_the_processor_reads_events_writes_versions_and_consumes_the_replay_queue(
    cfn: Template,
) -> None:
    """Only with EnableProcessor; no Scan, no delete, no wildcard; item writes only under
    the versions' partitions (V#); polls the replay queue and sends nowhere."""
    assert statement_grants(cfn, "ProcessorRole") == {
        (("logs:CreateLogStream", "logs:PutLogEvents"), ("${ProcessorLogGroup.Arn}",), "None"),
        (("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ("*",), "None"),
        (("s3:GetObject",), (RAW_OBJECTS,), "None"),
        (("s3:ListBucket",), ("${RawBucket.Arn}",), "None"),
        (
            ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"),
            ("${IndexTable.Arn}", "${IndexTable.Arn}/index/timeline"),
            "None",
        ),
        (("dynamodb:PutItem",), ("${IndexTable.Arn}",), str(VERSION_KEYS)),
        (
            ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
            ("${ReplayQueue.Arn}",),
            "None",
        ),
    }
    for name in ("ProcessorRole", "ProcessorFunction", "ProcessorLogGroup"):
        assert cfn["Resources"][name]["Condition"] == "ProcessorEnabled"
    trigger = cfn["Resources"]["ProcessorFunctionReplayed"]
    assert trigger["Condition"] == "ProcessorEnabled"
    assert render(trigger["Properties"]["EventSourceArn"]) == "${ReplayQueue.Arn}"
    assert trigger["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert cfn["Outputs"]["ProcessorFunctionName"]["Condition"] == "ProcessorEnabled"


def test_every_dead_letter_queue_has_an_alarm(cfn: Template) -> None:
    """A message in a DLQ is ingest or replay that failed for good: someone must hear."""
    queues = {
        name for name, _ in resources(cfn, "AWS::SQS::Queue") if name.endswith("DeadLetterQueue")
    }
    watched = {
        dimension["Value"]["Fn::GetAtt"][0]
        for _, alarm in resources(cfn, "AWS::CloudWatch::Alarm")
        for dimension in alarm["Dimensions"]
        if dimension["Name"] == "QueueName"
    }
    assert queues == {
        "IngestDeadLetterQueue",
        "ReplayDeadLetterQueue",
        "ReplayWorkDeadLetterQueue",
    }
    assert watched == queues


def test_every_output_the_cli_reads_is_declared(cfn: Template) -> None:
    names = {
        "ApiUrl", "ApiId", "RawBucketName", "IndexTableName", "ReplayQueueUrl",
        "ReplayQueueArn", "ReplayDeadLetterQueueUrl", "ReplayWorkQueueUrl",
        "ReplayWorkDeadLetterQueueUrl", "ReplayTargetQueueArns", "IngestQueueUrl", "IngestQueueArn",
        "IngestDeadLetterQueueUrl", "IngestFunctionName", "QueryFunctionName",
        "QueueIngestFunctionName", "ReplayFunctionName", "ReplayControlFunctionName",
        "OperatorReadOnlyPolicyArn",
        "ReplayOperatorPolicyArn", "ProducerPolicyArn", "ProcessorFunctionName",
        "ReplayConsumerPolicyArn", "ReplayRoleArn", "ProcessorSpec",
    }  # fmt: skip
    assert set(cfn["Outputs"]) == names
    assert all(output.get("Description") for output in cfn["Outputs"].values())
    # Only when the deployer listed queues: a client finds no output, so no targets.
    assert cfn["Outputs"]["ReplayTargetQueueArns"]["Condition"] == "ReplayTargetsGiven"


def test_a_replay_operator_controls_replays_through_the_api_only(cfn: Template) -> None:
    """An operator may invoke the POST /replays routes, and write no item and send no
    message: the replay control function writes the ledger (its items only, by
    dynamodb:LeadingKeys) and starts runs, as the caller API Gateway authenticated."""
    replay = {
        s["Sid"]: s
        for s in statements(
            cfn["Resources"]["ReplayOperatorPolicy"]["Properties"]["PolicyDocument"]
        )
    }
    assert replay["ControlReplays"]["Action"] == "execute-api:Invoke"
    assert render(replay["ControlReplays"]["Resource"]).endswith("${Api}/v1/POST/replays/*")
    for action in ("sqs:SendMessage", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert not any(allows(s, action) for s in replay.values()), action
    assert statement_grants(cfn, "ReplayControlRole") == {
        (("logs:CreateLogStream", "logs:PutLogEvents"), ("${ReplayControlLogGroup.Arn}",), "None"),
        (("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ("*",), "None"),
        (
            ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"),
            ("${IndexTable.Arn}", "${IndexTable.Arn}/index/timeline"),
            "None",
        ),
        (("dynamodb:PutItem", "dynamodb:UpdateItem"), ("${IndexTable.Arn}",), str(LEDGER_KEYS)),
        (("sqs:SendMessage",), ("${ReplayWorkQueue.Arn}",), "None"),
    }
    paths = cfn["Resources"]["Api"]["Properties"]["Body"]["paths"]
    served = {
        path
        for path, item in paths.items()
        if "ReplayControlFunction.Arn"
        in str(item.get("post", {}).get("x-amazon-apigateway-integration", {}).get("uri"))
    }
    assert served == {path for method, path in ROUTES if path.startswith("/replays")}


# ------------------------------------------------------------------ mutations

Mutation = Callable[[Template], None]


def _props(template: Template, name: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][name]["Properties"]
    return props


def _stmt(template: Template, resource: str, sid: str) -> dict[str, Any]:
    document = _props(template, resource)["PolicyDocument"]
    return next(s for s in document["Statement"] if s.get("Sid") == sid)


def _drop_stmt(resource: str, sid: str) -> Mutation:
    def mutate(template: Template) -> None:
        document = _props(template, resource)["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != sid]

    return mutate


def _grant(role: str, action: Any, resource: Any = RAW_OBJECTS, **extra: Any) -> Mutation:
    def mutate(template: Template) -> None:
        statement = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
        document = _props(template, role)["Policies"][0]["PolicyDocument"]
        document["Statement"].append(statement)

    return mutate


def _people_grant(policy: str, action: str, resource: Any) -> Mutation:
    def mutate(template: Template) -> None:
        document = _props(template, policy)["PolicyDocument"]
        document["Statement"].append({"Effect": "Allow", "Action": action, "Resource": resource})

    return mutate


def _add_resource(name: str, type_: str, **props: Any) -> Mutation:
    def mutate(template: Template) -> None:
        template["Resources"][name] = {"Type": type_, "Properties": props}

    return mutate


def _set(resource: str, path: str, value: Any) -> Mutation:
    def mutate(template: Template) -> None:
        *parents, last = path.split(".")
        node = _props(template, resource)
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()
_REPLAY_QUEUE = {"Fn::GetAtt": ["ReplayQueue", "Arn"]}
_WORK_QUEUE = {"Fn::GetAtt": ["ReplayWorkQueue", "Arn"]}
_POST_ANY = {"Fn::Sub": "arn:aws:execute-api:eu-west-1:123456789012:${Api}/v1/POST/*"}

# Mutations of the generated CloudFormation: (id, mutation, expected finding).
CFN_MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("route-without-security", _set("Api", "Body.paths./rates.get.security", _DELETE),
     "GET /rates has no authorization"),
    ("no-routes", _set("Api", "Body.paths", {}), "no API routes found"),
    ("method-without-iam", _add_resource("OpenMethod", "AWS::ApiGateway::Method",
                                         AuthorizationType="NONE", HttpMethod="GET"),
     "OpenMethod: method without IAM"),
    ("versioning-dropped", _set("RawBucket", "VersioningConfiguration", _DELETE), "versioning"),
    ("versioning-suspended", _set("RawBucket", "VersioningConfiguration.Status", "Suspended"),
     "versioning"),
    ("encryption-dropped", _set("RawBucket", "BucketEncryption", _DELETE), "encryption"),
    ("public-bucket", _set("RawBucket", "PublicAccessBlockConfiguration.RestrictPublicBuckets",
                           False), "RestrictPublicBuckets"),
    ("no-bucket-policy", lambda t: t["Resources"].pop("RawBucketPolicy"), "no bucket policy"),
    ("tls-deny-dropped", _drop_stmt("RawBucketPolicy", "DenyInsecureTransport"), "TLS"),
    ("tls-deny-inverted", lambda t: _stmt(t, "RawBucketPolicy", "DenyInsecureTransport")
     .update(Condition={"Bool": {"aws:SecureTransport": "true"}}), "TLS"),
    ("delete-deny-dropped", _drop_stmt("RawBucketPolicy", "DenyDeletingRawData"),
     "does not deny s3:DeleteObject "),
    ("version-delete-allowed", lambda t: _stmt(t, "RawBucketPolicy", "DenyDeletingRawData")
     .update(Action="s3:DeleteObject"), "does not deny s3:DeleteObjectVersion"),
    ("delete-deny-conditional", lambda t: _stmt(t, "RawBucketPolicy", "DenyDeletingRawData")
     .update(Condition={"StringNotEquals": {"aws:PrincipalAccount": "123456789012"}}),
     "does not deny s3:DeleteObject"),
    ("overwrite-deny-dropped", _drop_stmt("RawBucketPolicy", "DenyUnconditionalWrites"),
     "If-None-Match"),
    ("overwrite-deny-inverted", lambda t: _stmt(t, "RawBucketPolicy", "DenyUnconditionalWrites")
     ["Condition"].update(Null={"s3:if-none-match": "false"}), "If-None-Match"),
    ("overwrite-deny-narrowed", lambda t: _stmt(t, "RawBucketPolicy", "DenyUnconditionalWrites")
     ["Condition"].update(StringEquals={"aws:PrincipalTag/team": "x"}), "If-None-Match"),
    ("bucket-not-retained", lambda t: t["Resources"]["RawBucket"].pop("DeletionPolicy"),
     "RawBucket: DeletionPolicy"),
    ("role-deletes-objects", _grant("IngestRole", "s3:DeleteObject"), "allows s3:DeleteObject"),
    ("role-deletes-versions", _grant("QueryRole", ["s3:GetObject", "s3:DeleteObjectVersion"]),
     "allows s3:DeleteObjectVersion"),
    ("role-s3-wildcard", _grant("IngestRole", "s3:*"), "wildcard action s3:*"),
    ("role-delete-prefix", _grant("IngestRole", "s3:Delete*"), "wildcard action s3:Delete*"),
    ("role-item-wildcard", _grant("QueryRole", "dynamodb:*Item", TABLE),
     "allows dynamodb:*Item"),
    ("role-deletes-items", _grant("QueueIngestRole", "dynamodb:DeleteItem", TABLE),
     "allows dynamodb:DeleteItem"),
    ("role-scans", _grant("QueryRole", "dynamodb:Scan", TABLE), "allows dynamodb:Scan"),
    ("role-batch-writes", _grant("IngestRole", "dynamodb:BatchWriteItem", TABLE),
     "allows dynamodb:BatchWriteItem"),
    ("role-reads-everything", _grant("QueryRole", "s3:GetObject", "*"),
     's3:GetObject on Resource "*"'),
    ("role-any-queue", _grant("QueueIngestRole", "sqs:ReceiveMessage", ["*"]),
     'sqs:ReceiveMessage on Resource "*"'),
    ("role-not-action", _grant("QueryRole", "s3:GetObject", NotAction="s3:PutObject"),
     "NotAction"),
    ("role-managed-policy", _set("QueryRole", "ManagedPolicyArns",
                                 ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]),
     "AmazonS3FullAccess cannot be verified"),
    ("policy-attached-to-role", _add_resource(
        "ExtraPolicy", "AWS::IAM::Policy", PolicyName="extra", Roles=[{"Ref": "QueryRole"}],
        PolicyDocument={"Statement": [{"Effect": "Allow", "Action": "dynamodb:Scan",
                                       "Resource": {"Fn::GetAtt": ["IndexTable", "Arn"]}}]}),
     "allows dynamodb:Scan"),
    ("reader-sends-replays", _people_grant("OperatorReadOnlyPolicy", "sqs:SendMessage",
                                           _REPLAY_QUEUE), "can send messages"),
    ("reader-any-sqs", _people_grant("OperatorReadOnlyPolicy", "sqs:*", _REPLAY_QUEUE),
     "can send messages"),
    ("reader-posts", _people_grant("OperatorReadOnlyPolicy", "execute-api:Invoke", _POST_ANY),
     "invokes more than GET routes"),
    ("replayer-feeds-ingest", _people_grant("ReplayOperatorPolicy", "sqs:SendMessage",
                                            {"Fn::GetAtt": ["IngestQueue", "Arn"]}),
     "ReplayOperatorPolicy: can send messages"),
    ("operator-deletes", _people_grant("ReplayOperatorPolicy", "s3:DeleteObject", RAW_OBJECTS),
     "ReplayOperatorPolicy: allows s3:DeleteObject"),
    ("producer-reads-all", _people_grant("ProducerPolicy", "s3:GetObject", "*"),
     'ProducerPolicy: s3:GetObject on Resource "*"'),
    ("no-pitr", _set("IndexTable", "PointInTimeRecoverySpecification", _DELETE),
     "point-in-time recovery"),
    ("no-table-sse", _set("IndexTable", "SSESpecification.SSEEnabled", False), "SSESpecification"),
    ("table-unprotected", _set("IndexTable", "DeletionProtectionEnabled", False),
     "deletion protection"),
    ("no-dlq", _set("IngestQueue", "RedrivePolicy", _DELETE), "IngestQueue: no dead-letter"),
    ("no-work-dlq", _set("ReplayWorkQueue", "RedrivePolicy", _DELETE),
     "ReplayWorkQueue: no dead-letter"),
    ("work-without-partial-failures", _set("ReplayFunctionReplayWork", "FunctionResponseTypes",
                                          _DELETE), "consumed without ReportBatchItemFailures"),
    ("work-visibility-short", _set("ReplayWorkQueue", "VisibilityTimeout", 900),
     "visibility timeout 900 s < 6 x ReplayFunction's 300 s"),
    ("replay-role-scans", _grant("ReplayRole", "dynamodb:Scan", TABLE), "allows dynamodb:Scan"),
    ("replay-role-deletes", _grant("ReplayRole", "dynamodb:DeleteItem", TABLE),
     "allows dynamodb:DeleteItem"),
    ("replay-role-wildcard", _grant("ReplayRole", "sqs:*", _REPLAY_QUEUE), "wildcard action sqs:*"),
    ("replay-role-any-queue", _grant("ReplayRole", "sqs:SendMessage", "*"),
     'sqs:SendMessage on Resource "*"'),
    ("replay-role-reads-everything", _grant("ReplayRole", "s3:GetObject", "*"),
     's3:GetObject on Resource "*"'),
    ("replay-role-writes-events", lambda t: _props(t, "ReplayRole")["Policies"][0]
     ["PolicyDocument"]["Statement"][5].pop("Condition"),
     "ReplayRole: dynamodb:PutItem, dynamodb:UpdateItem beyond the replay ledger"),
    ("replay-role-targets-anything", lambda t: _props(t, "ReplayRole")["Policies"][0]
     ["PolicyDocument"]["Statement"][7]["Fn::If"][1].update(Resource="*"),
     'sqs:SendMessage on Resource "*"'),
    ("ingest-sends-replays", _grant("IngestRole", "sqs:SendMessage", _REPLAY_QUEUE),
     "IngestRole: may send to ${ReplayQueue.Arn}"),
    ("reader-starts-replays", _people_grant("OperatorReadOnlyPolicy", "sqs:SendMessage",
                                            _WORK_QUEUE), "can send messages"),
    ("replayer-sends-replays", _people_grant("ReplayOperatorPolicy", "sqs:SendMessage",
                                             _REPLAY_QUEUE),
     "ReplayOperatorPolicy: may send to ${ReplayQueue.Arn}"),
    ("replayer-writes-ledger", _people_grant("ReplayOperatorPolicy", "dynamodb:PutItem",
                                             "${IndexTable.Arn}"),
     "ReplayOperatorPolicy: writes table items (dynamodb:PutItem)"),
    ("replayer-starts-runs", _people_grant("ReplayOperatorPolicy", "sqs:SendMessage",
                                           _WORK_QUEUE), "ReplayOperatorPolicy: can send messages"),
    ("replayer-posts-events", _people_grant("ReplayOperatorPolicy", "execute-api:Invoke",
                                            _POST_ANY),
     "ReplayOperatorPolicy: invokes more than GET routes and the replay routes"),
    ("control-role-writes-events", lambda t: _props(t, "ReplayControlRole")["Policies"][0]
     ["PolicyDocument"]["Statement"][3].pop("Condition"),
     "ReplayControlRole: dynamodb:PutItem, dynamodb:UpdateItem beyond the replay ledger"),
    ("ingest-writes-ledger", lambda t: [
        _props(t, "IngestRole")["Policies"][0]["PolicyDocument"]["Statement"][5].pop("Condition"),
        _props(t, "IngestRole")["Policies"][0]["PolicyDocument"]["Statement"].pop(6)],
     "IngestRole: may write the replay ledger's items (no Deny on its keys)"),
    ("ingest-writes-any-item", lambda t: _props(t, "IngestRole")["Policies"][0]
     ["PolicyDocument"]["Statement"][5].pop("Condition"),
     "IngestRole: dynamodb:PutItem, dynamodb:UpdateItem beyond the index's partitions"),
    ("queue-ingest-writes-versions", lambda t: _props(t, "QueueIngestRole")["Policies"][0]
     ["PolicyDocument"]["Statement"][5]["Condition"]["ForAllValues:StringLike"]
     ["dynamodb:LeadingKeys"].append("V#*"),
     "QueueIngestRole: dynamodb:PutItem, dynamodb:UpdateItem beyond the index's partitions"),
    ("queue-ingest-ledger-deny-narrowed", lambda t: [
        _props(t, "QueueIngestRole")["Policies"][0]["PolicyDocument"]["Statement"][5]
        .pop("Condition"),
        _props(t, "QueueIngestRole")["Policies"][0]["PolicyDocument"]["Statement"][6]
        .update(Action="dynamodb:PutItem")],
     "QueueIngestRole: may write the replay ledger's items (no Deny on its keys)"),
    ("control-role-sends-replays", _grant("ReplayControlRole", "sqs:SendMessage", _REPLAY_QUEUE),
     "ReplayControlRole: may send to ${ReplayQueue.Arn}"),
    ("processor-always-on", lambda t: t["Resources"]["ProcessorFunction"].pop("Condition"),
     "ProcessorFunction: deployed without EnableProcessor"),
    ("processor-writes-events", lambda t: _props(t, "ProcessorRole")["Policies"][0]
     ["PolicyDocument"]["Statement"][5].pop("Condition"),
     "ProcessorRole: dynamodb:PutItem beyond the version items"),
    ("processor-updates", _grant("ProcessorRole", "dynamodb:UpdateItem", TABLE),
     "ProcessorRole: dynamodb:UpdateItem beyond the version items"),
    ("processor-scans", _grant("ProcessorRole", "dynamodb:Scan", TABLE), "allows dynamodb:Scan"),
    ("processor-sends-replays", _grant("ProcessorRole", "sqs:SendMessage", _REPLAY_QUEUE),
     "ProcessorRole: may send to ${ReplayQueue.Arn}"),
    ("processor-without-partial-failures", _set("ProcessorFunctionReplayed",
                                               "FunctionResponseTypes", _DELETE),
     "consumed without ReportBatchItemFailures"),
    ("queue-unencrypted", _set("ReplayQueue", "SqsManagedSseEnabled", False),
     "ReplayQueue: not encrypted"),
    ("reader-cannot-list", lambda t: _props(t, "QueryRole")["Policies"][0]
     ["PolicyDocument"]["Statement"].pop(3),
     "QueryRole: reads raw objects but may not list the bucket"),
    ("operator-cannot-list", _drop_stmt("OperatorReadOnlyPolicy", "ListRaw"),
     "OperatorReadOnlyPolicy: reads raw objects but may not list the bucket"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [pytest.param(m, e, id=i) for i, m, e in CFN_MUTATIONS],
)
def test_each_check_reports_its_violation(cfn: Template, mutation: Mutation, expected: str) -> None:
    mutation(cfn)
    assert any(expected in line for line in findings(cfn)), findings(cfn)


def _unconditional_expiry(sam: Template) -> None:
    rules = _props(sam, "RawBucket")["LifecycleConfiguration"]["Rules"]
    rules[-1] = rules[-1]["Fn::If"][1]


def _crud_policy_template(sam: Template) -> None:
    """SAM's generated role with the common DynamoDBCrudPolicy policy template."""
    props = _props(sam, "QueryFunction")
    del props["Role"]
    props["Policies"] = [{"DynamoDBCrudPolicy": {"TableName": {"Ref": "IndexTable"}}}]


# Mutations of the SAM template, transformed again: what a plausible edit would generate.
SAM_MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("route-auth-none", _set("QueryFunction", "Events.GetRates.Properties.Auth",
                             {"Authorizer": "NONE"}), "GET /rates does not require IAM"),
    ("no-default-authorizer", _set("Api", "Auth", _DELETE), "POST /events has no authorization"),
    ("function-url", _set("IngestFunction", "FunctionUrlConfig", {"AuthType": "NONE"}),
     "function URL without IAM"),
    ("sam-generated-role", _set("IngestFunction", "Role", _DELETE),
     "AWSLambdaBasicExecutionRole cannot be verified"),
    ("sam-generated-sqs-role", _set("QueueIngestFunction", "Role", _DELETE),
     "AWSLambdaSQSQueueExecutionRole cannot be verified"),
    ("replay-work-without-partial-failures",
     _set("ReplayFunction", "Events.ReplayWork.Properties.FunctionResponseTypes", _DELETE),
     "ReplayWorkQueue is consumed without ReportBatchItemFailures"),
    ("replay-timeout-raised", _set("ReplayFunction", "Timeout", 900),
     "visibility timeout 1800 s < 6 x ReplayFunction's 900 s"),
    ("crud-policy-template", _crud_policy_template, "allows dynamodb:DeleteItem"),
    ("expiry-unconditional", _unconditional_expiry, "raw data expires"),
    ("retention-by-default", lambda t: t["Parameters"]["RetentionDays"].update(Default=30),
     "raw data expires"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [pytest.param(m, e, id=i) for i, m, e in SAM_MUTATIONS],
)
def test_each_plausible_template_edit_is_reported(
    sam: Template, mutation: Mutation, expected: str
) -> None:
    mutation(sam)
    reported = findings(transform_template(sam))
    assert any(expected in line for line in reported), reported
