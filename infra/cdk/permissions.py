"""Least privilege from `topology.Grant`: each (kind, access) pair maps to precise actions on one resource.

Nothing here uses a wildcard action, and the resource is always the one the grant names (its ARN, or for
object- and execution-level actions the narrowest pattern under it). A pair the table does not list is a
mistake in the topology and fails the synth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from constructs import Construct

from agentplatform.topology import Access, Grant, split_ref
from infra.cdk.nag import acknowledge
from infra.cdk.registry import Registry

S3_DESCRIBE = ("s3:ListBucket",)  # what HeadBucket needs
S3_READ_OBJECTS = ("s3:GetObject", "s3:GetObjectVersion")
S3_WRITE_OBJECTS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")

SQS_DESCRIBE = ("sqs:GetQueueAttributes",)
SQS_SEND = ("sqs:SendMessage", "sqs:GetQueueAttributes")
SQS_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes")

DDB_DESCRIBE = ("dynamodb:DescribeTable",)
DDB_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
DDB_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")

EVENTS_DESCRIBE = ("events:DescribeEventBus",)
EVENTS_PUBLISH = ("events:PutEvents",)

SFN_DESCRIBE = ("states:DescribeStateMachine",)
SFN_START = ("states:StartExecution",)
SFN_READ_EXECUTIONS = ("states:DescribeExecution", "states:GetExecutionHistory")
SFN_RESUME = ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat")

LAMBDA_DESCRIBE = ("lambda:GetFunctionConfiguration",)
LAMBDA_INVOKE = ("lambda:InvokeFunction",)

SAGEMAKER_DESCRIBE = ("sagemaker:DescribeEndpoint",)
SAGEMAKER_INVOKE = ("sagemaker:InvokeEndpoint",)

# OpenSearch Service: the data plane is authorized per HTTP method on `<domain ARN>/<path>`. Searching is a POST
# (`_search` with a body), so reading needs POST too; creating a search pipeline is a PUT, which is writing.
ES_DESCRIBE = ("es:DescribeDomain",)
ES_READ = ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost")
ES_WRITE = ("es:ESHttpPut", "es:ESHttpPost", "es:ESHttpDelete")


@dataclass(frozen=True)
class Permission:
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    # Why a resource pattern ends in `/*` or `:*` (becomes the cdk-nag IAM5 acknowledgment's reason).
    wildcard_reason: str | None = None


Rule = Callable[[Registry, str], list[Permission]]


def _bucket_read(r: Registry, ref: str) -> list[Permission]:
    bucket = r.buckets[split_ref(ref)[1]]
    return [
        Permission(S3_DESCRIBE, (bucket.bucket_arn,)),
        Permission(S3_READ_OBJECTS, (bucket.arn_for_objects("*"),), _OBJECTS_REASON),
    ]


def _bucket_write(r: Registry, ref: str) -> list[Permission]:
    bucket = r.buckets[split_ref(ref)[1]]
    return [Permission(S3_WRITE_OBJECTS, (bucket.arn_for_objects("*"),), _OBJECTS_REASON)]


def _table_arns(r: Registry, ref: str) -> tuple[str, ...]:
    table = r.tables[split_ref(ref)[1]]
    indexes = r.table_indexes.get(split_ref(ref)[1], [])
    return (table.table_arn, *(f"{table.table_arn}/index/{index}" for index in indexes))


def _executions(r: Registry, ref: str) -> list[Permission]:
    return [Permission(SFN_READ_EXECUTIONS, (r.state_machine_executions_arn(split_ref(ref)[1]),), _EXECUTIONS_REASON)]


def _resume(r: Registry, ref: str) -> list[Permission]:
    # IAM scopes task-token actions to activities only: a callback task's token names no resource, so "*" is the
    # only resource these actions take. The token itself is the capability (only the escalation row holds it).
    return [Permission(SFN_RESUME, ("*",), _RESUME_REASON)]


def _search_read(r: Registry, ref: str) -> list[Permission]:
    index = r.search_indexes[split_ref(ref)[1]]
    return [Permission(ES_READ, (f"{r.arn(ref)}/{index}*",), _INDEX_REASON)]


def _search_write(r: Registry, ref: str) -> list[Permission]:
    return [Permission(ES_WRITE, (f"{r.arn(ref)}/*",), _DOMAIN_PATHS_REASON)]


def _on_arn(*actions: str) -> Rule:
    return lambda r, ref: [Permission(actions, (r.arn(ref),))]


_OBJECTS_REASON = (
    "Object-level S3 actions need the object ARN pattern: scoped to this one bucket's objects (<bucket ARN>/*)."
)
_RESUME_REASON = (
    "SendTaskSuccess/Failure/Heartbeat for callback tasks take no resource-level scope (IAM: resource '*'); the "
    "task token, held only on the tenant's escalation row, is what names the paused execution."
)
_EXECUTIONS_REASON = (
    "Execution ARNs carry a runtime-generated execution name: scoped to this one state machine's executions "
    "(arn:...:execution:<machine>:*)."
)
_INDEX_REASON = (
    "OpenSearch HTTP actions are authorized on the request path under the domain ARN: <domain ARN>/<index>* is "
    "this one index's APIs (_search, _count, _doc/<id>), and indexes sharing its name as a prefix (a rollover or "
    "reindex target), on one domain."
)
_DOMAIN_PATHS_REASON = (
    "Writing a search index also uses domain-level paths: creating the index and _bulk (a POST to "
    "<domain>/_bulk). Scoped to this one domain's HTTP paths (<domain ARN>/*), with no control-plane action."
)

RULES: dict[tuple[str, Access], Rule] = {
    ("bucket", Access.DESCRIBE): _on_arn(*S3_DESCRIBE),
    ("bucket", Access.READ): _bucket_read,
    ("bucket", Access.WRITE): _bucket_write,
    ("bucket", Access.READ_WRITE): lambda r, ref: _bucket_read(r, ref) + _bucket_write(r, ref),
    ("queue", Access.DESCRIBE): _on_arn(*SQS_DESCRIBE),
    ("queue", Access.SEND): _on_arn(*SQS_SEND),
    ("queue", Access.WRITE): _on_arn(*SQS_SEND),
    ("queue", Access.CONSUME): _on_arn(*SQS_CONSUME),
    ("queue", Access.READ): _on_arn(*SQS_CONSUME),
    ("queue", Access.READ_WRITE): _on_arn(*SQS_SEND, *SQS_CONSUME),
    ("table", Access.DESCRIBE): _on_arn(*DDB_DESCRIBE),
    ("table", Access.READ): lambda r, ref: [Permission(DDB_READ + DDB_DESCRIBE, _table_arns(r, ref))],
    ("table", Access.WRITE): _on_arn(*DDB_WRITE),
    ("table", Access.READ_WRITE): lambda r, ref: [
        Permission(DDB_READ + DDB_DESCRIBE, _table_arns(r, ref)),
        Permission(DDB_WRITE, (r.arn(ref),)),
    ],
    ("bus", Access.DESCRIBE): _on_arn(*EVENTS_DESCRIBE),
    ("bus", Access.PUBLISH): _on_arn(*EVENTS_PUBLISH),
    ("bus", Access.WRITE): _on_arn(*EVENTS_PUBLISH),
    ("statemachine", Access.DESCRIBE): _on_arn(*SFN_DESCRIBE),
    ("statemachine", Access.START): _on_arn(*SFN_START),
    ("statemachine", Access.WRITE): _on_arn(*SFN_START),
    ("statemachine", Access.READ): _executions,
    ("statemachine", Access.RESUME): _resume,
    ("statemachine", Access.READ_WRITE): lambda r, ref: _on_arn(*SFN_START)(r, ref) + _executions(r, ref),
    ("function", Access.DESCRIBE): _on_arn(*LAMBDA_DESCRIBE),
    ("function", Access.INVOKE): _on_arn(*LAMBDA_INVOKE),
    ("endpoint", Access.DESCRIBE): _on_arn(*SAGEMAKER_DESCRIBE),
    ("endpoint", Access.INVOKE): _on_arn(*SAGEMAKER_INVOKE),
    ("search", Access.DESCRIBE): _on_arn(*ES_DESCRIBE),
    ("search", Access.READ): _search_read,
    ("search", Access.WRITE): _search_write,
    ("search", Access.READ_WRITE): lambda r, ref: _search_read(r, ref) + _search_write(r, ref),
}


def permissions_for(registry: Registry, grant: Grant) -> list[Permission]:
    kind, _ = split_ref(grant.ref)
    rule = RULES.get((kind, grant.access))
    if rule is None:
        allowed = sorted(access.value for (k, access) in RULES if k == kind)
        raise ValueError(f"access {grant.access.value!r} does not apply to {grant.ref} (a {kind} allows {allowed})")
    return rule(registry, grant.ref)


def apply_grants(registry: Registry, principal: iam.IRole, grants: list[Grant], nag_scope: Construct) -> None:
    """Add one statement per permission to `principal`'s policy; explain any narrowed wildcard to cdk-nag."""
    explained: set[str] = set()
    for grant in grants:
        for permission in permissions_for(registry, grant):
            principal.add_to_principal_policy(
                iam.PolicyStatement(actions=list(permission.actions), resources=list(permission.resources))
            )
            if not permission.wildcard_reason:
                continue
            for resource in permission.resources:
                finding = f"AwsSolutions-IAM5[Resource::{_nag_form(registry, resource)}]"
                if finding not in explained:
                    explained.add(finding)
                    acknowledge(nag_scope, finding, permission.wildcard_reason)


def _nag_form(registry: Registry, resource: str) -> str:
    """How cdk-nag prints a resource in a finding id: intrinsics as `<LogicalId.Attr>`, pseudo params as `<AWS::X>`."""
    resolved = registry.stack.resolve(resource)
    return _render(resolved)


def _render(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if fn == "Fn::Join":
            separator, parts = arg
            return separator.join(_render(p) for p in parts)
    raise ValueError(f"cannot render {value!r} as a cdk-nag resource")
