"""The canary's probe task (statemachines/canary.asl.json): raise DependencyUnavailable if a component is down.

Raising (rather than returning a status) lets the state machine retry a blip and catch a real outage by the
error's name.
"""

from __future__ import annotations

from typing import Any

from agentplatform.bootstrap import container
from agentplatform.errors import DependencyUnavailable
from agentplatform.observability import lambda_entry, telemetry
from functions.api.health import check_health


@lambda_entry("canary")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = check_health(container())
    down = [c for c in report.components if c.status == "down"]  # an absent component is no outage
    if down:
        telemetry("canary").logger.warning("components down", extra={"down": [c.name for c in down]})
        raise DependencyUnavailable("; ".join(f"{c.name}: {c.detail}" for c in down))
    return report.model_dump(mode="json")
