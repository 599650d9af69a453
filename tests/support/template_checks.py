"""Security properties of the transformed CloudFormation (RELIABILITY.md, row "Template").

cfn-lint passes templates with no auth at all, so these checks read what SAM generated
and report every violation as one line. `findings(cfn)` is empty for a compliant template;
tests/template/test_security.py mutates copies to prove each check can fail.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import Any

Template = dict[str, Any]

DATA_SERVICES = ("s3:", "dynamodb:", "sqs:")
# Never granted to a function role: deleting raw objects, deleting or scanning the index.
# BatchWriteItem and PartiQL writes can delete items too, so they are refused with them.
FORBIDDEN_ROLE_ACTIONS = (
    "s3:delete*",
    "dynamodb:deleteitem",
    "dynamodb:scan",
    "dynamodb:batchwriteitem",
    "dynamodb:partiqldelete",
    "dynamodb:deletetable",
)
# Never granted to the people's policies either (an operator investigates, never deletes).
FORBIDDEN_PEOPLE_ACTIONS = tuple(a for a in FORBIDDEN_ROLE_ACTIONS if a != "dynamodb:scan")
PEOPLE_POLICIES = ("OperatorReadOnlyPolicy", "ReplayOperatorPolicy", "ProducerPolicy")
# The replay ledger's partitions (pik.engines.aws.shapes.LEDGER_PARTITIONS): the only items
# the replay function and the replay control function may write. No person writes any item.
LEDGER_KEYS = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["P#*", "X", "X#*", "U", "U#*"]}}
ITEM_WRITES = ("dynamodb:putitem", "dynamodb:updateitem", "dynamodb:*")
# The index's partitions (pik.engines.aws.shapes): all the ingest functions may write.
INDEX_KEYS = {
    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["E#*", "B#*", "C#*", "R#*", "T#*", "D#*"]}
}
INDEX_WRITERS = ("IngestRole", "QueueIngestRole")
# The processor's versions (pik.engines.aws.shapes.version_partition): all it may write.
VERSION_KEYS = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["V#*"]}}
# Resources that exist only with the processor (EnableProcessor=true).
PROCESSOR_RESOURCES = ("ProcessorRole", "ProcessorFunction", "ProcessorLogGroup")
REPLAY_QUEUES = ("${ReplayQueue.Arn}", "${ReplayWorkQueue.Arn}")
# Who may send where: the replay function delivers replays and continues itself; the replay
# control function starts runs (the work queue) for operators, who send nothing themselves.
REPLAY_SENDERS = {
    "${ReplayQueue.Arn}": {"ReplayRole"},
    "${ReplayWorkQueue.Arn}": {"ReplayRole", "ReplayControlRole"},
}
LEDGER_WRITERS = ("ReplayRole", "ReplayControlRole")
_LIKE = "ForAllValues:StringLike"
# What a replay operator may invoke beyond the reader's GET routes.
REPLAY_ROUTES = r"/[^/]+/POST/replays/\*$"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def findings(cfn: Template) -> list[str]:
    """Every violation of the template's security properties, one line each."""
    checks: tuple[Callable[[Template], Iterator[str]], ...] = (
        api_findings,
        bucket_findings,
        role_findings,
        people_policy_findings,
        table_findings,
        queue_findings,
        event_source_findings,
        replay_findings,
        processor_findings,
        retention_findings,
        raw_listing_findings,
    )
    return [line for check in checks for line in check(cfn)]


# ------------------------------------------------------------------ helpers


def resources(cfn: Template, type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in cfn.get("Resources", {}).items():
        if resource.get("Type") == type_:
            yield name, resource.get("Properties", {})


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def var(name: str) -> str:
    """How Fn::Sub names a resource or attribute: var("B.Arn") -> "${B.Arn}"."""
    return "${" + name + "}"


def render(value: Any) -> str:
    """A resource reference as text: {"Fn::GetAtt": ["B", "Arn"]} -> "${B.Arn}"."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return var(arg)
        if key == "Fn::GetAtt":
            return var(".".join(as_list(arg)))
        if key == "Fn::Sub":
            if isinstance(arg, list):
                text, names = arg[0], arg[1]
                for name, sub in names.items():
                    text = text.replace(var(name), render(sub))
                return str(text)
            return str(arg)
    return repr(value)


def statements(document: Any) -> list[dict[str, Any]]:
    """A policy's statements; a conditional one (Fn::If) counts with both its branches."""
    found: list[dict[str, Any]] = []
    for stmt in as_list((document or {}).get("Statement", [])):
        if isinstance(stmt, dict) and set(stmt) == {"Fn::If"}:
            branches = stmt["Fn::If"][1:]
            found += [b for b in branches if isinstance(b, dict) and b != {"Ref": "AWS::NoValue"}]
        elif isinstance(stmt, dict):
            found.append(stmt)
    return found


def actions(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action", []))]


def allows(statement: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement's action patterns cover `action` (IAM wildcards)."""
    return statement.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions(statement)
    )


def _matches_forbidden(action: str, forbidden: tuple[str, ...]) -> str | None:
    lowered = action.lower()
    for pattern in forbidden:
        if fnmatch.fnmatchcase(lowered, pattern) or fnmatch.fnmatchcase(pattern, lowered):
            return pattern
    return None


# ------------------------------------------------------------------ the API


def api_findings(cfn: Template) -> Iterator[str]:
    routes = 0
    for name, props in resources(cfn, "AWS::ApiGateway::RestApi"):
        body = props.get("Body")
        if not isinstance(body, dict):
            yield f"{name}: no inline OpenAPI Body, so route auth cannot be verified"
            continue
        schemes = {
            **body.get("securityDefinitions", {}),
            **body.get("components", {}).get("securitySchemes", {}),
        }
        sigv4 = {
            k for k, v in schemes.items() if v.get("x-amazon-apigateway-authtype") == "awsSigv4"
        }
        default = body.get("security")
        for path, item in body.get("paths", {}).items():
            for method, operation in item.items():
                if (
                    method.lower() not in HTTP_METHODS
                    and method != "x-amazon-apigateway-any-method"
                ):
                    continue
                routes += 1
                required = operation.get("security", default)
                if not required:
                    yield f"{name}: {method.upper()} {path} has no authorization"
                elif any(not (set(alt) & sigv4) for alt in required):
                    yield f"{name}: {method.upper()} {path} does not require IAM (SigV4)"
    for name, props in resources(cfn, "AWS::ApiGateway::Method"):
        routes += 1
        if props.get("AuthorizationType") != "AWS_IAM":
            yield f"{name}: method without IAM authorization"
    for name, props in resources(cfn, "AWS::ApiGatewayV2::Route"):
        routes += 1
        if props.get("AuthorizationType") != "AWS_IAM":
            yield f"{name}: route without IAM authorization"
    for name, props in resources(cfn, "AWS::Lambda::Url"):
        if props.get("AuthType") != "AWS_IAM":
            yield f"{name}: function URL without IAM authorization"
    if routes == 0:
        yield "no API routes found"


# ------------------------------------------------------------------ the raw bucket


def bucket_findings(cfn: Template) -> Iterator[str]:
    policies = {
        render(props.get("Bucket")): props.get("PolicyDocument", {})
        for _, props in resources(cfn, "AWS::S3::BucketPolicy")
    }
    for name, props in resources(cfn, "AWS::S3::Bucket"):
        if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            yield f"{name}: versioning is not enabled"
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithms = {r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
        if not algorithms & {"AES256", "aws:kms", "aws:kms:dsse"}:
            yield f"{name}: no default encryption"
        block = props.get("PublicAccessBlockConfiguration", {})
        for flag in (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ):
            if block.get(flag) is not True:
                yield f"{name}: public access block {flag} is not true"
        if cfn["Resources"][name].get("DeletionPolicy") != "Retain":
            yield f"{name}: DeletionPolicy is not Retain"
        policy = policies.get(var(name))
        if policy is None:
            yield f"{name}: no bucket policy"
            continue
        yield from _bucket_policy_findings(name, statements(policy))


def _denies_everyone(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    return statement.get("Effect") == "Deny" and principal in ("*", {"AWS": "*"})


def _bucket_policy_findings(bucket: str, stmts: list[dict[str, Any]]) -> Iterator[str]:
    arn = var(f"{bucket}.Arn")
    objects = f"{arn}/*"
    denies = [s for s in stmts if _denies_everyone(s)]

    def covers(statement: dict[str, Any], action: str, resource: str) -> bool:
        return any(
            fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions(statement)
        ) and resource in {render(r) for r in as_list(statement.get("Resource", []))}

    tls = [
        s
        for s in denies
        if covers(s, "s3:GetObject", objects)
        and covers(s, "s3:ListBucket", arn)
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    if not tls:
        yield f"{bucket}: policy does not deny requests without TLS (aws:SecureTransport)"
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        if not any(covers(s, action, objects) and not s.get("Condition") for s in denies):
            yield f"{bucket}: policy does not deny {action} to every principal"
    conditional = [
        s
        for s in denies
        if covers(s, "s3:PutObject", objects)
        and s.get("Condition", {}).get("Null") == {"s3:if-none-match": "true"}
        and set(s["Condition"]) <= {"Null", "Bool"}
        and s["Condition"].get("Bool", {"s3:ObjectCreationOperation": "true"})
        == {"s3:ObjectCreationOperation": "true"}
    ]
    if not conditional:
        yield f"{bucket}: policy does not deny PutObject without If-None-Match"


# ------------------------------------------------------------------ roles and policies


def _role_documents(cfn: Template) -> Iterator[tuple[str, Any]]:
    """(label, policy document) for every policy that ends up on an IAM role."""
    for name, props in resources(cfn, "AWS::IAM::Role"):
        for policy in props.get("Policies", []):
            yield f"role {name} ({policy.get('PolicyName')})", policy.get("PolicyDocument")
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, props in resources(cfn, type_):
            if props.get("Roles"):
                yield f"{type_.split('::')[-1]} {name} on roles", props.get("PolicyDocument")


def _statement_findings(
    label: str, stmt: dict[str, Any], forbidden: tuple[str, ...]
) -> Iterator[str]:
    if stmt.get("Effect") != "Allow":
        return
    if "NotAction" in stmt or "NotResource" in stmt:
        yield f"{label}: Allow with NotAction/NotResource"
    resources_ = [render(r) for r in as_list(stmt.get("Resource", []))]
    for action in actions(stmt):
        if "*" in action:
            yield f"{label}: wildcard action {action}"
        hit = _matches_forbidden(action, forbidden)
        if hit:
            yield f"{label}: allows {action} (forbidden: {hit})"
        if action.lower().startswith(DATA_SERVICES) and "*" in resources_:
            yield f'{label}: {action} on Resource "*"'


def role_findings(cfn: Template) -> Iterator[str]:
    for name, props in resources(cfn, "AWS::IAM::Role"):
        # The contents of a managed policy cannot be read here; SAM's defaults
        # (AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole) grant Resource "*".
        for arn in props.get("ManagedPolicyArns", []):
            yield f"role {name}: managed policy {render(arn)} cannot be verified"
    for label, document in _role_documents(cfn):
        for stmt in statements(document):
            yield from _statement_findings(label, stmt, FORBIDDEN_ROLE_ACTIONS)


def people_policy_findings(cfn: Template) -> Iterator[str]:
    docs = {name: p.get("PolicyDocument") for name, p in resources(cfn, "AWS::IAM::ManagedPolicy")}
    for name in PEOPLE_POLICIES:
        if name not in docs:
            yield f"{name}: missing"
            continue
        for stmt in statements(docs[name]):
            yield from _statement_findings(name, stmt, FORBIDDEN_PEOPLE_ACTIONS)
    read_only = statements(docs.get("OperatorReadOnlyPolicy"))
    for stmt in read_only:
        if allows(stmt, "sqs:SendMessage"):
            yield "OperatorReadOnlyPolicy: can send messages (sqs:SendMessage)"
        if allows(stmt, "execute-api:Invoke"):
            for resource in map(render, as_list(stmt.get("Resource", []))):
                if not re.search(r"/[^/]+/GET/", resource):
                    yield f"OperatorReadOnlyPolicy: invokes more than GET routes: {resource}"
    for name in PEOPLE_POLICIES:
        for stmt in statements(docs.get(name)):
            writes = [a for a in actions(stmt) if a.lower() in ITEM_WRITES]
            if writes and stmt.get("Effect") == "Allow":
                yield f"{name}: writes table items ({', '.join(writes)})"
    for stmt in statements(docs.get("ReplayOperatorPolicy")):
        if allows(stmt, "sqs:SendMessage"):
            yield "ReplayOperatorPolicy: can send messages (sqs:SendMessage)"
        if allows(stmt, "execute-api:Invoke"):
            for resource in map(render, as_list(stmt.get("Resource", []))):
                if not re.search(r"/[^/]+/GET/", resource) and not re.search(
                    REPLAY_ROUTES, resource
                ):
                    yield (
                        "ReplayOperatorPolicy: invokes more than GET routes and the replay "
                        f"routes: {resource}"
                    )


# ------------------------------------------------------------------ table and queues


def table_findings(cfn: Template) -> Iterator[str]:
    for name, props in resources(cfn, "AWS::DynamoDB::Table"):
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled") is not True:
            yield f"{name}: point-in-time recovery is not enabled"
        if props.get("SSESpecification", {}).get("SSEEnabled") is not True:
            yield f"{name}: SSESpecification is not enabled"
        if props.get("DeletionProtectionEnabled") is not True:
            yield f"{name}: deletion protection is not enabled"
        if cfn["Resources"][name].get("DeletionPolicy") != "Retain":
            yield f"{name}: DeletionPolicy is not Retain"


def queue_findings(cfn: Template) -> Iterator[str]:
    queues = dict(resources(cfn, "AWS::SQS::Queue"))
    targets = {
        render(props.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
        for props in queues.values()
        if props.get("RedrivePolicy")
    }
    for name, props in queues.items():
        if not (props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId")):
            yield f"{name}: not encrypted at rest"
        if var(f"{name}.Arn") in targets:
            continue  # a dead-letter queue itself
        redrive = props.get("RedrivePolicy")
        if not redrive:
            yield f"{name}: no dead-letter queue (RedrivePolicy)"
            continue
        target = render(redrive.get("deadLetterTargetArn"))
        if target.removeprefix("${").removesuffix(".Arn}") not in queues:
            yield f"{name}: dead-letter target {target} is not a queue of this stack"
        if not isinstance(redrive.get("maxReceiveCount"), int):
            yield f"{name}: RedrivePolicy without maxReceiveCount"


# ------------------------------------------------------------------ retention


def resolve(cfn: Template, node: Any, parameters: dict[str, Any] | None = None) -> Any:
    """`node` with every Fn::If decided for the given parameters (template defaults else)."""
    values = {k: str(v.get("Default")) for k, v in cfn.get("Parameters", {}).items()}
    values.update({k: str(v) for k, v in (parameters or {}).items()})

    def condition(expr: Any) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return condition(cfn["Conditions"][arg])
            if key == "Fn::Equals":
                return value(arg[0]) == value(arg[1])
            if key == "Fn::Not":
                return not condition(arg[0])
            if key == "Fn::And":
                return all(condition(a) for a in arg)
            if key == "Fn::Or":
                return any(condition(a) for a in arg)
        raise ValueError(f"cannot evaluate condition {expr!r}")

    def value(expr: Any) -> str:
        if isinstance(expr, dict) and "Ref" in expr:
            return values[expr["Ref"]]
        if isinstance(expr, dict) and "Fn::Join" in expr:
            separator, parts = expr["Fn::Join"]
            if isinstance(parts, dict):  # a list parameter, as its comma-separated value
                parts = value(parts).split(",")
            return str(separator).join(value(part) for part in parts)
        return str(expr)

    no_value = {"Ref": "AWS::NoValue"}

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            if set(item) == {"Fn::If"}:
                name, yes, no = item["Fn::If"]
                return walk(yes if condition(cfn["Conditions"][name]) else no)
            pairs = ((k, walk(v)) for k, v in item.items())
            return {k: v for k, v in pairs if v != no_value}
        if isinstance(item, list):
            return [v for v in map(walk, item) if v != no_value]
        return item

    return walk(node)


EXPIRING_KEYS = (
    "ExpirationInDays",
    "ExpirationDate",
    "NoncurrentVersionExpiration",
    "NoncurrentVersionExpirationInDays",
    "ExpiredObjectDeleteMarker",
)


def expiring_rules(cfn: Template, parameters: dict[str, Any] | None = None) -> list[str]:
    """Ids of enabled lifecycle rules that delete data, for the given parameters."""
    found = []
    for name, props in resources(cfn, "AWS::S3::Bucket"):
        lifecycle = resolve(cfn, props.get("LifecycleConfiguration", {}), parameters)
        for rule in lifecycle.get("Rules", []):
            if rule.get("Status") == "Enabled" and any(k in rule for k in EXPIRING_KEYS):
                found.append(f"{name}/{rule.get('Id')}")
    return found


def retention_findings(cfn: Template) -> Iterator[str]:
    for rule in expiring_rules(cfn):
        yield f"{rule}: raw data expires with the default parameters"


# ------------------------------------------------------------------ SQS-triggered functions


def event_source_findings(cfn: Template) -> Iterator[str]:
    """Every queue consumer reports partial batch failures (else one failed message fails
    its whole batch, and a poisoned message retries healthy ones), and its queue keeps a
    message hidden at least six times the function's timeout (Lambda's advice: a message
    is not handed out twice while a retried invocation still works on it)."""
    queues = dict(resources(cfn, "AWS::SQS::Queue"))
    functions = dict(resources(cfn, "AWS::Lambda::Function"))
    for name, props in resources(cfn, "AWS::Lambda::EventSourceMapping"):
        queue = render(props.get("EventSourceArn")).removeprefix("${").removesuffix(".Arn}")
        if queue not in queues:
            continue  # not one of this stack's queues
        if "ReportBatchItemFailures" not in as_list(props.get("FunctionResponseTypes", [])):
            yield f"{name}: {queue} is consumed without ReportBatchItemFailures"
        function = render(props.get("FunctionName")).removeprefix("${").removesuffix("}")
        timeout = functions.get(function, {}).get("Timeout", 3)
        visibility = queues[queue].get("VisibilityTimeout", 30)
        if isinstance(timeout, int) and isinstance(visibility, int) and visibility < 6 * timeout:
            yield f"{queue}: visibility timeout {visibility} s < 6 x {function}'s {timeout} s"


# ------------------------------------------------------------------ replay


def _policy_documents(cfn: Template) -> Iterator[tuple[str, Any]]:
    """(owner, document) for every role's inline policies and every managed policy."""
    for name, props in resources(cfn, "AWS::IAM::Role"):
        for policy in props.get("Policies", []):
            yield name, policy.get("PolicyDocument")
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, props in resources(cfn, type_):
            yield name, props.get("PolicyDocument")


def raw_listing_findings(cfn: Template) -> Iterator[str]:
    """Whoever reads raw objects may list the bucket: S3 answers a missing key with 403,
    not the 404 the code recognises as "missing", to a caller without s3:ListBucket."""
    for owner, document in _policy_documents(cfn):
        allowed = [s for s in statements(document) if s.get("Effect") == "Allow"]
        reads = any(allows(s, "s3:GetObject") for s in allowed)
        lists = any(
            allows(s, "s3:ListBucket")
            and "${RawBucket.Arn}" in map(render, as_list(s.get("Resource", [])))
            for s in allowed
        )
        if reads and not lists:
            yield f"{owner}: reads raw objects but may not list the bucket (s3:ListBucket)"


def replay_findings(cfn: Template) -> Iterator[str]:
    """Only the replay function sends to the replay queues; whoever writes the replay
    ledger (the replay and replay control functions) writes its items and no other; the
    ingest functions write the index's items and no other (no version, no ledger item)."""
    for owner, document in _policy_documents(cfn):
        for stmt in statements(document):
            if stmt.get("Effect") != "Allow":
                continue
            targets = [render(r) for r in as_list(stmt.get("Resource", []))]
            if allows(stmt, "sqs:SendMessage"):
                for queue in REPLAY_QUEUES:
                    if (queue in targets or "*" in targets) and owner not in REPLAY_SENDERS[queue]:
                        yield f"{owner}: may send to {queue}"
            if owner in LEDGER_WRITERS:
                writes = [a for a in actions(stmt) if a.lower() in ITEM_WRITES]
                if writes and stmt.get("Condition") != LEDGER_KEYS:
                    yield f"{owner}: {', '.join(writes)} beyond the replay ledger's partitions"
        yield from _ledger_denied(owner, document)
        if owner in INDEX_WRITERS:
            for stmt in statements(document):
                writes = [a for a in actions(stmt) if a.lower() in ITEM_WRITES]
                if stmt.get("Effect") == "Allow" and writes and stmt.get("Condition") != INDEX_KEYS:
                    yield f"{owner}: {', '.join(writes)} beyond the index's partitions"


def _ledger_denied(owner: str, document: Any) -> Iterator[str]:
    """A role that may write items on any key (ingest) must be denied the ledger's keys."""
    if owner in LEDGER_WRITERS:
        return
    found = statements(document)
    unbounded = any(
        stmt.get("Effect") == "Allow"
        and any(a.lower() in ITEM_WRITES for a in actions(stmt))
        and "Condition" not in stmt
        for stmt in found
    )
    denied = {
        a.lower()
        for stmt in found
        if stmt.get("Effect") == "Deny"
        and stmt.get("Condition") == {"ForAnyValue:StringLike": LEDGER_KEYS[_LIKE]}
        for a in actions(stmt)
    }
    if unbounded and not {"dynamodb:putitem", "dynamodb:updateitem"} <= denied:
        yield f"{owner}: may write the replay ledger's items (no Deny on its keys)"


# ------------------------------------------------------------------ processor


def processor_findings(cfn: Template) -> Iterator[str]:
    """The processor exists only when switched on, and writes versions and nothing else."""
    for name in PROCESSOR_RESOURCES:
        resource = cfn["Resources"].get(name)
        if resource is None:
            yield f"{name}: missing"
        elif resource.get("Condition") != "ProcessorEnabled":
            yield f"{name}: deployed without EnableProcessor"
    for owner, document in _policy_documents(cfn):
        if owner != "ProcessorRole":
            continue
        for stmt in statements(document):
            writes = [a for a in actions(stmt) if a.lower() in ITEM_WRITES]
            if stmt.get("Effect") == "Allow" and writes and stmt.get("Condition") != VERSION_KEYS:
                yield f"{owner}: {', '.join(writes)} beyond the version items"
