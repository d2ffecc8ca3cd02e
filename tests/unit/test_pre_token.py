"""Cognito's pre-token-generation trigger: the tenant claim that the API's authorizer context carries."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentplatform.errors import Forbidden
from agentplatform.principal import principal_from_event
from functions.authorizer.pre_token import handler
from tests.conftest import sample_event


def test_the_tenant_attribute_becomes_a_claim_of_both_tokens(lambda_context: Any) -> None:
    out = handler(copy.deepcopy(sample_event("authorizer/pre_token.json")), lambda_context)
    details = out["response"]["claimsAndScopeOverrideDetails"]
    assert details["accessTokenGeneration"]["claimsToAddOrOverride"] == {"tenant": "acme"}
    assert details["idTokenGeneration"]["claimsToAddOrOverride"] == {"tenant": "acme"}
    # What API Gateway then hands the api function reads back as that tenant.
    claims = {"sub": "3f1c9a2e-alice", **details["accessTokenGeneration"]["claimsToAddOrOverride"]}
    authorizer = {"jwt": {"claims": claims, "scopes": ["agentplatform/search"]}}
    assert principal_from_event({"requestContext": {"authorizer": authorizer}}).tenant == "acme"


def test_a_user_without_a_tenant_gets_no_token(lambda_context: Any) -> None:
    event = copy.deepcopy(sample_event("authorizer/pre_token.json"))
    del event["request"]["userAttributes"]["custom:tenant"]
    with pytest.raises(Forbidden):
        handler(event, lambda_context)


def _access_token_changes(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    return handler(event, lambda_context)["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]


def test_a_user_outside_the_admin_group_loses_the_admin_scope(lambda_context: Any) -> None:
    event = copy.deepcopy(sample_event("authorizer/pre_token.json"))
    event["request"]["scopes"].append("agentplatform/admin")  # the app client may ask for it
    assert event["request"]["groupConfiguration"]["groupsToOverride"] == ["engineering"]
    access = _access_token_changes(event, lambda_context)
    assert access["scopesToSuppress"] == ["agentplatform/admin"]
    assert access["claimsToAddOrOverride"] == {"tenant": "acme"}  # the tenant claim still goes in


def test_a_user_in_no_group_loses_the_admin_scope(lambda_context: Any) -> None:
    event = copy.deepcopy(sample_event("authorizer/pre_token.json"))
    del event["request"]["groupConfiguration"]
    assert _access_token_changes(event, lambda_context)["scopesToSuppress"] == ["agentplatform/admin"]


def test_a_member_of_the_admin_group_keeps_the_admin_scope(lambda_context: Any) -> None:
    event = copy.deepcopy(sample_event("authorizer/pre_token.json"))
    event["request"]["scopes"].append("agentplatform/admin")
    event["request"]["groupConfiguration"]["groupsToOverride"] = ["engineering", "admin"]
    access = _access_token_changes(event, lambda_context)
    assert "scopesToSuppress" not in access
    assert access["claimsToAddOrOverride"] == {"tenant": "acme"}


def test_only_the_admin_scope_is_suppressed(lambda_context: Any) -> None:
    """Other route scopes (search, documents) are the app client's to grant; a group like "admins" is not "admin"."""
    event = copy.deepcopy(sample_event("authorizer/pre_token.json"))
    event["request"]["groupConfiguration"]["groupsToOverride"] = ["admins", "Admin"]
    assert _access_token_changes(event, lambda_context)["scopesToSuppress"] == ["agentplatform/admin"]
