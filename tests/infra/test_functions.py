"""Every topology function is deployed as described: runtime, handler, sizing, tracing, layer, environment."""

from __future__ import annotations

import re

import pytest

from agentplatform.topology import ENV_ATTRIBUTE, PLATFORM, Function, env_var, split_ref
from infra.cdk.api import AUTHORIZER_FUNCTION
from infra.cdk.evaluation import EVALUATOR_FUNCTION
from infra.cdk.evaluation import POLICY_ENV as EVAL_POLICY_ENV
from infra.cdk.llm_gateway import GATEWAY_FUNCTION, POLICY_ENV
from infra.cdk.sql import SQL_ENV, TOOLS_FUNCTION
from infra.cdk.tool_policy import POLICY_ENV as TOOL_POLICY_ENV
from tests.infra.cdk_synth import INTRINSIC, Synth, text

pytestmark = pytest.mark.infra

BASE_ENV = {"PLATFORM_BACKEND", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
TOKEN_VERIFIER_ENV = {"JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL"}

FUNCTIONS = [pytest.param(f, id=f.name) for f in PLATFORM.functions]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_runtime_handler_and_sizing(synth: Synth, function: Function) -> None:
    props = synth.props(f"function:{function.name}")
    runtime = re.fullmatch(r"python3\.(\d+)", props["Runtime"])
    assert runtime and int(runtime.group(1)) >= 12, props["Runtime"]
    assert props["Handler"] == function.handler
    assert props["Architectures"] == ["arm64"]
    assert props["MemorySize"] == function.memory_mb
    assert props["Timeout"] == function.timeout_s
    assert props["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_env_is_exactly_its_grants(synth: Synth, function: Function) -> None:
    env = synth.props(f"function:{function.name}")["Environment"]["Variables"]
    # The Lambda authorizer also verifies the user pool's tokens (test_api_edge checks the values).
    verifier = TOKEN_VERIFIER_ENV if function.name == AUTHORIZER_FUNCTION else set()
    # The LLM gateway also reads its routing policy from an SSM parameter (not a topology resource).
    policy = {POLICY_ENV} if function.name == GATEWAY_FUNCTION else set()
    # So does the tools function, its tool policy (test_tools_infra checks the value).
    policy |= {TOOL_POLICY_ENV} if function.name == "tools" else set()
    # And its SQL database (Aurora through the Data API; test_sql checks the values).
    policy |= set(SQL_ENV) if function.name == TOOLS_FUNCTION else set()
    # And the evaluator, its evaluation policy's JSON (test_evaluation checks the value).
    policy |= {EVAL_POLICY_ENV} if function.name == EVALUATOR_FUNCTION else set()
    assert set(env) == BASE_ENV | verifier | policy | {env_var(g.ref) for g in function.uses}
    assert env["PLATFORM_BACKEND"] == "aws"
    assert env["POWERTOOLS_SERVICE_NAME"] == function.service
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AgentPlatform"
    for grant in function.uses:
        kind, _ = split_ref(grant.ref)
        expected = (synth.logical_id(grant.ref), INTRINSIC[(kind, ENV_ATTRIBUTE[kind])])
        assert synth.target(env[env_var(grant.ref)]) == expected, grant.ref


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_has_the_core_layer_and_its_own_retained_log_group(synth: Synth, function: Function) -> None:
    props = synth.props(f"function:{function.name}")
    (layer,) = props["Layers"]
    lid, _ = synth.target(layer)
    assert synth.resources[lid]["Type"] == "AWS::Lambda::LayerVersion"
    assert synth.resources[lid]["Properties"]["CompatibleRuntimes"] == [props["Runtime"]]
    log_lid, _ = synth.target(props["LoggingConfig"]["LogGroup"])
    log_group = synth.resources[log_lid]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] > 0


def test_every_lambda_in_the_template_is_a_topology_function(synth: Synth) -> None:
    """No stray Lambdas (CDK custom-resource handlers would bring their own runtime and managed policies)."""
    tagged = {synth.logical_id(f"function:{f.name}") for f in PLATFORM.functions}
    assert set(synth.of_type("AWS::Lambda::Function")) == tagged


def test_the_gateway_reads_its_policy_parameter(synth: Synth) -> None:
    env = synth.props(f"function:{GATEWAY_FUNCTION}")["Environment"]["Variables"]
    lid, _ = synth.target(env[POLICY_ENV])
    parameter = synth.resources[lid]
    assert parameter["Type"] == "AWS::SSM::Parameter"
    assert "nova-micro" in text(parameter["Properties"]["Value"])
