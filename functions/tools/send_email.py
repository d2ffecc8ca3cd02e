"""`send_email`: an email from the tenant's agent, sent once an operator approved it (the agent loop's escalation).

It sends at most once per call (the call's idempotency key is the outbox row's key): a retried step, a redelivered
event or a second approval finds the earlier row and reports it. Which recipients a tenant may write to is the
tool policy's (policies/tools.json: `send_email.allowed_domains`), checked before the call runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentplatform.outbox import (
    ADDRESS_PATTERN,
    MAX_ADDRESS_CHARS,
    MAX_BODY_CHARS,
    MAX_RECIPIENTS,
    MAX_SUBJECT_CHARS,
    EmailMessage,
)
from agentplatform.ports import EmailSender
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec

_ADDRESSES = {
    "type": "array",
    "items": {"type": "string", "minLength": 3, "maxLength": MAX_ADDRESS_CHARS, "pattern": ADDRESS_PATTERN},
    "maxItems": MAX_RECIPIENTS,
    "uniqueItems": True,
}


def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    sender: EmailSender | None = ctx.resources.get("email_sender")
    if sender is None:
        raise ToolFailed("send_email is not available in this deployment")
    if not ctx.idempotency_key:
        raise ToolFailed("send_email needs the call's idempotency key; it was not given")
    try:
        message = EmailMessage.model_validate(arguments)
    except ValidationError as exc:  # the schema checked the same bounds; this is the model's own guard
        raise ToolFailed(f"invalid email: {exc.errors()[0]['msg']}") from exc
    sent = sender.send(
        ctx.tenant,
        message,
        idempotency_key=ctx.idempotency_key,
        requested_by=ctx.user,
        conversation_id=ctx.conversation_id or None,
    )
    entry = sent.entry
    if entry.status == "failed":
        raise ToolFailed(f"the email could not be sent ({entry.error}); it is not retried")
    return {
        "id": entry.id,
        "status": entry.status,
        "to": entry.to,
        "cc": entry.cc,
        "message_id": entry.message_id,
        "duplicate": sent.duplicate,
    }


SPEC = ToolSpec(
    name="send_email",
    description="Send a plain-text email on behalf of the user's organization. An operator approves every email "
    "before it is sent. Recipients may be limited to the organization's allowed domains.",
    parameters={
        "type": "object",
        "properties": {
            "to": {**_ADDRESSES, "minItems": 1, "description": "Recipients' addresses (1-10)."},
            "cc": {**_ADDRESSES, "description": "Copied addresses (0-10)."},
            "subject": {"type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_CHARS, "pattern": r"^[^\r\n]*$"},
            "body": {"type": "string", "minLength": 1, "maxLength": MAX_BODY_CHARS, "description": "Plain text."},
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": ["sent", "sending"]},
            "to": {"type": "array", "items": {"type": "string"}},
            "cc": {"type": "array", "items": {"type": "string"}},
            "message_id": {"type": ["string", "null"]},
            "duplicate": {"type": "boolean"},
        },
        "required": ["id", "status", "to", "duplicate"],
    },
    run=run,
    timeout_s=15.0,
    requires_approval=True,
    side_effect=True,
    needs=("email_sender",),
)
