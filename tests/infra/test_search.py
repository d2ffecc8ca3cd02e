"""The search domains and their network: one OpenSearch Service domain per topology SearchDomain, in isolated
subnets, encrypted, HTTPS only, logging to CloudWatch, reachable only from the functions granted it (network,
access policy) and behind fine-grained access control; those functions run in the VPC with the domain's URL."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Stack

from agentplatform.topology import PLATFORM, Function, SearchDomain, env_var, split_ref
from infra.cdk.registry import Registry
from infra.cdk.search import ENGINE_VERSION, Search
from infra.cdk.settings import InfraSettings
from tests.infra.cdk_synth import Synth, statement_pairs, text

pytestmark = pytest.mark.infra

DOMAINS = [pytest.param(d, id=d.name) for d in PLATFORM.search_domains]


def _users(spec: SearchDomain) -> list[Function]:
    return [f for f in PLATFORM.functions if any(g.ref == f"search:{spec.name}" for g in f.uses)]


def _role(synth: Synth, function: Function) -> str:
    lid, _ = synth.target(synth.props(f"function:{function.name}")["Role"])
    return lid


def _ingress(synth: Synth, group: str) -> list[dict[str, Any]]:
    """Every ingress rule of a security group: inline and as AWS::EC2::SecurityGroupIngress."""
    rules = list(synth.props(group).get("SecurityGroupIngress", []))
    for rule in synth.of_type("AWS::EC2::SecurityGroupIngress").values():
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}:
            rules.append(rule["Properties"])
    return rules


def _clients_group(synth: Synth, spec: SearchDomain) -> str:
    """The one security group every function granted the domain runs in."""
    groups = set()
    for function in _users(spec):
        (group,) = synth.props(f"function:{function.name}")["VpcConfig"]["SecurityGroupIds"]
        groups.add(synth.target(group)[0])
    (group,) = groups
    return group


def test_engine_is_opensearch_2_19_or_later() -> None:
    """Hybrid search fuses with the normalization processor (2.10+) and the score-ranker processor (RRF, 2.19+)."""
    match = re.fullmatch(r"OpenSearch_(\d+)\.(\d+)", ENGINE_VERSION.version)
    assert match, ENGINE_VERSION.version
    assert (int(match[1]), int(match[2])) >= (2, 19)


@pytest.mark.parametrize("spec", DOMAINS)
def test_domain_is_encrypted_https_only_with_fine_grained_access_control(synth: Synth, spec: SearchDomain) -> None:
    props = synth.props(f"search:{spec.name}")
    assert props["DomainName"] == f"agentplatform-{spec.name}"
    assert props["EngineVersion"] == ENGINE_VERSION.version
    assert props["EncryptionAtRestOptions"] == {"Enabled": True}
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert props["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert props["DomainEndpointOptions"]["TLSSecurityPolicy"].startswith("Policy-Min-TLS-1-2")
    security = props["AdvancedSecurityOptions"]
    assert security["Enabled"] is True
    assert security["InternalUserDatabaseEnabled"] is False  # IAM only: no passwords
    admin, attribute = synth.target(security["MasterUserOptions"]["MasterUserARN"])
    assert (synth.resources[admin]["Type"], attribute) == ("AWS::IAM::Role", "Arn")
    # The master role is assumed by this account's principals and has no permissions of its own: the domain's
    # access policy is what lets it in.
    (trust,) = synth.props(admin)["AssumeRolePolicyDocument"]["Statement"]
    assert text(trust["Principal"]["AWS"]) == "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    assert synth.role_statements(admin) == []


@pytest.mark.parametrize("spec", DOMAINS)
def test_domain_default_sizing_is_small_and_spans_two_azs(synth: Synth, spec: SearchDomain) -> None:
    props = synth.props(f"search:{spec.name}")
    cluster = props["ClusterConfig"]
    assert cluster["InstanceType"] == "t3.small.search"
    assert cluster["InstanceCount"] == 2
    assert cluster["ZoneAwarenessEnabled"] is True
    assert cluster["ZoneAwarenessConfig"] == {"AvailabilityZoneCount": 2}
    assert cluster["DedicatedMasterEnabled"] is False
    assert cluster["MultiAZWithStandbyEnabled"] is False
    assert props["EBSOptions"] == {"EBSEnabled": True, "VolumeSize": 10, "VolumeType": "gp3"}
    assert synth.resources[synth.logical_id(f"search:{spec.name}")]["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("spec", DOMAINS)
def test_domain_is_in_isolated_subnets_and_admits_only_its_clients(synth: Synth, spec: SearchDomain) -> None:
    vpc_options = synth.props(f"search:{spec.name}")["VPCOptions"]
    subnets = [synth.target(s)[0] for s in vpc_options["SubnetIds"]]
    assert len(subnets) == 2
    for subnet in subnets:
        assert synth.props(subnet)["MapPublicIpOnLaunch"] is False
    azs = {json.dumps(synth.props(s)["AvailabilityZone"]) for s in subnets}
    assert len(azs) == 2
    # No route anywhere but the VPC itself and the gateway endpoints: no internet or NAT gateway exists.
    for kind in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP", "AWS::EC2::Route"):
        assert synth.of_type(kind) == {}, kind
    (group,) = [synth.target(g)[0] for g in vpc_options["SecurityGroupIds"]]
    (rule,) = _ingress(synth, group)
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    assert synth.target(rule["SourceSecurityGroupId"]) == (_clients_group(synth, spec), "GroupId")


@pytest.mark.parametrize("spec", DOMAINS)
def test_domain_publishes_slow_and_error_logs_to_cloudwatch(synth: Synth, spec: SearchDomain) -> None:
    lid = synth.logical_id(f"search:{spec.name}")
    published = synth.props(lid)["LogPublishingOptions"]
    assert set(published) == {"SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS"}
    groups = set()
    for option in published.values():
        assert option["Enabled"] is True
        group, attribute = synth.target(option["CloudWatchLogsLogGroupArn"])
        assert (synth.resources[group]["Type"], attribute) == ("AWS::Logs::LogGroup", "Arn")
        assert synth.props(group)["RetentionInDays"] > 0
        groups.add(group)
    # The service writes them under a logs resource policy the domain waits for, limited to this domain.
    depends = synth.resources[lid]["DependsOn"]
    (policy,) = [p for p in depends if synth.resources[p]["Type"] == "AWS::Logs::ResourcePolicy"]
    (statement,) = json.loads(text(synth.props(policy)["PolicyDocument"]))["Statement"]
    assert statement["Principal"] == {"Service": "es.amazonaws.com"}
    assert set(statement["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert set(statement["Resource"]) == {f"${{{g}.Arn}}" for g in groups}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"].endswith(f":domain/agentplatform-{spec.name}")


@pytest.mark.parametrize("spec", DOMAINS)
def test_access_policy_names_only_the_functions_granted_the_domain_and_its_admin(
    synth: Synth, spec: SearchDomain
) -> None:
    props = synth.props(f"search:{spec.name}")
    statements = props["AccessPolicies"]["Statement"]
    admin, _ = synth.target(props["AdvancedSecurityOptions"]["MasterUserOptions"]["MasterUserARN"])
    by_principal: dict[str, list[tuple[str, Any]]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        principals = statement["Principal"]["AWS"]  # one role, or several sharing the same statement
        for value in principals if isinstance(principals, list) else [principals]:
            principal, attribute = synth.target(value)
            assert attribute == "Arn"
            by_principal.setdefault(principal, []).extend(statement_pairs([{**statement, "Principal": None}]))
    users = {_role(synth, f): f for f in _users(spec)}
    assert set(by_principal) == set(users) | {admin}
    domain = synth.logical_id(f"search:{spec.name}")
    assert {(a, synth.target(r)) for a, r in by_principal[admin]} == {("es:ESHttp*", (domain, "Arn/*"))}
    for role, function in users.items():
        # Exactly the HTTP actions and paths of the function's own IAM policy on this domain.
        own = {
            (action, json.dumps(resource, sort_keys=True))
            for action, resource in statement_pairs(synth.role_statements(role))
            if action.startswith("es:ESHttp")
        }
        assert {(a, json.dumps(r, sort_keys=True)) for a, r in by_principal[role]} == own, function.name


@pytest.mark.parametrize("function", [pytest.param(f, id=f.name) for f in PLATFORM.functions])
def test_functions_granted_a_search_domain_run_in_its_client_group_in_the_vpc(synth: Synth, function: Function) -> None:
    props = synth.props(f"function:{function.name}")
    domains = [split_ref(g.ref)[1] for g in function.uses if split_ref(g.ref)[0] == "search"]
    if not domains:
        assert "VpcConfig" not in props
        return
    (spec,) = [d for d in PLATFORM.search_domains if d.name in domains]
    domain = synth.props(f"search:{spec.name}")
    assert props["VpcConfig"]["SubnetIds"] == domain["VPCOptions"]["SubnetIds"]
    assert [synth.target(g) for g in props["VpcConfig"]["SecurityGroupIds"]] == [
        (_clients_group(synth, spec), "GroupId")
    ]
    url = props["Environment"]["Variables"][env_var(f"search:{spec.name}")]
    assert synth.target(url) == (synth.logical_id(f"search:{spec.name}"), "https://DomainEndpoint")


def test_retrieval_searches_the_knowledge_domain_from_the_vpc(synth: Synth) -> None:
    env = synth.props("function:retrieval")["Environment"]["Variables"]
    assert synth.target(env["KNOWLEDGE_SEARCH_URL"]) == (synth.logical_id("search:knowledge"), "https://DomainEndpoint")
    assert "VpcConfig" in synth.props("function:retrieval")
    assert "VpcConfig" not in synth.props("function:api")  # it invokes retrieval; it needs no VPC


def test_vpc_has_flow_logs_and_the_endpoints_its_functions_need(synth: Synth) -> None:
    (vpc,) = synth.of_type("AWS::EC2::VPC")
    (flow_log,) = synth.of_type("AWS::EC2::FlowLog").values()
    flow = flow_log["Properties"]
    assert (flow["ResourceId"], flow["ResourceType"], flow["TrafficType"]) == ({"Ref": vpc}, "VPC", "ALL")
    assert flow["LogDestinationType"] == "cloud-watch-logs"
    endpoints = {
        text(e["Properties"]["ServiceName"]).rsplit(".", 1)[-1]
        if e["Properties"]["VpcEndpointType"] == "Gateway"
        else "sagemaker.runtime": e["Properties"]
        for e in synth.of_type("AWS::EC2::VPCEndpoint").values()
    }
    assert set(endpoints) == {"s3", "dynamodb", "sagemaker.runtime"}
    runtime = endpoints["sagemaker.runtime"]
    assert text(runtime["ServiceName"]) == "com.amazonaws.${AWS::Region}.sagemaker.runtime"
    assert runtime["VpcEndpointType"] == "Interface"
    assert runtime["PrivateDnsEnabled"] is True  # the SDK's default endpoint name resolves to it
    (group,) = [synth.target(g)[0] for g in runtime["SecurityGroupIds"]]
    clients = {_clients_group(synth, spec) for spec in PLATFORM.search_domains}
    assert {synth.target(r["SourceSecurityGroupId"])[0] for r in _ingress(synth, group)} == clients
    assert all((r["FromPort"], r["ToPort"]) == (443, 443) for r in _ingress(synth, group))


def test_outputs_name_the_domain_url_and_its_admin_role(synth: Synth) -> None:
    outputs = synth.json["Outputs"]
    for spec in PLATFORM.search_domains:
        name = "".join(p.capitalize() for p in spec.name.split("_"))
        lid = synth.logical_id(f"search:{spec.name}")
        assert synth.target(outputs[f"{name}SearchUrl"]["Value"]) == (lid, "https://DomainEndpoint")
        admin = synth.props(lid)["AdvancedSecurityOptions"]["MasterUserOptions"]["MasterUserARN"]
        assert outputs[f"{name}SearchAdminRoleArn"]["Value"] == admin


# -- settings (no synth) ----------------------------------------------------------------------------------------


def _settings(**context: str) -> InfraSettings:
    return InfraSettings.from_context(App(context=context).node)


def test_search_settings_come_from_context() -> None:
    (spec,) = PLATFORM.search_domains
    settings = _settings(
        **{
            f"agentplatform:search:{spec.name}:instanceType": "r7g.large.search",
            f"agentplatform:search:{spec.name}:instanceCount": "4",
            f"agentplatform:search:{spec.name}:volumeSizeGiB": "100",
            f"agentplatform:search:{spec.name}:dedicatedMasterType": "m7g.large.search",
            f"agentplatform:search:{spec.name}:removalPolicy": "destroy",
        }
    ).search(spec)
    assert (settings.instance_type, settings.instance_count, settings.volume_size_gib) == ("r7g.large.search", 4, 100)
    assert (settings.dedicated_master_type, settings.dedicated_master_count) == ("m7g.large.search", 3)
    assert settings.removal_policy == RemovalPolicy.DESTROY


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("instanceType", "t3.small", r"\*\.search"),
        ("instanceCount", "3", "even and at least 2"),
        ("instanceCount", "0", "even and at least 2"),
        ("volumeSizeGiB", "5", "at least 10"),
        ("dedicatedMasterCount", "3", "needs .*dedicatedMasterType"),
        ("removalPolicy", "snapshot", "removalPolicy must be one of"),
    ],
)
def test_search_settings_the_service_would_refuse_fail_the_synth(setting: str, value: str, error: str) -> None:
    (spec,) = PLATFORM.search_domains
    with pytest.raises(ValueError, match=error):
        _settings(**{f"agentplatform:search:{spec.name}:{setting}": value}).search(spec)


def test_a_misspelt_search_setting_or_domain_fails_the_synth() -> None:
    with pytest.raises(ValueError, match="the setting must be one of"):
        _settings(**{"agentplatform:search:knowledge:instancetype": "r7g.large.search"})
    app = App(context={"agentplatform:search:knowlege:instanceType": "r7g.large.search"})
    stack = Stack(app, "Typo")
    with pytest.raises(ValueError, match="not in the topology"):
        Search(
            stack,
            "Search",
            topology=PLATFORM,
            registry=Registry(stack),
            network=None,  # type: ignore[arg-type]  # refused before the network is used
            settings=InfraSettings.from_context(app.node),
        )


def test_a_domain_name_opensearch_would_refuse_fails_the_synth() -> None:
    stack = Stack(App(), "Long", stack_name="AgentPlatformProductionEuWest")
    with pytest.raises(ValueError, match="not a valid OpenSearch Service domain name"):
        Registry(stack).search_domain_name("knowledge")
