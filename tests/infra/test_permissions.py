"""Each role's policy covers exactly its topology grants (plus its own logs and X-Ray, and for a function fed by a
queue, consuming that queue), and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from agentplatform.topology import PLATFORM, Access, Grant, split_ref
from infra.cdk.llm_gateway import GATEWAY_FUNCTION, POLICY_ENV
from infra.cdk.sql import DATA_API_ACTIONS
from infra.cdk.tool_policy import POLICY_ENV as TOOL_POLICY_ENV
from tests.infra.cdk_synth import Synth, statement_pairs, text

pytestmark = pytest.mark.infra

# The spec, written independently of infra/cdk/permissions.py: (kind, access) -> (actions that must be there,
# actions that may be there). Every action is on the granted resource (or the pattern under it noted below).
EXPECTED: dict[tuple[str, Access], tuple[set[str], set[str]]] = {
    ("bucket", Access.DESCRIBE): ({"s3:ListBucket"}, set()),
    ("bucket", Access.READ): ({"s3:GetObject"}, {"s3:ListBucket", "s3:GetObjectVersion"}),
    ("bucket", Access.WRITE): ({"s3:PutObject"}, {"s3:DeleteObject", "s3:AbortMultipartUpload"}),
    ("bucket", Access.READ_WRITE): (
        {"s3:GetObject", "s3:PutObject"},
        {"s3:ListBucket", "s3:GetObjectVersion", "s3:DeleteObject", "s3:AbortMultipartUpload"},
    ),
    ("queue", Access.DESCRIBE): ({"sqs:GetQueueAttributes"}, set()),
    ("queue", Access.SEND): ({"sqs:SendMessage"}, {"sqs:GetQueueAttributes"}),
    ("queue", Access.CONSUME): (
        {"sqs:ReceiveMessage", "sqs:DeleteMessage"},
        {"sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
    ),
    ("table", Access.DESCRIBE): ({"dynamodb:DescribeTable"}, set()),
    ("table", Access.READ): (
        {"dynamodb:GetItem", "dynamodb:Query"},
        {"dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable"},
    ),
    ("table", Access.WRITE): (
        {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
        {"dynamodb:BatchWriteItem"},
    ),
    ("table", Access.READ_WRITE): (
        {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        {
            "dynamodb:BatchGetItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DescribeTable",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        },
    ),
    ("bus", Access.DESCRIBE): ({"events:DescribeEventBus"}, set()),
    ("bus", Access.PUBLISH): ({"events:PutEvents"}, set()),
    ("statemachine", Access.DESCRIBE): ({"states:DescribeStateMachine"}, set()),
    ("statemachine", Access.START): ({"states:StartExecution"}, set()),
    # Task-token actions take no resource scope in IAM: "*" (checked in _check_exact).
    ("statemachine", Access.RESUME): (
        {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"},
        set(),
    ),
    ("function", Access.DESCRIBE): ({"lambda:GetFunctionConfiguration"}, set()),
    ("function", Access.INVOKE): ({"lambda:InvokeFunction"}, set()),
    ("endpoint", Access.DESCRIBE): ({"sagemaker:DescribeEndpoint"}, set()),
    ("endpoint", Access.INVOKE): ({"sagemaker:InvokeEndpoint"}, set()),
    # Searching is a POST with a body; HEAD and GET read documents and the index.
    ("search", Access.DESCRIBE): ({"es:DescribeDomain"}, set()),
    ("search", Access.READ): ({"es:ESHttpPost", "es:ESHttpGet"}, {"es:ESHttpHead"}),
    ("search", Access.WRITE): ({"es:ESHttpPut", "es:ESHttpPost", "es:ESHttpDelete"}, set()),
    ("search", Access.READ_WRITE): (
        {"es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"},
        {"es:ESHttpHead"},
    ),
}
# Where on the search domain each access applies: "" is the domain ARN itself, else the path under it.
SEARCH_PATHS: dict[Access, set[str]] = {
    Access.DESCRIBE: {""},
    Access.READ: {"/{index}*"},
    Access.WRITE: {"/*"},
    Access.READ_WRITE: {"/{index}*", "/*"},
}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}
FUNCTION_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# A function in the VPC: Lambda manages its network interfaces with the execution role (no resource-level ARNs).
VPC_ENI = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
SFN_LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def _ref_of(synth: Synth, resource: Any) -> str | None:
    """The topology reference a policy resource points at (None for anything else); `<bucket ARN>/*` (objects)
    points at its bucket, `<table ARN>/index/<name>` (a GSI) at its table."""
    join = resource.get("Fn::Join") if isinstance(resource, dict) else None
    suffix = join[1][1] if join and join[0] == "" and len(join[1]) == 2 else None
    if isinstance(suffix, str) and (suffix == "/*" or suffix.startswith("/index/")):
        resource = join[1][0]
    try:
        lid, _ = synth.target(resource)
    except AssertionError:
        return None
    for tag in synth.resources[lid].get("Properties", {}).get("Tags", []):
        if tag["Key"] == "agentplatform:ref":
            return tag["Value"]
    return None


def _check_exact(synth: Synth, pairs: list[tuple[str, Any]], grants: list[Grant], baseline: Any) -> None:
    """Every (action, resource) is either baseline or explained by a grant; every grant's actions are present."""
    granted: dict[str, set[str]] = {}
    for grant in grants:
        kind, _ = split_ref(grant.ref)
        assert (kind, grant.access) in EXPECTED, f"test table lacks {kind}/{grant.access}"
        granted.setdefault(grant.ref, set())
    present: dict[str, set[str]] = {ref: set() for ref in granted}
    for action, resource in pairs:
        assert "*" not in action, f"wildcard action {action}"
        if baseline(action, resource):
            continue
        resumes = [g.ref for g in grants if g.access == Access.RESUME]
        if resource == "*" and resumes and action in EXPECTED[("statemachine", Access.RESUME)][0]:
            present[resumes[0]].add(action)
            continue
        ref = _ref_of(synth, resource)
        assert ref in granted, f"{action} on {resource} is not explained by any grant"
        allowed = set().union(
            *(set().union(*EXPECTED[(split_ref(g.ref)[0], g.access)]) for g in grants if g.ref == ref)
        )
        assert action in allowed, f"{action} on {ref} exceeds the grants {[g for g in grants if g.ref == ref]}"
        present[ref].add(action)
    for grant in grants:
        required, _ = EXPECTED[(split_ref(grant.ref)[0], grant.access)]
        assert required <= present[grant.ref], f"{grant.ref}: missing {required - present[grant.ref]}"


@pytest.mark.parametrize("function", [pytest.param(f, id=f.name) for f in PLATFORM.functions])
def test_function_role_is_exactly_its_grants(synth: Synth, function: Any) -> None:
    props = synth.props(f"function:{function.name}")
    role_lid, _ = synth.target(props["Role"])
    log_group_lid, _ = synth.target(props["LoggingConfig"]["LogGroup"])
    assert "ManagedPolicyArns" not in synth.resources[role_lid]["Properties"]

    in_vpc = "VpcConfig" in props

    def baseline(action: str, resource: Any) -> bool:
        if action in XRAY or (in_vpc and action in VPC_ENI):
            return resource == "*"
        if action in FUNCTION_LOGS:
            assert resource == {"Fn::GetAtt": [log_group_lid, "Arn"]}, f"{action} on {resource}"
            return True
        return False

    # A function fed by a queue (topology event source) polls it with its own role: consume on that queue.
    polled = [
        Grant(ref=f"queue:{s.queue}", access=Access.CONSUME)
        for s in PLATFORM.event_sources
        if s.function == function.name
    ]
    pairs = statement_pairs(synth.role_statements(role_lid))
    if function.name == GATEWAY_FUNCTION:
        pairs = _without_gateway_extras(synth, pairs)
    if function.name == "tools":
        pairs = _without_sql_access(synth, _without_tool_policy_read(synth, pairs))
    _check_exact(synth, pairs, function.uses + polled, baseline)


def _without_gateway_extras(synth: Synth, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The gateway's grants beyond the topology, each on exactly its resource: GetParameter on its policy
    parameter, InvokeModel on the policy's Bedrock foundation models, GetSecretValue on the OpenAI key."""
    from functions.llm_gateway.policy import parse_policy
    from infra.cdk.llm_gateway import AWS_POLICY, foundation_models

    parameter, _ = synth.target(synth.props(f"function:{GATEWAY_FUNCTION}")["Environment"]["Variables"][POLICY_ENV])
    (secret,) = [lid for lid in synth.of_type("AWS::SecretsManager::Secret") if lid.startswith("LlmGateway")]
    models = {m for m, _ in foundation_models(parse_policy(AWS_POLICY.read_text(), "aws"))}
    rest, seen = [], {"ssm": False, "secret": False, "models": set()}
    for action, resource in pairs:
        if action == "ssm:GetParameter":
            assert parameter in text(resource), resource
            seen["ssm"] = True
        elif action == "secretsmanager:GetSecretValue":
            assert resource == {"Ref": secret}, resource
            seen["secret"] = True
        elif action.startswith("bedrock:"):
            assert action == "bedrock:InvokeModel"
            model = text(resource).rsplit("foundation-model/", 1)[1]
            assert model in models, resource
            seen["models"].add(model)
        else:
            rest.append((action, resource))
    assert seen == {"ssm": True, "secret": True, "models": models}
    return rest


def _without_tool_policy_read(synth: Synth, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The tools function's GetParameter, on its own policy parameter only (test_tools_infra checks SES)."""
    parameter, _ = synth.target(synth.props("function:tools")["Environment"]["Variables"][TOOL_POLICY_ENV])
    reads = [(a, r) for a, r in pairs if a == "ssm:GetParameter"]
    assert len(reads) == 1 and parameter in text(reads[0][1]), reads
    return [(a, r) for a, r in pairs if a != "ssm:GetParameter"]


def _without_sql_access(synth: Synth, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The tools function's Data API actions, on the cluster only, and its reads of the reader secret only
    (infra/cdk/sql.py; tests/infra/test_sql.py checks the cluster itself)."""
    env = synth.props("function:tools")["Environment"]["Variables"]
    cluster, secret = text(env["SQL_CLUSTER_ARN"]), text(env["SQL_SECRET_ARN"])
    rest = []
    for action, resource in pairs:
        if action in DATA_API_ACTIONS:
            assert text(resource) == cluster, (action, resource)
        elif action in ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"):
            assert text(resource) == secret, (action, resource)
        else:
            rest.append((action, resource))
    return rest


@pytest.mark.parametrize("machine", [pytest.param(m, id=m.name) for m in PLATFORM.state_machines])
def test_state_machine_role_is_exactly_its_grants(synth: Synth, machine: Any) -> None:
    role_lid, _ = synth.target(synth.props(f"statemachine:{machine.name}")["RoleArn"])
    assert "ManagedPolicyArns" not in synth.resources[role_lid]["Properties"]

    def baseline(action: str, resource: Any) -> bool:
        return action in XRAY | SFN_LOG_DELIVERY and resource == "*"

    _check_exact(synth, statement_pairs(synth.role_statements(role_lid)), machine.uses, baseline)


def test_the_canary_probe_can_describe_the_documents_table_but_not_read_or_write_it(synth: Synth) -> None:
    role_lid, _ = synth.target(synth.props("function:canary_probe")["Role"])
    pairs = statement_pairs(synth.role_statements(role_lid))
    table = {"Fn::GetAtt": [synth.logical_id("table:documents"), "Arn"]}
    assert ("dynamodb:DescribeTable", table) in pairs
    assert not [a for a, _ in pairs if a in {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan"}]
    assert not [a for a, _ in pairs if a.startswith(("s3:Get", "s3:Put", "sqs:Send", "events:Put"))]


def test_rule_roles_only_start_their_target(synth: Synth) -> None:
    """The role EventBridge assumes to start a state machine can start that machine and nothing else."""
    for rule in synth.of_type("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            if "RoleArn" not in target:
                continue
            role_lid, _ = synth.target(target["RoleArn"])
            pairs = statement_pairs(synth.role_statements(role_lid))
            assert pairs == [("states:StartExecution", target["Arn"])]


SEARCH_GRANTS = [
    pytest.param(f, g, id=f"{f.name}-{g.ref}-{g.access.value}")
    for f in PLATFORM.functions
    for g in f.uses
    if split_ref(g.ref)[0] == "search"
]


@pytest.mark.parametrize(("function", "grant"), SEARCH_GRANTS)
def test_search_grants_are_on_the_paths_of_their_access(synth: Synth, function: Any, grant: Grant) -> None:
    """READ is the index's paths only (`<domain>/<index>*`); WRITE is the domain's paths; DESCRIBE the domain."""
    props = synth.props(f"function:{function.name}")
    role_lid, _ = synth.target(props["Role"])
    domain = synth.logical_id(grant.ref)
    (spec,) = [d for d in PLATFORM.search_domains if f"search:{d.name}" == grant.ref]
    found = set()
    for action, resource in statement_pairs(synth.role_statements(role_lid)):
        if action.startswith("es:"):
            lid, attribute = synth.target(resource)
            assert lid == domain, f"{action} on another domain: {resource}"
            found.add(attribute.removeprefix("Arn"))
    assert found == {path.format(index=spec.index) for path in SEARCH_PATHS[grant.access]}
