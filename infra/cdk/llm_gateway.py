"""What the LLM gateway needs beyond its topology grants: the routing policy as an SSM parameter (from
policies/llm_gateway.aws.json, validated at synth: a bad policy fails `cdk synth` naming the field), read access to
that parameter only, Bedrock InvokeModel (which Converse uses) on exactly the foundation models the policy names,
and a Secrets Manager secret for the OpenAI-compatible key, readable by the gateway only.

A policy target whose `secret` is "{openai_secret}" gets this secret's ARN in the deployed parameter.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.llm_gateway.policy import Policy, parse_policy
from infra.cdk.nag import acknowledge
from infra.cdk.parameters import policy_parameter

GATEWAY_FUNCTION = "llm_gateway"
POLICY_ENV = "LLM_POLICY_PARAMETER"
AWS_POLICY = Path(__file__).resolve().parents[2] / "policies" / "llm_gateway.aws.json"
SECRET_PLACEHOLDER = "{openai_secret}"  # noqa: S105 - a placeholder the synth replaces with an ARN


def foundation_models(policy: Policy) -> list[tuple[str, str | None]]:
    """(model id, region or None for the stack's) of every Bedrock target, sorted, each once."""
    return sorted({(t.model, t.region) for t in policy.targets.values() if t.provider == "bedrock"}, key=str)


class LlmGatewayPolicy(Construct):
    def __init__(
        self, scope: Construct, id: str, *, function: lambda_.Function, policy_path: Path = AWS_POLICY
    ) -> None:
        super().__init__(scope, id)
        text = policy_path.read_text(encoding="utf-8")
        policy = parse_policy(text, str(policy_path))

        self.secret = secretsmanager.Secret(
            self,
            "OpenAiCompatibleKey",
            description="API key of the OpenAI-compatible endpoint the LLM gateway's policy may route to.",
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The secret holds a third-party API key that only its provider can issue; it is rotated by replacing "
            "it with a key from the provider's console, which no rotation Lambda can do.",
        )
        document = json.loads(text)
        for target in document["targets"].values():
            if target.get("secret") == SECRET_PLACEHOLDER:
                target["secret"] = self.secret.secret_arn
        value = json.dumps(document, separators=(",", ":"))
        self.parameter = policy_parameter(
            self,
            "Policy",
            value=value,
            description=f"The LLM gateway's routing policy, version {policy.version} (policies/llm_gateway.aws.json).",
            function=function,
            env=POLICY_ENV,
        )
        models = foundation_models(policy)
        if models:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["bedrock:InvokeModel"],  # what Converse is authorized by
                    resources=[
                        f"arn:{Aws.PARTITION}:bedrock:{region or Aws.REGION}::foundation-model/{model}"
                        for model, region in models
                    ],
                )
            )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[self.secret.secret_arn])
        )
