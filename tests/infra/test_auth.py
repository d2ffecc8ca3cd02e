"""The Cognito user pool behind the API's authorizers: operator-created users with an immutable tenant, strong
passwords, optional TOTP, one resource server scope per scope the routes need, a public PKCE client, the admin
group, and the Lambda authorizer's view of the pool (issuer, audience, JWKS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App

from agentplatform.topology import ADMIN_GROUP, ADMIN_SCOPE, PLATFORM
from functions.authorizer.pre_token import ADMIN_TOKEN_SCOPE
from infra.cdk.auth import scope_name
from infra.cdk.settings import InfraSettings
from tests.infra.cdk_synth import Synth, text

pytestmark = pytest.mark.infra


def _one(synth: Synth, cfn_type: str) -> dict[str, Any]:
    (resource,) = synth.of_type(cfn_type).values()
    return resource["Properties"]


def test_user_pool_users_are_created_by_operators_with_strong_passwords(synth: Synth) -> None:
    pool = _one(synth, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up
    password = pool["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 12
    for rule in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"):
        assert password[rule] is True, rule
    assert pool["MfaConfiguration"] == "OPTIONAL"
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]  # TOTP; no SMS
    assert pool["UserPoolTier"] == "ESSENTIALS"
    assert pool["DeletionProtection"] == "ACTIVE"


def test_tenant_is_an_immutable_custom_attribute_clients_cannot_write(synth: Synth) -> None:
    pool = _one(synth, "AWS::Cognito::UserPool")
    (tenant,) = [a for a in pool["Schema"] if a["Name"] == "tenant"]
    assert tenant["AttributeDataType"] == "String"
    assert tenant["Mutable"] is False
    client = _one(synth, "AWS::Cognito::UserPoolClient")
    assert "custom:tenant" in client["ReadAttributes"]
    assert "custom:tenant" not in client["WriteAttributes"]


def test_resource_server_has_one_scope_per_route_scope(synth: Synth) -> None:
    server = _one(synth, "AWS::Cognito::UserPoolResourceServer")
    assert server["Identifier"] == "agentplatform"
    wanted = {s for r in PLATFORM.routes if not r.public for s in r.scopes}
    assert (
        {s["ScopeName"] for s in server["Scopes"]} == wanted >= {"search", "documents:read", "documents:write", "admin"}
    )


def test_app_client_is_public_and_uses_the_code_grant_with_the_route_scopes(synth: Synth) -> None:
    client = _one(synth, "AWS::Cognito::UserPoolClient")
    (server,) = synth.of_type("AWS::Cognito::UserPoolResourceServer")
    assert client["GenerateSecret"] is False  # PKCE: a CLI or browser app keeps no secret
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    scopes = client["AllowedOAuthScopes"]
    assert {"Fn::Join": ["", [{"Ref": server}, "/search"]]} in scopes
    assert "openid" in scopes
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert client["CallbackURLs"] == ["http://localhost:8765/callback"]
    assert set(client["ExplicitAuthFlows"]) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}


def test_hosted_sign_in_domain_defaults_to_stack_and_account(synth: Synth) -> None:
    domain = _one(synth, "AWS::Cognito::UserPoolDomain")
    assert domain["Domain"] == {"Fn::Join": ["", ["agentplatform-", {"Ref": "AWS::AccountId"}]]}


def test_auth_settings_come_from_context() -> None:
    settings = InfraSettings.from_context(
        App(
            context={
                "agentplatform:userPoolFeaturePlan": "PLUS",
                "agentplatform:authCallbackUrls": "https://app.example.com/cb, http://localhost:3000/cb",
                "agentplatform:authDomainPrefix": "acme-agents",
            }
        ).node
    )
    assert settings.user_pool_feature_plan == "plus"
    assert settings.auth_callback_urls == ("https://app.example.com/cb", "http://localhost:3000/cb")
    assert settings.auth_domain_prefix == "acme-agents"
    with pytest.raises(ValueError, match="userPoolFeaturePlan must be one of"):
        InfraSettings.from_context(App(context={"agentplatform:userPoolFeaturePlan": "lite"}).node)


def test_the_pre_token_function_puts_the_tenant_into_access_tokens(synth: Synth) -> None:
    pool = _one(synth, "AWS::Cognito::UserPool")
    trigger = pool["LambdaConfig"]["PreTokenGenerationConfig"]
    assert trigger["LambdaVersion"] == "V2_0"  # version 1 cannot customize access tokens
    assert trigger["LambdaArn"] == {"Fn::GetAtt": [synth.logical_id("function:pre_token"), "Arn"]}
    (permission,) = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "cognito-idp.amazonaws.com"
    ]
    assert permission["FunctionName"] == trigger["LambdaArn"]


def test_the_admin_group_exists_in_the_pool(synth: Synth) -> None:
    group = _one(synth, "AWS::Cognito::UserPoolGroup")
    (pool,) = synth.of_type("AWS::Cognito::UserPool")
    assert group["GroupName"] == ADMIN_GROUP == "admin"
    assert group["UserPoolId"] == {"Ref": pool}
    assert "agentplatform/admin" in group["Description"]
    assert "POST /v1/admin/api-keys" in group["Description"]


def test_the_trigger_suppresses_the_scope_the_admin_routes_need() -> None:
    """pre_token cannot import the CDK app: its admin scope must be the one the resource server and routes use."""
    assert ADMIN_TOKEN_SCOPE == scope_name(ADMIN_SCOPE) == "agentplatform/admin"
    assert {tuple(r.scopes) for r in PLATFORM.routes if r.authorizer == "jwt"} == {(ADMIN_SCOPE,)}


def test_the_lambda_authorizer_gets_the_pools_issuer_audience_and_keys(synth: Synth) -> None:
    env = synth.props("function:authorizer")["Environment"]["Variables"]
    (pool,) = synth.of_type("AWS::Cognito::UserPool")
    (client,) = synth.of_type("AWS::Cognito::UserPoolClient")
    issuer = f"https://cognito-idp.${{AWS::Region}}.${{AWS::URLSuffix}}/${{{pool}}}"
    assert text(env["JWT_ISSUER"]) == issuer
    assert env["JWT_AUDIENCE"] == {"Ref": client}  # Cognito access tokens carry it as client_id
    assert text(env["JWKS_URL"]) == issuer + "/.well-known/jwks.json"
    # Same issuer as the JWT authorizer's and the stack output.
    assert text(synth.json["Outputs"]["JwtIssuerUrl"]["Value"]) == issuer


def test_the_user_pool_does_not_depend_on_the_authorizer_function(synth: Synth) -> None:
    """The authorizer reads the pool; the pool must not need the authorizer (a dependency cycle otherwise)."""
    authorizer = synth.logical_id("function:authorizer")
    (pool,) = synth.of_type("AWS::Cognito::UserPool").values()
    assert authorizer not in json.dumps(pool)
    assert pool["Properties"]["LambdaConfig"] == {
        "PreTokenGenerationConfig": {
            "LambdaArn": {"Fn::GetAtt": [synth.logical_id("function:pre_token"), "Arn"]},
            "LambdaVersion": "V2_0",
        }
    }
