"""CDK entry point: `python -m infra.cdk.app` (cdk.json runs it for `npx cdk synth` / `deploy`).

The stack is environment-agnostic (no account or region lookups), so synth runs offline; the first synth on a
machine needs PyPI once to build the Lambda layer (bundling.py), later ones reuse `.build/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.cdk.nag import add_checks
from infra.cdk.settings import InfraSettings
from infra.cdk.stack import PlatformStack


def build_app(*, outdir: Path | None = None, context: dict[str, Any] | None = None) -> tuple[App, PlatformStack]:
    """The app with the platform stack and the cdk-nag checks; tests pass cdk.json's context themselves."""
    app = App(outdir=str(outdir) if outdir else None, context=context)
    settings = InfraSettings.from_context(app.node)
    stack = PlatformStack(app, settings.stack_name, settings=settings)
    add_checks(app)
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
