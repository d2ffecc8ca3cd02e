"""The per-tenant tool policy in AWS: policies/tools.json as an SSM parameter, validated at synth (a bad policy
fails `cdk synth` naming the field), read by the tools function alone (TOOLS_POLICY_PARAMETER, GetParameter on
that parameter only). The function caches it 30 s, so an edited parameter applies within that."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.tools.policy import DEFAULT_POLICY_PATH, parse_tool_policy
from infra.cdk.parameters import policy_parameter

POLICY_ENV = "TOOLS_POLICY_PARAMETER"


class ToolPolicyParameter(Construct):
    def __init__(
        self, scope: Construct, id: str, *, function: lambda_.Function, policy_path: Path = DEFAULT_POLICY_PATH
    ) -> None:
        super().__init__(scope, id)
        text = policy_path.read_text(encoding="utf-8")
        policy = parse_tool_policy(text, str(policy_path))
        value = json.dumps(json.loads(text), separators=(",", ":"))
        self.parameter = policy_parameter(
            self,
            "Policy",
            value=value,
            description=f"The tools' per-tenant policy, version {policy.version} (policies/tools.json).",
            function=function,
            env=POLICY_ENV,
        )
