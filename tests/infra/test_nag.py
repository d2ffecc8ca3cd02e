"""cdk-nag (AwsSolutions): nothing unacknowledged, every acknowledgment explained, and none of them stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentplatform.topology import PLATFORM
from tests.infra.cdk_synth import RecordingValidations, Synth, cdk_context, failed_findings

pytestmark = pytest.mark.infra

ACK_KEY = "aws:cdk:acknowledged-rules"
# aws-cdk-lib acknowledges some CloudFormation validation findings of its own constructs itself (W3010 "literal
# AZs" on a stack whose AZs a VPC read, F3002/F3003 on a flow log's camelCase options); the app acknowledges only
# cdk-nag findings (infra.cdk.nag.acknowledge), which the tests below hold to a reason.
CDK_OWN_PLUGINS = {"CloudFormation-Validate"}


def _acknowledgments(synth: Synth) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every acknowledgment recorded in the construct tree."""
    found = []
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACK_KEY:
                for key, reason in entry.data.items():
                    plugin, _, rule = key.partition("::")
                    if plugin not in CDK_OWN_PLUGINS:
                        found.append((construct.node.path, rule, reason))
    return found


def test_no_unacknowledged_findings(synth: Synth) -> None:
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    assert [r["pluginName"] for r in report["pluginReports"] if r.get("violations")] == []
    assert failed_findings(synth.outdir) == []


def test_every_acknowledgment_has_a_specific_reason(synth: Synth) -> None:
    acks = _acknowledgments(synth)
    assert acks, "expected acknowledgments (X-Ray wildcards, public routes, ...)"
    for path, rule, reason in acks:
        assert rule.startswith("AwsSolutions-"), (path, rule)
        assert len(reason.strip()) >= 40, f"{rule} on {path}: reason too thin: {reason!r}"


def test_only_the_public_routes_are_acknowledged_to_have_no_authorizer(synth: Synth) -> None:
    """`$default` included: every route the topology does not mark public has an authorizer, none is excused."""
    acknowledged = sorted(p for p, rule, _ in _acknowledgments(synth) if rule == "AwsSolutions-APIG4")
    routes = zip(synth.stack.api.routes, PLATFORM.routes, strict=True)
    assert acknowledged == sorted(route.node.path for route, spec in routes if spec.public)
    assert len(acknowledged) == len([r for r in PLATFORM.routes if r.public]) >= 3  # health, openapi.json, docs


@pytest.fixture(scope="module")
def unacknowledged(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Synthesize again with every acknowledgment withheld: (acknowledgments the app makes, raw findings)."""
    import infra.cdk.nag
    from infra.cdk.app import build_app

    recorder = RecordingValidations()
    outdir: Path = tmp_path_factory.mktemp("cdk.out.unacknowledged")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infra.cdk.nag, "Validations", recorder)
        app, _ = build_app(outdir=outdir, context=cdk_context())
        with pytest.raises(RuntimeError, match="ValidationFailed"):
            app.synth()
    findings: list[tuple[str, str]] = []
    for plugin in json.loads((outdir / "validation-report.json").read_text())["pluginReports"]:
        for violation in plugin["violations"]:
            findings.extend((c["constructPath"], violation["ruleName"]) for c in violation["violatingConstructs"])
    return recorder.acks, findings


def _covers(ack: tuple[str, str], finding: tuple[str, str]) -> bool:
    (scope, rule), (path, found_rule) = ack, finding
    return rule == found_rule and (path == scope or path.startswith(scope + "/"))


def test_every_acknowledgment_matches_a_real_finding(unacknowledged: Any) -> None:
    acks, findings = unacknowledged
    stale = [ack for ack in acks if not any(_covers(ack, f) for f in findings)]
    assert stale == [], "acknowledgments that no finding needs (remove them)"


def test_every_finding_is_acknowledged_somewhere(unacknowledged: Any) -> None:
    acks, findings = unacknowledged
    assert findings, "with acknowledgments withheld, the known findings should appear"
    assert [f for f in findings if not any(_covers(a, f) for a in acks)] == []
