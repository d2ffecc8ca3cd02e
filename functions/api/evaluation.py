"""`GET /v1/eval/alerts` and `GET /v1/eval/summary`: the caller's tenant's evaluation alerts and score summary,
read from the evaluations table the evaluator writes (functions/evaluation). Operators' reading: the `eval`
scope."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel

from agentplatform.adapters.aws.evaluations import EvaluationStore
from agentplatform.bootstrap import container
from agentplatform.evaluation import Alert, Summary, summarize
from agentplatform.principal import caller
from agentplatform.topology import EVAL_SCOPE

router = APIGatewayHttpRouter()

AlertState = Literal["open", "cleared"]

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_WINDOW_S = 30 * 86_400
_RESPONSES = {
    401: {"description": "No valid credentials"},
    403: {"description": f"The credentials lack the `{EVAL_SCOPE}` scope"},
}


class AlertList(BaseModel):
    alerts: list[Alert]


def _store() -> EvaluationStore:
    c = container()
    return EvaluationStore(c.settings.require("evaluations_table_name"), c.client("dynamodb"))


def window_seconds(window: str) -> int:
    """`15m`, `1h`, `7d` in seconds; longer ones read MAX_WINDOW_S."""
    return min(MAX_WINDOW_S, int(window[:-1]) * _UNIT_S[window[-1]])


@router.get(
    "/v1/eval/alerts",
    summary="The tenant's evaluation alerts",
    description=(
        "Degradation alerts of the tenant's evaluated turns, newest first: open ones and cleared ones with when "
        f"and at which rolling mean they cleared. Needs the `{EVAL_SCOPE}` scope."
    ),
    tags=["evaluation"],
    responses={200: {"description": "The alerts"}, **_RESPONSES},
)
def list_alerts(
    state: Annotated[AlertState | None, Query(description="Only alerts in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AlertList:
    principal = caller(router.current_event.raw_event, EVAL_SCOPE)
    alerts = _store().alerts(principal.tenant, limit=limit)
    return AlertList(alerts=[a for a in alerts if state is None or a.state == state])


@router.get(
    "/v1/eval/summary",
    summary="The tenant's evaluation scores over a window",
    description=(
        "Each score's mean, sample count and scorer failures over the tenant's turns evaluated in the last "
        f"`window` (e.g. `15m`, `1h`, `7d`; a longer one reads 30d), and the turns per answering route. Needs the "
        f"`{EVAL_SCOPE}` scope."
    ),
    tags=["evaluation"],
    responses={200: {"description": "The summary"}, 422: {"description": "A window not like 15m or 7d"}, **_RESPONSES},
)
def summary(window: Annotated[str, Query(pattern=r"^[1-9][0-9]{0,6}[smhd]$")] = "1h") -> Summary:
    principal = caller(router.current_event.raw_event, EVAL_SCOPE)
    seconds = window_seconds(window)
    since = int(time.time() * 1000) - seconds * 1000
    return summarize(principal.tenant, seconds, since, _store().records(principal.tenant, since_ms=since, limit=5000))
