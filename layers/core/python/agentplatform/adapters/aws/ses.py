"""Email through Amazon SES (sesv2 SendEmail), at most once per idempotency key.

The outbox row is claimed before SES is called: a repeated key finds it and returns it instead of sending again.
A send that fails is recorded `failed`; one interrupted between the claim and SES's answer stays `sending` and is
not repeated either (it may have gone out). The row keeps what was sent and SES's message id (the audit record).
"""

from __future__ import annotations

from typing import Any

from agentplatform.adapters.aws.errors import aws_call
from agentplatform.errors import PlatformError
from agentplatform.outbox import EmailMessage, Outbox, SentEmail

_CHARSET = "UTF-8"


class SesEmailSender:
    def __init__(self, outbox: Outbox, sender: str, client: Any) -> None:
        self._outbox = outbox
        self._sender = sender  # the verified SES identity's address the tools function may send as
        self._ses = client

    def send(
        self,
        tenant: str,
        message: EmailMessage,
        *,
        idempotency_key: str,
        requested_by: str,
        conversation_id: str | None = None,
    ) -> SentEmail:
        claimed = self._outbox.claim(
            tenant,
            idempotency_key,
            message,
            transport="ses",
            status="sending",
            requested_by=requested_by,
            conversation_id=conversation_id,
        )
        if claimed.duplicate:
            return claimed
        request: dict[str, Any] = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": list(message.to), "CcAddresses": list(message.cc)},
            "Content": {
                "Simple": {
                    "Subject": {"Data": message.subject, "Charset": _CHARSET},
                    "Body": {"Text": {"Data": message.body, "Charset": _CHARSET}},
                }
            },
            # SES tag values allow [A-Za-z0-9_-] only: the tenant id is that, the key is hex.
            "EmailTags": [{"Name": "tenant", "Value": tenant}, {"Name": "request", "Value": idempotency_key}],
        }
        try:
            with aws_call("ses"):
                out = self._ses.send_email(**request)
        except PlatformError as exc:
            self._outbox.finish(tenant, idempotency_key, status="failed", error=exc.context.get("aws_code") or exc.code)
            raise
        entry = self._outbox.finish(tenant, idempotency_key, status="sent", message_id=str(out["MessageId"]))
        return SentEmail(entry=entry, duplicate=False)
