"""The API edge: CORS, the custom domain, the web ACLs (user pool; CloudFront edge) and their context settings.

`synth` is cdk.json's context alone (every option off); `edge_synth` turns every option on (EDGE_CONTEXT). The edge
variants that differ only inside the Edge construct (an imported web ACL, CloudFront's default certificate, a
known stack region) are built on a small stack of their own, so the app is synthesized once per context set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from agentplatform.topology import PLATFORM, CorsPolicy
from infra.cdk.api import CustomDomain
from infra.cdk.edge import Edge, EdgeOptions
from infra.cdk.firewall import rate_rule
from infra.cdk.nag import add_checks
from infra.cdk.settings import InfraSettings
from tests.infra.cdk_synth import (
    API_CERTIFICATE_ARN,
    EDGE_CERTIFICATE_ARN,
    EDGE_CONTEXT,
    RecordingValidations,
    Synth,
    failed_findings,
)

pytestmark = pytest.mark.infra

# AWS's managed CloudFront policies, by their published ids.
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
IMPORTED_ACL = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/edge/0a1b2c3d-0000-1111-2222-333344445555"


def _one(synth: Synth, cfn_type: str) -> tuple[str, dict[str, Any]]:
    ((lid, resource),) = synth.of_type(cfn_type).items()
    return lid, resource["Properties"]


def _acls(template: dict[str, Any], scope: str) -> dict[str, dict[str, Any]]:
    return {
        lid: r["Properties"]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::WAFv2::WebACL" and r["Properties"]["Scope"] == scope
    }


def _rules(acl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["Name"]: rule for rule in acl["Rules"]}


def _assert_rate_rule_then_managed_groups(acl: dict[str, Any], limit: int) -> None:
    rules = _rules(acl)
    rate = rules["RatePerIp"]
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "Limit": limit,
        "EvaluationWindowSec": 300,
    }
    assert rate["Action"] == {"Block": {}}
    assert rate["Priority"] == min(rule["Priority"] for rule in acl["Rules"])  # evaluated first
    for group in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
        statement = rules[group]["Statement"]["ManagedRuleGroupStatement"]
        assert (statement["VendorName"], statement["Name"]) == ("AWS", group)
        assert rules[group]["OverrideAction"] == {"None": {}}  # the group's own block actions apply
    assert acl["DefaultAction"] == {"Allow": {}}
    assert len({rule["Priority"] for rule in acl["Rules"]}) == len(acl["Rules"])


# --- defaults (cdk.json's context): no CORS, no domain, no edge; the user pool's web ACL -------------------------


def test_defaults_have_no_cors_no_custom_domain_and_no_edge(synth: Synth) -> None:
    _, api = _one(synth, "AWS::ApiGatewayV2::Api")
    assert "CorsConfiguration" not in api
    assert api.get("DisableExecuteApiEndpoint", False) is False  # the execute-api URL is the API's URL
    for cfn_type in ("AWS::ApiGatewayV2::DomainName", "AWS::ApiGatewayV2::ApiMapping", "AWS::CloudFront::Distribution"):
        assert synth.of_type(cfn_type) == {}, cfn_type
    assert _acls(synth.json, "CLOUDFRONT") == {}
    assert not {"ApiDomainTarget", "EdgeUrl"} & set(synth.json["Outputs"])


def test_the_user_pool_has_a_regional_web_acl_with_a_per_ip_rate_rule(synth: Synth) -> None:
    ((acl_lid, acl),) = _acls(synth.json, "REGIONAL").items()
    _assert_rate_rule_then_managed_groups(acl, limit=2000)
    _, association = _one(synth, "AWS::WAFv2::WebACLAssociation")
    (pool,) = synth.of_type("AWS::Cognito::UserPool")
    assert association["ResourceArn"] == {"Fn::GetAtt": [pool, "Arn"]}
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_lid, "Arn"]}


def test_the_stage_keeps_its_throttling_with_every_option_on(synth: Synth, edge_synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    (edge_stage,) = edge_synth.of_type("AWS::ApiGatewayV2::Stage").values()
    assert edge_stage["Properties"]["DefaultRouteSettings"] == stage["Properties"]["DefaultRouteSettings"]


def test_api_keys_and_limits_tables_exist_and_limits_expire(synth: Synth) -> None:
    assert "TimeToLiveSpecification" not in synth.props("table:api_keys")  # no TTL in its topology
    assert synth.props("table:limits")["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for name in ("api_keys", "limits"):
        assert synth.props(f"table:{name}")["BillingMode"] == "PAY_PER_REQUEST"


# --- every option on (EDGE_CONTEXT) ---------------------------------------------------------------------------------


def test_every_option_on_is_cdk_nag_clean(edge_synth: Synth) -> None:
    assert failed_findings(edge_synth.outdir) == []


def test_cors_is_the_topology_policy_with_the_context_origins(edge_synth: Synth) -> None:
    _, api = _one(edge_synth, "AWS::ApiGatewayV2::Api")
    policy = CorsPolicy()
    assert api["CorsConfiguration"] == {
        "AllowOrigins": ["https://app.example.com", "http://localhost:3000"],
        "AllowMethods": policy.allow_methods,
        "AllowHeaders": policy.allow_headers,
        "ExposeHeaders": policy.expose_headers,
        "MaxAge": policy.max_age_s,
    }
    assert "AllowCredentials" not in api["CorsConfiguration"]  # bearer tokens, no cookies


def test_custom_domain_is_tls12_mapped_to_the_stage_and_the_default_endpoint_is_off(edge_synth: Synth) -> None:
    api_lid, api = _one(edge_synth, "AWS::ApiGatewayV2::Api")
    assert api["DisableExecuteApiEndpoint"] is True  # nothing reaches the API around the domain
    domain_lid, domain = _one(edge_synth, "AWS::ApiGatewayV2::DomainName")
    assert domain["DomainName"] == "api.example.com"
    assert domain["DomainNameConfigurations"] == [
        {"CertificateArn": API_CERTIFICATE_ARN, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
    ]
    _, mapping = _one(edge_synth, "AWS::ApiGatewayV2::ApiMapping")
    (stage,) = edge_synth.of_type("AWS::ApiGatewayV2::Stage").values()
    assert mapping["ApiId"] == {"Ref": api_lid}
    assert mapping["DomainName"] == {"Ref": domain_lid}
    assert mapping["Stage"] == stage["Properties"]["StageName"] == "$default"
    outputs = edge_synth.json["Outputs"]
    assert outputs["ApiUrl"]["Value"] == "https://api.example.com"
    assert outputs["ApiDomainTarget"]["Value"] == {"Fn::GetAtt": [domain_lid, "RegionalDomainName"]}
    assert outputs["ApiDomainHostedZoneId"]["Value"] == {"Fn::GetAtt": [domain_lid, "RegionalHostedZoneId"]}


def test_the_rate_limit_comes_from_context_for_both_web_acls(edge_synth: Synth) -> None:
    (regional,) = _acls(edge_synth.json, "REGIONAL").values()
    (cloudfront,) = _acls(edge_synth.json, "CLOUDFRONT").values()
    _assert_rate_rule_then_managed_groups(regional, limit=500)
    _assert_rate_rule_then_managed_groups(cloudfront, limit=500)
    # Document uploads are base64 JSON bodies over the common rule set's 8 KB limit: that one rule only counts.
    overrides = _rules(cloudfront)["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert overrides["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]


def test_the_edge_distribution_forwards_everything_uncached_through_its_web_acl(edge_synth: Synth) -> None:
    dist_lid, dist = _one(edge_synth, "AWS::CloudFront::Distribution")
    config = dist["DistributionConfig"]
    ((acl_lid, _),) = _acls(edge_synth.json, "CLOUDFRONT").items()
    assert config["WebACLId"] == {"Fn::GetAtt": [acl_lid, "Arn"]}
    behavior = config["DefaultCacheBehavior"]
    assert behavior["CachePolicyId"] == CACHING_DISABLED
    # Every viewer header but Host, Authorization included (allowed because caching is disabled).
    assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert set(behavior["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    (origin,) = config["Origins"]
    assert origin["DomainName"] == "api.example.com"  # the custom domain: execute-api is off
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    assert config["Aliases"] == ["edge.example.com"]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": EDGE_CERTIFICATE_ARN,
        "MinimumProtocolVersion": "TLSv1.2_2021",
        "SslSupportMethod": "sni-only",
    }
    logs, _ = edge_synth.target(config["Logging"]["Bucket"])
    assert edge_synth.resources[logs]["Properties"]["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerPreferred"}  # CloudFront's log delivery writes through an ACL
    ]
    outputs = edge_synth.json["Outputs"]
    assert outputs["EdgeUrl"]["Value"] == "https://edge.example.com"
    assert outputs["EdgeDistributionDomainName"]["Value"] == {"Fn::GetAtt": [dist_lid, "DomainName"]}


def test_a_web_acl_of_the_stack_requires_us_east_1_at_deploy(edge_synth: Synth) -> None:
    rules = edge_synth.json["Rules"]
    (rule,) = [r for name, r in rules.items() if name.startswith("EdgeWebAclRegion")]
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    assert "agentplatform:edgeWebAclArn" in assertion["AssertDescription"]


# --- edge variants on a small stack of their own ---------------------------------------------------------------------


def _edge_stack(options: EdgeOptions, *, region: str | None = None, app: App | None = None) -> Stack:
    app = app or App()
    stack = Stack(app, "EdgeOnly", env=Environment(region=region) if region else None)
    access_logs = s3.Bucket(
        stack,
        "AccessLogs",
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
    )
    Edge(
        stack,
        "Edge",
        options=options,
        origin_domain="abc123.execute-api.eu-west-1.amazonaws.com",
        rate_limit=2000,
        access_logs=access_logs,
        log_retention_days=30,
    )
    return stack


def test_an_imported_web_acl_is_used_as_is_and_nothing_is_created_for_it(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = _edge_stack(EdgeOptions(web_acl_arn=IMPORTED_ACL), app=app)
    add_checks(app)
    app.synth()  # cdk-nag clean on CloudFront's default certificate too (its finding is acknowledged)
    assert failed_findings(tmp_path) == []
    template = Template.from_stack(stack).to_json()
    (dist,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudFront::Distribution"]
    assert dist["Properties"]["DistributionConfig"]["WebACLId"] == IMPORTED_ACL
    assert "Aliases" not in dist["Properties"]["DistributionConfig"]
    assert [r for r in template["Resources"].values() if r["Type"] == "AWS::WAFv2::WebACL"] == []
    assert not [name for name in template.get("Rules", {}) if name.startswith("EdgeWebAclRegion")]


def test_a_known_region_other_than_us_east_1_needs_an_imported_web_acl() -> None:
    with pytest.raises(ValueError, match=r"only in us-east-1.*agentplatform:edgeWebAclArn"):
        _edge_stack(EdgeOptions(), region="eu-west-1")
    _edge_stack(EdgeOptions(web_acl_arn=IMPORTED_ACL), region="eu-west-1")  # fine with one
    _edge_stack(EdgeOptions(), region="us-east-1")  # and fine where CLOUDFRONT scope exists


def test_edge_acknowledgments_match_real_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the acknowledgments withheld, the edge's findings appear, each on the construct it is acknowledged on."""
    import infra.cdk.nag

    recorder = RecordingValidations()
    monkeypatch.setattr(infra.cdk.nag, "Validations", recorder)
    app = App(outdir=str(tmp_path))
    _edge_stack(EdgeOptions(), app=app)
    add_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    findings = {
        (c["constructPath"], v["ruleName"])
        for plugin in json.loads((tmp_path / "validation-report.json").read_text())["pluginReports"]
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    }
    distribution = "EdgeOnly/Edge/Distribution"
    assert sorted(recorder.acks) == [(distribution, "AwsSolutions-CFR1"), (distribution, "AwsSolutions-CFR4")]
    assert {(path.rsplit("/Resource", 1)[0], rule) for path, rule in findings} == set(recorder.acks)


# --- context settings ------------------------------------------------------------------------------------------------


def _settings(context: dict[str, Any]) -> InfraSettings:
    return InfraSettings.from_context(App(context=context).node)


def test_edge_context_reads_back_as_settings() -> None:
    settings = _settings(EDGE_CONTEXT)
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.api_domain == CustomDomain(name="api.example.com", certificate_arn=API_CERTIFICATE_ARN)
    assert settings.waf_rate_limit == 500
    assert settings.edge == EdgeOptions(
        web_acl_arn=None, domain=CustomDomain(name="edge.example.com", certificate_arn=EDGE_CERTIFICATE_ARN)
    )
    defaults = _settings({})
    assert (defaults.cors_origins, defaults.api_domain, defaults.edge, defaults.waf_rate_limit) == (
        (),
        None,
        None,
        2000,
    )
    assert _settings({"agentplatform:edge": True, "agentplatform:edgeWebAclArn": IMPORTED_ACL}).edge == EdgeOptions(
        web_acl_arn=IMPORTED_ACL
    )


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"agentplatform:corsOrigins": "https://app.example.com/callback"}, "is not an origin"),
        ({"agentplatform:apiDomainName": "api.example.com"}, "go together"),
        (
            {"agentplatform:apiDomainName": "api.example.com", "agentplatform:apiCertificateArn": "my-cert"},
            "must be an ACM certificate ARN",
        ),
        ({"agentplatform:edge": "yes"}, "must be true or false"),
        ({"agentplatform:edgeWebAclArn": IMPORTED_ACL}, "need agentplatform:edge=true"),
        (
            {"agentplatform:edge": "true", "agentplatform:edgeWebAclArn": IMPORTED_ACL.replace("global", "regional")},
            "CLOUDFRONT-scope web ACL",
        ),
        (
            {
                "agentplatform:edge": "true",
                "agentplatform:edgeDomainName": "edge.example.com",
                "agentplatform:edgeCertificateArn": API_CERTIFICATE_ARN,  # eu-west-1: CloudFront cannot use it
            },
            "ACM certificate in us-east-1",
        ),
    ],
    ids=["cors-path", "domain-alone", "not-a-cert", "edge-not-bool", "acl-without-edge", "regional-acl", "cert-region"],
)
def test_a_misconfigured_edge_fails_the_synth(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(context)


def test_a_rate_limit_below_what_waf_accepts_fails() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        rate_rule(9)
    assert rate_rule(10).statement.rate_based_statement.limit == 10  # type: ignore[union-attr]


def test_only_the_public_routes_are_open(synth: Synth) -> None:
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    open_routes = {key for key, props in routes.items() if props["AuthorizationType"] == "NONE"}
    assert (
        open_routes
        == {r.route_key for r in PLATFORM.routes if r.public}
        == {
            "GET /health",
            "GET /openapi.json",
            "GET /docs",
        }
    )
