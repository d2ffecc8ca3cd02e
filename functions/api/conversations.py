"""`/v1/conversations`: a user's conversations in their tenant, and asking in one.

Posting a message stores the turn first (the user's message is never lost), starts the agent loop with the
turn's identity as the execution name (the same turn never runs twice), then waits a bounded time for the
answer: 200 with the answered turn, or 202 with where to poll. Another user's or tenant's ids answer 404.
"""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from agentplatform.bodies import NOT_BLANK
from agentplatform.bootstrap import container
from agentplatform.conversations import MAX_MESSAGE_CHARS, Conversation, ConversationStore, Turn, TurnStatus
from agentplatform.errors import PlatformError
from agentplatform.principal import Principal, caller

SCOPE = "conversations"
POLL_S = 0.15

router = APIGatewayHttpRouter()

_ConversationId = Annotated[
    str, Path(min_length=3, max_length=64, pattern=r"^c_[0-9a-f]+$", description="A conversation id.")
]
_TurnNumber = Annotated[int, Path(ge=1, le=1_000_000, description="A turn's number in its conversation.")]


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Engine maintenance"}]})

    title: Annotated[str, Field(max_length=200)] = ""


class NewMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"content": "How often are the turbine blades inspected?"}]}
    )

    content: Annotated[
        str,
        Field(
            min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=NOT_BLANK, description="The user's message (not blank)."
        ),
    ]
    wait_s: Annotated[
        float | None,
        Field(strict=True, ge=0, le=28, description="How long to wait for the answer before 202 (default ~25 s)."),
    ] = None


class ConversationList(BaseModel):
    conversations: list[Conversation]


class ConversationDetail(Conversation):
    turns: list[Turn] = Field(description="The turns, oldest first, with their citations and tool runs.")


def _caller() -> Principal:
    return caller(router.current_event.raw_event, SCOPE)


@router.post(
    "/v1/conversations",
    summary="Start a conversation",
    tags=["conversations"],
    responses={201: {"description": "Created"}},
)
def create_conversation(body: NewConversation) -> Response[Conversation]:
    principal = _caller()
    conversation = container().conversations.create(principal.tenant, principal.subject, body.title)
    return Response(
        status_code=201,
        content_type="application/json",
        body=conversation,
        headers={"Location": f"/v1/conversations/{conversation.id}"},
    )


@router.get("/v1/conversations", summary="The caller's conversations, newest first", tags=["conversations"])
def list_conversations() -> ConversationList:
    principal = _caller()
    return ConversationList(conversations=container().conversations.list(principal.tenant, principal.subject))


@router.get(
    "/v1/conversations/<conversation_id>",
    summary="A conversation with its turns (answers, citations, tool calls)",
    tags=["conversations"],
)
def get_conversation(conversation_id: _ConversationId) -> ConversationDetail:
    principal = _caller()
    store = container().conversations
    header = store.get(principal.tenant, principal.subject, conversation_id)
    turns = store.turns(principal.tenant, principal.subject, conversation_id)
    return ConversationDetail(**header.model_dump(), turns=turns)


@router.get(
    "/v1/conversations/<conversation_id>/turns/<turn>",
    summary="One turn: its status while it runs, then its answer",
    tags=["conversations"],
)
def get_turn(conversation_id: _ConversationId, turn: _TurnNumber) -> Turn:
    principal = _caller()
    return container().conversations.turn(principal.tenant, principal.subject, conversation_id, turn)


@router.post(
    "/v1/conversations/<conversation_id>/messages",
    summary="Ask in a conversation",
    description="Waits up to `wait_s` for the answer: 200 with the answered (or failed) turn; else 202 with the "
    "turn so far and its URL in Location. A turn paused on an escalation answers 202 at once.",
    tags=["conversations"],
    responses={200: {"description": "The answered turn"}, 202: {"description": "Still running: poll Location"}},
)
def post_message(
    conversation_id: _ConversationId,
    body: NewMessage,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="idempotency-key",
            min_length=1,
            max_length=128,
            pattern=r"^[\x21-\x7e]+$",
            description="A retried request with the same key answers the same turn instead of asking again.",
        ),
    ] = None,
) -> Response[Turn]:
    principal = _caller()
    c = container()
    settings, store = c.settings, c.conversations
    if idempotency_key:
        earlier = store.claim_idempotency_key(principal.tenant, principal.subject, conversation_id, idempotency_key)
        if earlier is not None:  # a retry: the turn that key made, as it is now
            return _wait(store, principal, conversation_id, earlier, settings.conversation_wait_s, body.wait_s)
    turn = store.add_turn(principal.tenant, principal.subject, conversation_id, body.content)
    if idempotency_key:
        store.remember_idempotency_key(principal.tenant, conversation_id, idempotency_key, turn.turn)
    ctx = {
        "tenant": principal.tenant,
        "user": principal.subject,
        "groups": list(principal.groups),
        "conversation_id": conversation_id,
        "turn": turn.turn,
        "max_steps": settings.agent_max_steps,
        "wall_clock_s": settings.agent_wall_clock_s,
        "escalation_timeout_s": settings.escalation_timeout_s,
    }
    try:
        execution = c.agent_workflow.start({"ctx": ctx}, name=f"{conversation_id}-{turn.turn}")
    except PlatformError as exc:
        # The message stays, marked failed with the reason: the user can see it and ask again.
        store.update_turn(
            principal.tenant,
            conversation_id,
            turn.turn,
            {"status": "failed", "failure": type(exc).__name__, "answer": "The agent could not start; try again."},
        )
        raise
    store.update_turn(principal.tenant, conversation_id, turn.turn, {"execution_arn": execution})
    return _wait(store, principal, conversation_id, turn.turn, settings.conversation_wait_s, body.wait_s)


def _wait(
    store: ConversationStore, principal: Principal, conversation_id: str, n: int, default_s: float, wait_s: float | None
) -> Response[Turn]:
    deadline = time.monotonic() + (default_s if wait_s is None else wait_s)
    while True:
        current = store.turn(principal.tenant, principal.subject, conversation_id, n)
        if current.status in (TurnStatus.ANSWERED, TurnStatus.FAILED):
            return Response(status_code=200, content_type="application/json", body=current)
        if current.status == TurnStatus.WAITING or time.monotonic() >= deadline:
            location = f"/v1/conversations/{conversation_id}/turns/{n}"
            return Response(
                status_code=202, content_type="application/json", body=current, headers={"Location": location}
            )
        time.sleep(POLL_S)
