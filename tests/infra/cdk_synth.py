"""Reading a synthesized template back against the topology (shared by the infra tests; conftest synthesizes).

The helpers map template resources back to topology references through the `agentplatform:ref` tag, and
resolve the intrinsics the app uses (Ref, Fn::GetAtt, the formatted state machine, endpoint and search domain
ARNs, an endpoint's explicit name, and a search domain's https:// URL) to `(logical id, attribute)` pairs, so tests
compare against the topology without trusting the app's own lookups.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Stack, Validations
from aws_cdk.assertions import Template

REPO_ROOT = Path(__file__).resolve().parents[2]
REF_TAG = "agentplatform:ref"
_SM_ARN_TAIL = re.compile(r"^:stateMachine:(?P<name>[A-Za-z0-9_-]+)$")
_ENDPOINT_ARN_TAIL = re.compile(r"^:endpoint/(?P<name>[a-z0-9-]+)$")
_DOMAIN_ARN_TAIL = re.compile(r"^:domain/(?P<name>[a-z][a-z0-9-]+)(?P<path>/.*)?$")

# What CloudFormation returns for each (kind, attribute) an environment variable or ASL placeholder may carry:
# "Ref" or the Fn::GetAtt attribute.
INTRINSIC = {
    ("bucket", "name"): "Ref",
    ("queue", "url"): "Ref",
    ("table", "name"): "Ref",
    ("bus", "name"): "Ref",
    ("function", "name"): "Ref",
    ("statemachine", "arn"): "Ref",
    ("endpoint", "name"): "EndpointName",  # the explicit name itself, a plain string (see Synth.target)
    ("endpoint", "arn"): "Ref",
    ("function", "arn"): "Arn",
    ("bucket", "arn"): "Arn",
    ("queue", "arn"): "Arn",
    ("table", "arn"): "Arn",
    ("bus", "arn"): "Arn",
    ("search", "url"): "https://DomainEndpoint",  # "https://" joined to the domain's endpoint (see Synth.target)
    ("search", "arn"): "Arn",
}


@dataclass
class Synth:
    app: App
    stack: Stack
    template: Template
    outdir: Path

    @property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def asset_path(self, object_key: str) -> Path:
        """The staged file or folder behind an asset's S3 object key, found through the stack's asset manifest."""
        manifest = json.loads((self.outdir / f"{self.stack.artifact_id}.assets.json").read_text())
        for asset in manifest["files"].values():
            if any(d["objectKey"] == object_key for d in asset["destinations"].values()):
                return self.outdir / asset["source"]["path"]
        raise AssertionError(f"no staged asset with object key {object_key}")

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.json["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == cfn_type}

    def logical_id(self, ref: str) -> str:
        """The one resource tagged with a topology reference."""
        found = [
            lid
            for lid, r in self.resources.items()
            if {"Key": REF_TAG, "Value": ref} in r.get("Properties", {}).get("Tags", [])
        ]
        assert len(found) == 1, f"expected one resource tagged {ref}, found {found}"
        return found[0]

    def props(self, ref_or_id: str) -> dict[str, Any]:
        lid = self.logical_id(ref_or_id) if ":" in ref_or_id else ref_or_id
        return self.resources[lid]["Properties"]

    def endpoint_named(self, name: str) -> str:
        found = [
            lid
            for lid, r in self.of_type("AWS::SageMaker::Endpoint").items()
            if r["Properties"].get("EndpointName") == name
        ]
        assert len(found) == 1, f"expected one endpoint named {name}, found {found}"
        return found[0]

    def domain_named(self, name: str) -> str:
        found = [
            lid
            for lid, r in self.of_type("AWS::OpenSearchService::Domain").items()
            if r["Properties"].get("DomainName") == name
        ]
        assert len(found) == 1, f"expected one search domain named {name}, found {found}"
        return found[0]

    def target(self, value: Any) -> tuple[str, str]:
        """What an intrinsic points at: ("<logical id>", "Ref" | "<GetAtt attribute>").

        A model endpoint's name is explicit, so it appears as a plain string: ("<its logical id>", "EndpointName").
        A search domain's URL is "https://" joined to its endpoint: ("<its logical id>", "https://DomainEndpoint").
        A search domain's formatted ARN is ("<its logical id>", "Arn"), a path under it ("<id>", "Arn/<path>").
        """
        if isinstance(value, str) and self.of_type("AWS::SageMaker::Endpoint"):
            return self.endpoint_named(value), "EndpointName"
        if isinstance(value, dict) and "Ref" in value:
            return value["Ref"], "Ref"
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            lid, attribute = value["Fn::GetAtt"]
            return lid, attribute
        if isinstance(value, dict) and "Fn::Join" in value:
            # arn:${Partition}:states:${Region}:${Account}:stateMachine:<name> -> that machine's Ref (its ARN)
            separator, parts = value["Fn::Join"]
            assert separator == ""
            if len(parts) == 2 and parts[0] == "https://" and isinstance(parts[1], dict) and "Fn::GetAtt" in parts[1]:
                lid, attribute = parts[1]["Fn::GetAtt"]
                return lid, f"https://{attribute}"
            tail = parts[-1] if isinstance(parts[-1], str) else ""
            match = _SM_ARN_TAIL.match(tail)
            if match and parts[0] == "arn:" and ":states:" in parts:
                machines = [
                    lid
                    for lid, r in self.of_type("AWS::StepFunctions::StateMachine").items()
                    if r["Properties"].get("StateMachineName") == match.group("name")
                ]
                assert len(machines) == 1, f"no state machine named {match.group('name')}"
                return machines[0], "Ref"
            # arn:${Partition}:sagemaker:${Region}:${Account}:endpoint/<name> -> that endpoint's Ref (its ARN)
            match = _ENDPOINT_ARN_TAIL.match(tail)
            if match and parts[0] == "arn:" and ":sagemaker:" in parts:
                return self.endpoint_named(match.group("name")), "Ref"
            # arn:${Partition}:es:${Region}:${Account}:domain/<name>[/<path>] -> that domain's ARN (or a path under it)
            match = _DOMAIN_ARN_TAIL.match(tail)
            if match and parts[0] == "arn:" and ":es:" in parts:
                return self.domain_named(match.group("name")), "Arn" + (match.group("path") or "")
        raise AssertionError(f"unrecognised intrinsic {value!r}")

    def role_statements(self, role_lid: str) -> list[dict[str, Any]]:
        """Every statement that applies to a role: its inline policies and the AWS::IAM::Policy attached to it."""
        role = self.resources[role_lid]["Properties"]
        statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_lid} in policy["Properties"].get("Roles", []):
                statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        return statements


def text(value: Any) -> str:
    """An intrinsic as readable text: Ref -> ${X}, GetAtt -> ${X.Attr}, FindInMap -> ${Map[k1][k2]}, Join joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"${{{arg}}}"
        if fn == "Fn::GetAtt":
            return f"${{{arg[0]}.{arg[1]}}}"
        if fn == "Fn::FindInMap":
            mapping, first, second = arg
            return f"${{{mapping}[{text(first)}][{text(second)}]}}"
        if fn == "Fn::Join":
            separator, parts = arg
            return separator.join(text(p) for p in parts)
        if fn == "Fn::Sub" and isinstance(arg, str):
            return arg
    raise AssertionError(f"cannot render {value!r} as text")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statement_pairs(statements: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(action, resource) for every Allow statement."""
    pairs: list[tuple[str, Any]] = []
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                pairs.append((action, resource))
    return pairs


# Every API-edge option on (conftest's `edge_synth`): CORS origins, the API's custom domain, WAF rate limit, and the
# CloudFront edge with its own domain (us-east-1 certificate) and a web ACL of the stack's own.
API_CERTIFICATE_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
EDGE_CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/66666666-7777-8888-9999-000000000000"
EDGE_CONTEXT: dict[str, Any] = {
    "agentplatform:corsOrigins": "https://app.example.com, http://localhost:3000",
    "agentplatform:apiDomainName": "api.example.com",
    "agentplatform:apiCertificateArn": API_CERTIFICATE_ARN,
    "agentplatform:wafRateLimit": "500",
    "agentplatform:edge": "true",
    "agentplatform:edgeDomainName": "edge.example.com",
    "agentplatform:edgeCertificateArn": EDGE_CERTIFICATE_ARN,
}


def cdk_context() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def failed_findings(outdir: Path) -> list[str]:
    report = outdir / "validation-report.json"
    if not report.exists():
        return []
    lines = []
    for plugin in json.loads(report.read_text())["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                lines.append(f"{violation['severity']} {violation['ruleName']} at {construct['constructPath']}")
    return lines


class RecordingValidations:
    """Stands in for `Validations` inside infra.cdk.nag: records acknowledgments instead of applying them."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, str]] = []

    def of(self, scope: Any) -> Any:
        recorder = self

        class _Scoped:
            def acknowledge(self, *rules: Any) -> None:
                recorder.acks.extend((scope.node.path, rule.id) for rule in rules)

            def add_plugins(self, *plugins: Any) -> None:
                Validations.of(scope).add_plugins(*plugins)

        return _Scoped()
