"""Synthesize the CDK app once per session, with cdk.json's context and the cdk-nag checks, as the CLI does."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from tests.infra.cdk_synth import Synth, cdk_context, failed_findings


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from infra.cdk.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(outdir=outdir, context=cdk_context())
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag (policy validation) failed the synth
        pytest.fail(f"synth failed: {exc}\n" + "\n".join(failed_findings(outdir)), pytrace=False)
    return Synth(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)
