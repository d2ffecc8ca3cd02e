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
