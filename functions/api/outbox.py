"""`GET /v1/outbox`: a tenant's admins see every email its agents asked to send (once per request), with what was
sent, who asked, and how it ended. Locally the outbox is the delivery; in AWS it is the audit record of SES sends.

Admin only, like the API-key routes: API Gateway's JWT authorizer (users' tokens, never an API key) and the `admin`
scope, so a machine client cannot read the tenant's mail.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, Field

from agentplatform.bootstrap import container
from agentplatform.outbox import OutboxEntry
from agentplatform.principal import caller
from agentplatform.topology import ADMIN_SCOPE

router = APIGatewayHttpRouter()


class OutboxPage(BaseModel):
    emails: list[OutboxEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


@router.get("/v1/outbox", summary="The tenant's outbox: every email its agents asked to send", tags=["admin"])
def list_outbox(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> OutboxPage:
    principal = caller(router.current_event.raw_event, ADMIN_SCOPE)
    emails, next_cursor = container().outbox.list(principal.tenant, limit=limit, after=cursor)
    return OutboxPage(emails=emails, next_cursor=next_cursor)
