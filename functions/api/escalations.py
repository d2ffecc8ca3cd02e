"""`/v1/escalations`: operators of a tenant see the turns waiting for a human and resolve them.

Resolving closes the escalation once (a second resolution is 409) and resumes the paused run through its task
token: approve -> the loop goes on (and runs the tools that waited for approval), reject -> the documented
refusal answer, answer -> the operator's text is the turn's answer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from agentplatform.bodies import NOT_BLANK
from agentplatform.bootstrap import container
from agentplatform.conversations import Escalation, EscalationStatus
from agentplatform.errors import Conflict
from agentplatform.principal import caller

SCOPE = "escalations"

router = APIGatewayHttpRouter()

_EscalationId = Annotated[
    str, Path(min_length=3, max_length=64, pattern=r"^e_[0-9a-f]+$", description="An escalation id.")
]
_STATUS = {
    "approve": EscalationStatus.APPROVED,
    "reject": EscalationStatus.REJECTED,
    "answer": EscalationStatus.ANSWERED,
}


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"action": "approve"}]})

    action: Literal["approve", "reject"]


class OperatorAnswer(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"action": "answer", "text": "Your order ships on Monday."}]}
    )

    action: Literal["answer"]
    text: Annotated[str, Field(min_length=1, max_length=16_000, pattern=NOT_BLANK, description="The user's answer.")]


# One of the two shapes, told apart by `action`: the schema itself says that `answer` needs `text`.
Resolution = Annotated[Decision | OperatorAnswer, Body(discriminator="action")]


class EscalationList(BaseModel):
    escalations: list[Escalation]


@router.get("/v1/escalations", summary="The tenant's open escalations", tags=["escalations"])
def list_escalations() -> EscalationList:
    principal = caller(router.current_event.raw_event, SCOPE)
    return EscalationList(escalations=container().conversations.escalations(principal.tenant))


@router.post(
    "/v1/escalations/<escalation_id>/resolve",
    summary="Resolve an escalation: approve, reject, or answer",
    tags=["escalations"],
    responses={409: {"description": "Resolved already, or timed out"}},
)
def resolve_escalation(escalation_id: _EscalationId, body: Resolution) -> Escalation:
    principal = caller(router.current_event.raw_event, SCOPE)
    c = container()
    store = c.conversations
    token = str(store.escalation_item(principal.tenant, escalation_id)["token"])  # another tenant's: 404
    text = body.text if isinstance(body, OperatorAnswer) else None
    closed = store.close_escalation(
        principal.tenant, escalation_id, _STATUS[body.action], by=principal.subject, resolution=text
    )
    try:
        c.task_tokens.succeed(token, {"action": body.action, "text": text, "by": principal.subject})
    except Conflict:
        store.table.update(
            {"pk": f"ESC#{principal.tenant}", "sk": escalation_id}, {"status": EscalationStatus.TIMED_OUT.value}
        )
        raise
    return closed
