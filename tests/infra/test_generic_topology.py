"""The constructs are generic over the topology: a richer one (every grant kind, GSIs, TTL, every target kind,
placeholders inside strings, a queue event source, a model endpoint, a search domain, Lambda-authorized and JWT
routes with several scopes) still synthesizes cdk-nag clean, and mistakes in a topology fail the synth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from agentplatform.topology import (
    Access,
    Bucket,
    EventBus,
    EventSourceMapping,
    Function,
    Grant,
    InputTransformer,
    ModelEndpoint,
    Queue,
    Route,
    Rule,
    SearchDomain,
    StateMachine,
    Table,
    TableIndex,
    Target,
    Topology,
    env_var,
)
from infra.cdk.api import HttpApi, Throttle
from infra.cdk.nag import add_checks
from infra.cdk.network import Network
from infra.cdk.permissions import permissions_for
from infra.cdk.registry import Registry
from infra.cdk.settings import InfraSettings
from infra.cdk.stack import PlatformStack
from tests.infra.cdk_synth import Synth, cdk_context, failed_findings, statement_pairs

pytestmark = pytest.mark.infra

HANDLER = "functions.api.handler.handler"


def _topology(**overrides: Any) -> Topology:
    spec: dict[str, Any] = {
        "buckets": [Bucket(name="files", purpose="Tenant files.")],
        "queues": [Queue(name="work", purpose="Work items.", visibility_timeout_s=120, max_receive_count=3)],
        "tables": [
            Table(
                name="items",
                purpose="Items.",
                ttl_attribute="expires_at",
                indexes=[TableIndex(name="by_owner", partition_key="owner", sort_key="created")],
            )
        ],
        "buses": [EventBus(name="platform", purpose="Events.")],
        "functions": [
            Function(
                name="reader",
                service="api",
                handler=HANDLER,
                purpose="Uses everything.",
                uses=[
                    Grant(ref="bucket:files", access=Access.READ_WRITE),
                    Grant(ref="queue:work", access=Access.READ_WRITE),
                    Grant(ref="table:items", access=Access.READ_WRITE),
                    Grant(ref="bus:platform", access=Access.PUBLISH),
                    Grant(ref="statemachine:flow", access=Access.READ_WRITE),
                    Grant(ref="function:worker", access=Access.INVOKE),
                    Grant(ref="endpoint:embedding", access=Access.INVOKE),
                    Grant(ref="search:docs", access=Access.READ_WRITE),
                ],
            ),
            Function(
                name="worker",
                service="api",
                handler=HANDLER,
                purpose="Invoked by the flow, and fed by the work queue.",
                timeout_s=20,  # the work queue's visibility timeout (120 s) is six times this
                uses=[
                    Grant(ref="statemachine:flow", access=Access.DESCRIBE),
                    Grant(ref="search:docs", access=Access.DESCRIBE),
                ],
            ),
            Function(
                name="authorizer",
                service="authorizer",
                handler="functions.authorizer.handler.handler",
                purpose="Checks the credentials of the token routes.",
                uses=[Grant(ref="table:items", access=Access.READ)],
            ),
        ],
        "state_machines": [
            StateMachine(
                name="flow",
                purpose="The canary's ASL, bound to other resources.",
                definition="canary.asl.json",
                substitutions={"CanaryProbeFunctionArn": "function:worker", "PlatformEventBusName": "bus:platform"},
                uses=[
                    Grant(ref="function:worker", access=Access.INVOKE),
                    Grant(ref="bus:platform", access=Access.PUBLISH),
                ],
            )
        ],
        "rules": [
            Rule(
                name="to_function",
                purpose="Pattern rule on the platform bus to a function, placeholders inside a string.",
                bus="platform",
                event_pattern={"source": ["test"], "detail-type": ["Thing Happened"]},
                targets=[
                    Target(
                        ref="function:reader",
                        input_transformer=InputTransformer(
                            paths={"key": "$.detail.key", "id": "$.id"},
                            template='{"message": "object <key> changed", "id": <id>}',
                        ),
                    )
                ],
            ),
            Rule(
                name="to_queue",
                purpose="Default-bus rule to a queue.",
                event_pattern={"source": ["aws.s3"]},
                targets=[Target(ref="queue:work")],
            ),
        ],
        "event_sources": [EventSourceMapping(queue="work", function="worker", batch_size=20, max_batching_window_s=5)],
        "routes": [
            Route(method="GET", path="/health", function="reader", public=True),
            Route(method="POST", path="/v1/things", function="reader", scopes=["things"]),
            Route(method="GET", path="/v1/me", function="worker"),
            Route(
                method="POST", path="/v1/admin/things", function="reader", scopes=["things", "admin"], authorizer="jwt"
            ),
            Route(method="ANY", path="$default", function="reader"),
        ],
        "search_domains": [SearchDomain(name="docs", purpose="Pages.", index="pages")],
        "model_endpoints": [
            ModelEndpoint(
                name="embedding",
                purpose="Embeddings.",
                task="embedding",
                code="embedding",
                instance_type="ml.g5.xlarge",
            )
        ],
    }
    spec.update(overrides)
    return Topology(**spec)


def _synth(topology: Topology, outdir: Any) -> Synth:
    app = App(outdir=str(outdir), context=cdk_context())
    stack = PlatformStack(app, "Rich", settings=InfraSettings(stack_name="Rich"), topology=topology)
    add_checks(app)
    try:
        app.synth()
    except RuntimeError as exc:
        pytest.fail(f"{exc}\n" + "\n".join(failed_findings(outdir)), pytrace=False)
    return Synth(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(_topology(), tmp_path_factory.mktemp("cdk.out.rich"))


def test_rich_topology_is_nag_clean_with_narrowed_wildcards_explained(rich: Synth) -> None:
    assert failed_findings(rich.outdir) == []


def test_table_read_covers_its_indexes_and_nothing_wider(rich: Synth) -> None:
    role, _ = rich.target(rich.props("function:reader")["Role"])
    pairs = statement_pairs(rich.role_statements(role))
    table = rich.logical_id("table:items")
    index = {"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, "/index/by_owner"]]}
    assert ("dynamodb:Query", index) in pairs
    assert ("dynamodb:PutItem", index) not in pairs
    assert not [r for _, r in pairs if isinstance(r, str) and r != "*"]


def test_event_source_maps_the_queue_to_its_function_with_consume_on_that_queue_only(rich: Synth) -> None:
    queue_arn = {"Fn::GetAtt": [rich.logical_id("queue:work"), "Arn"]}
    (mapping,) = rich.of_type("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"] == {
        "EventSourceArn": queue_arn,
        "FunctionName": {"Ref": rich.logical_id("function:worker")},
        "BatchSize": 20,
        "MaximumBatchingWindowInSeconds": 5,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    worker, _ = rich.target(rich.props("function:worker")["Role"])
    sqs = {(a, json.dumps(r)) for a, r in statement_pairs(rich.role_statements(worker)) if a.startswith("sqs:")}
    consume = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes")
    assert sqs == {(a, json.dumps(queue_arn)) for a in consume}


def test_function_env_names_every_grant(rich: Synth) -> None:
    env = rich.props("function:reader")["Environment"]["Variables"]
    assert env[env_var("function:worker")] == {"Ref": rich.logical_id("function:worker")}
    assert env_var("statemachine:flow") in env


def test_endpoint_invoke_grant_is_that_endpoint_only(rich: Synth) -> None:
    reader = rich.props("function:reader")
    endpoint = rich.logical_id("endpoint:embedding")
    assert rich.props(endpoint)["EndpointName"] == "rich-embedding"
    assert reader["Environment"]["Variables"][env_var("endpoint:embedding")] == "rich-embedding"
    assert env_var("endpoint:embedding") == "EMBEDDING_ENDPOINT_NAME"
    role, _ = rich.target(reader["Role"])
    sagemaker = [(a, r) for a, r in statement_pairs(rich.role_statements(role)) if a.startswith("sagemaker:")]
    arn = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":sagemaker:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":endpoint/rich-embedding",
            ],
        ]
    }
    assert sagemaker == [("sagemaker:InvokeEndpoint", arn)]
    assert rich.target(arn) == (endpoint, "Ref")
    worker, _ = rich.target(rich.props("function:worker")["Role"])
    assert not [a for a, _ in statement_pairs(rich.role_statements(worker)) if a.startswith("sagemaker:")]


def test_input_template_with_a_placeholder_inside_a_string(rich: Synth) -> None:
    target = rich.props("rule:to_function")["Targets"][0]["InputTransformer"]
    names = {path: name for name, path in target["InputPathsMap"].items()}
    expected = f'{{"message":"object <{names["$.detail.key"]}> changed","id":<{names["$.id"]}>}}'
    assert re.sub(r"\s", "", target["InputTemplate"]) == re.sub(r"\s", "", expected)


def test_state_machine_binds_to_the_other_resources(rich: Synth) -> None:
    props = rich.props("statemachine:flow")
    assert props["DefinitionSubstitutions"] == {
        "CanaryProbeFunctionArn": {"Fn::GetAtt": [rich.logical_id("function:worker"), "Arn"]},
        "PlatformEventBusName": {"Ref": rich.logical_id("bus:platform")},
    }
    assert props["StateMachineName"] == "Rich-flow"


def test_an_access_that_does_not_fit_the_kind_fails() -> None:
    with pytest.raises(ValueError, match="does not apply to bucket:files"):
        permissions_for(None, Grant(ref="bucket:files", access=Access.PUBLISH))  # type: ignore[arg-type]


def _es_pairs(synth: Synth, function: str) -> set[tuple[str, tuple[str, str]]]:
    role, _ = synth.target(synth.props(f"function:{function}")["Role"])
    return {(a, synth.target(r)) for a, r in statement_pairs(synth.role_statements(role)) if a.startswith("es:")}


def test_search_access_levels_map_to_their_paths(rich: Synth) -> None:
    domain = rich.logical_id("search:docs")
    assert rich.props(domain)["DomainName"] == "rich-docs"
    assert _es_pairs(rich, "reader") == {
        *((a, (domain, "Arn/pages*")) for a in ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost")),
        *((a, (domain, "Arn/*")) for a in ("es:ESHttpPut", "es:ESHttpPost", "es:ESHttpDelete")),
    }
    assert _es_pairs(rich, "worker") == {("es:DescribeDomain", (domain, "Arn"))}


def test_describe_only_functions_run_in_the_vpc_but_get_no_data_access(rich: Synth) -> None:
    """DESCRIBE is control plane: the worker joins the VPC (it may check the domain) but is not in its policy."""
    assert "VpcConfig" in rich.props("function:worker")
    statements = rich.props("search:docs")["AccessPolicies"]["Statement"]
    principals = {rich.target(s["Principal"]["AWS"])[0] for s in statements}
    worker, _ = rich.target(rich.props("function:worker")["Role"])
    reader, _ = rich.target(rich.props("function:reader")["Role"])
    assert reader in principals and worker not in principals


def _endpoint_services(template: Mapping[str, Any]) -> list[str]:
    return sorted(
        r["Properties"]["ServiceName"]["Fn::Join"][1][-1]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    )


def test_sagemaker_runtime_endpoint_only_when_a_function_in_the_vpc_invokes_a_model(rich: Synth) -> None:
    assert _endpoint_services(rich.json) == [".dynamodb", ".s3", ".sagemaker.runtime"]  # reader embeds
    topology = _topology()
    reader = topology.function("reader")
    reader.uses = [g for g in reader.uses if not g.ref.startswith("endpoint:")]
    stack = Stack(App(), "NetworkOnly")
    Network(stack, "Network", topology=topology, log_retention=logs.RetentionDays.ONE_DAY)
    assert _endpoint_services(Template.from_stack(stack).to_json()) == [".dynamodb", ".s3"]


def test_each_protected_route_gets_the_authorizer_its_topology_names(rich: Synth) -> None:
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in rich.of_type("AWS::ApiGatewayV2::Route").values()}
    # "jwt": API Gateway checks the pool's token and (any one of) the route's scopes.
    assert routes["POST /v1/admin/things"]["AuthorizationType"] == "JWT"
    assert routes["POST /v1/admin/things"]["AuthorizationScopes"] == ["agentplatform/things", "agentplatform/admin"]
    # "token" (the default): one Lambda authorizer for all of them, `$default` included; no scopes on the route.
    token = ("POST /v1/things", "GET /v1/me", "$default")
    assert {routes[key]["AuthorizationType"] for key in token} == {"CUSTOM"}
    assert len({json.dumps(routes[key]["AuthorizerId"]) for key in token}) == 1
    assert not [key for key in token if "AuthorizationScopes" in routes[key]]
    authorizer = rich.props(rich.target(routes["$default"]["AuthorizerId"])[0])
    assert authorizer["AuthorizerUri"]["Fn::Join"][1][-2] == {
        "Fn::GetAtt": [rich.logical_id("function:authorizer"), "Arn"]
    }
    assert routes["GET /health"]["AuthorizationType"] == "NONE"
    (server,) = rich.of_type("AWS::Cognito::UserPoolResourceServer").values()
    assert {s["ScopeName"] for s in server["Properties"]["Scopes"]} == {"things", "admin"}
    (group,) = rich.of_type("AWS::Cognito::UserPoolGroup").values()  # a route needs the admin scope
    assert group["Properties"]["GroupName"] == "admin"
    assert set(rich.props("function:authorizer")["Environment"]["Variables"]) >= {
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWKS_URL",
    }


def test_no_user_pool_without_protected_routes(tmp_path: Any) -> None:
    """Public routes only: no Cognito, no authorizer (checked on the construct, no synth)."""
    topology = _topology(routes=[Route(method="GET", path="/health", function="reader", public=True)])
    app = App(outdir=str(tmp_path), context=cdk_context())
    stack = PlatformStack(app, "Rich", settings=InfraSettings(stack_name="Rich"), topology=topology)
    assert stack.auth is None and stack.api.jwt_authorizer is None and stack.user_pool_firewall is None


@pytest.mark.parametrize("authorizer", ["token", "jwt"])
def test_a_protected_route_without_its_authorizer_fails_the_synth(authorizer: str) -> None:
    """No user pool (jwt) or no `authorizer` function (token): fail closed rather than deploy an open route."""
    route = Route(method="POST", path="/v1/things", function="reader", authorizer=authorizer)  # type: ignore[arg-type]
    topology = _topology(routes=[route])
    stack = Stack(App(), "Api")
    with pytest.raises(
        ValueError, match=f"POST /v1/things needs an authorizer.*{'user pool' if authorizer == 'jwt' else 'authorizer'}"
    ):
        HttpApi(
            stack,
            "HttpApi",
            topology=topology,
            registry=Registry(stack),
            throttle=Throttle(burst_limit=1, rate_limit=1),
            log_retention=logs.RetentionDays.ONE_DAY,
        )
