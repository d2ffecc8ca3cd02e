"""The outbox: one row per email the platform was asked to send, keyed on the request's idempotency key.

Both email adapters write here first with a conditional put on that key, so one key sends at most once whatever
retries the agent loop, Lambda or Step Functions make. Locally the row is the delivery (`GET /v1/outbox` shows
it); in AWS it is the audit record of what SES was given, with SES's message id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentplatform.errors import Conflict
from agentplatform.ports import KeyValueTable

# Bounds of one message: the tool's JSON Schema and the API's views use the same numbers.
MAX_RECIPIENTS = 10
MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 20_000
# An address as SES takes it: no display names, no header-breaking characters (RFC 5321's 254-octet path).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
ADDRESS_PATTERN = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$"
MAX_ADDRESS_CHARS = 254

EmailStatus = Literal["sending", "sent", "failed"]
Address = Annotated[str, Field(min_length=3, max_length=MAX_ADDRESS_CHARS, pattern=ADDRESS_PATTERN)]


class EmailMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: Annotated[list[Address], Field(min_length=1, max_length=MAX_RECIPIENTS)]
    cc: Annotated[list[Address], Field(max_length=MAX_RECIPIENTS)] = []
    subject: Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT_CHARS, pattern=r"^[^\r\n]*$")]
    body: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)]

    def recipients(self) -> list[str]:
        return [*self.to, *self.cc]


class OutboxEntry(BaseModel):
    """One email request as the outbox keeps it."""

    id: str = Field(description="The request's idempotency key.")
    to: list[str]
    cc: list[str]
    subject: str
    body: str
    status: EmailStatus = Field(
        description="sent; failed (the transport refused it); sending (a send began and never reported back: it "
        "is not repeated, it may have gone out)."
    )
    transport: Literal["outbox", "ses"]
    message_id: str | None = Field(default=None, description="The transport's id of the sent message.")
    error: str | None = None
    requested_by: str
    conversation_id: str | None = None
    created_at: str
    sent_at: str | None = None


class SentEmail(BaseModel):
    entry: OutboxEntry
    duplicate: bool = Field(description="An earlier request with this key sent (or tried to send) it already.")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Outbox:
    """The outbox table: partition `tenant#<tenant>`, sort key `email#<idempotency key>`."""

    def __init__(self, table: KeyValueTable, *, clock: Callable[[], str] = _now) -> None:
        self._table = table
        self._clock = clock

    @staticmethod
    def _key(tenant: str, key: str) -> dict[str, str]:
        return {"pk": f"tenant#{tenant}", "sk": f"email#{key}"}

    def claim(
        self,
        tenant: str,
        key: str,
        message: EmailMessage,
        *,
        transport: Literal["outbox", "ses"],
        status: EmailStatus,
        requested_by: str,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> SentEmail:
        """Record the request under its key unless one is there already (atomically): the new entry, or the
        earlier one marked `duplicate`."""
        if not key:
            raise ValueError("an email needs an idempotency key")
        now = self._clock()
        values: dict[str, Any] = {
            "id": key,
            **message.model_dump(),
            "status": status,
            "transport": transport,
            "requested_by": requested_by,
            "conversation_id": conversation_id,
            "created_at": now,
            "sent_at": now if status == "sent" else None,
            "message_id": message_id,
            "error": None,
        }
        if self._table.update(self._key(tenant, key), values, expect={"id": None}):
            return SentEmail(entry=OutboxEntry.model_validate(values), duplicate=False)
        earlier = self._table.get(self._key(tenant, key))
        if earlier is None:  # rows are never deleted: only a table emptied under us gets here
            raise Conflict(f"the outbox row {key} vanished while it was claimed", key=key)
        return SentEmail(entry=OutboxEntry.model_validate(earlier), duplicate=True)

    def finish(
        self, tenant: str, key: str, *, status: EmailStatus, message_id: str | None = None, error: str | None = None
    ) -> OutboxEntry:
        values = {"status": status, "message_id": message_id, "error": error}
        if status == "sent":
            values["sent_at"] = self._clock()
        self._table.update(self._key(tenant, key), values)
        item = self._table.get(self._key(tenant, key))
        return OutboxEntry.model_validate(item)

    def list(self, tenant: str, *, limit: int = 50, after: str | None = None) -> tuple[list[OutboxEntry], str | None]:
        """The tenant's emails a page at a time, in key order: (entries, the id to continue after)."""
        start = self._key(tenant, after) if after else None
        items, last = self._table.query({"pk": f"tenant#{tenant}"}, limit=limit, after=start)
        return [OutboxEntry.model_validate(i) for i in items], (last["sk"].removeprefix("email#") if last else None)
