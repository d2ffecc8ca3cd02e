"""Email on the local stack: the outbox row is the delivery (`GET /v1/outbox` shows it); nothing leaves the
machine. One row per idempotency key, so a repeated request is reported as the earlier one."""

from __future__ import annotations

import hashlib

from agentplatform.outbox import EmailMessage, Outbox, SentEmail


class OutboxEmailSender:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def send(
        self,
        tenant: str,
        message: EmailMessage,
        *,
        idempotency_key: str,
        requested_by: str,
        conversation_id: str | None = None,
    ) -> SentEmail:
        return self._outbox.claim(
            tenant,
            idempotency_key,
            message,
            transport="outbox",
            status="sent",
            requested_by=requested_by,
            conversation_id=conversation_id,
            message_id="local-" + hashlib.sha256(f"{tenant}|{idempotency_key}".encode()).hexdigest()[:24],
        )
