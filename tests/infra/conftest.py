"""Synthesize the CDK app once per session and context set, with cdk.json's context and the cdk-nag checks, as the
CLI does: `synth` with cdk.json's context alone, `edge_synth` with every API-edge option on (EDGE_CONTEXT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.cdk_synth import EDGE_CONTEXT, Synth, cdk_context, failed_findings


def _synth(outdir: Path, extra_context: dict[str, Any]) -> Synth:
    from infra.cdk.app import build_app

    app, stack = build_app(outdir=outdir, context={**cdk_context(), **extra_context})
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag (policy validation) failed the synth
        pytest.fail(f"synth failed: {exc}\n" + "\n".join(failed_findings(outdir)), pytrace=False)
    return Synth(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out"), {})


@pytest.fixture(scope="session")
def edge_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out.edge"), EDGE_CONTEXT)
