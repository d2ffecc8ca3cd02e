"""A policy document as an SSM parameter that one function reads (the gateway's routing, the tools' policy)."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

_STANDARD_PARAMETER_MAX = 4096  # bytes; above it a parameter must be Advanced


def policy_parameter(
    scope: Construct, id: str, *, value: str, description: str, function: lambda_.Function, env: str
) -> ssm.StringParameter:
    """The parameter holding `value`, its name in the function's `env` variable, and GetParameter on it only."""
    parameter = ssm.StringParameter(
        scope,
        id,
        description=description,
        string_value=value,
        tier=ssm.ParameterTier.ADVANCED
        if len(value.encode()) > _STANDARD_PARAMETER_MAX
        else ssm.ParameterTier.STANDARD,
    )
    function.add_environment(env, parameter.parameter_name)
    function.add_to_role_policy(iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[parameter.parameter_arn]))
    return parameter
