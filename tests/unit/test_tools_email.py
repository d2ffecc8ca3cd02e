"""send_email: the outbox (DynamoDB on moto in-process) sends once per idempotency key, locally and through SES
(sesv2 behind botocore's Stubber, so the exact SendEmail request is checked); approval is the default."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from agentplatform.adapters.aws.ses import SesEmailSender
from agentplatform.adapters.aws.storage import DynamoTable
from agentplatform.adapters.local.outbox import OutboxEmailSender
from agentplatform.errors import DependencyRejected
from agentplatform.outbox import EmailMessage, Outbox
from functions.tools import send_email
from functions.tools.registry import ToolContext, ToolRegistry

MESSAGE = EmailMessage(to=["bob@example.com"], cc=["ops@example.com"], subject="Order SO-10042", body="It shipped.")


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="outbox",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Outbox(DynamoTable("outbox", ddb))


def ses_stub() -> tuple[object, Stubber]:
    client = boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def ctx(sender, key: str = "k1", tenant: str = "acme") -> ToolContext:
    return ToolContext(
        tenant=tenant,
        user="alice",
        groups=(),
        conversation_id="c1",
        turn=1,
        step=0,
        call_id="call0",
        idempotency_key=key,
        resources={"email_sender": sender} if sender else {},
    )


def test_a_repeated_key_sends_once(outbox):
    # Sequential on purpose: the claim's atomicity is DynamoDB's conditional write; moto in-process does not lock
    # (8 racing threads got 2 winners there), so a concurrent test here would test moto.
    sender = OutboxEmailSender(outbox)
    results = [sender.send("acme", MESSAGE, idempotency_key="k1", requested_by="u") for _ in range(4)]
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.entry.message_id for r in results}) == 1
    entries, _ = outbox.list("acme")
    assert [(e.id, e.status, e.to) for e in entries] == [("k1", "sent", ["bob@example.com"])]
    assert outbox.list("globex") == ([], None)  # another tenant's outbox is empty


def test_the_outbox_lists_a_page_at_a_time(outbox):
    sender = OutboxEmailSender(outbox)
    for i in range(5):
        sender.send("acme", MESSAGE, idempotency_key=f"k{i}", requested_by="u")
    seen, after = [], None
    while True:
        page, after = outbox.list("acme", limit=2, after=after)
        seen += [e.id for e in page]
        if after is None:
            break
    assert seen == [f"k{i}" for i in range(5)]


def test_ses_gets_the_message_once_and_the_outbox_keeps_the_audit_record(outbox):
    client, stub = ses_stub()
    expected = {
        "FromEmailAddress": "agent@mail.example.com",
        "Destination": {"ToAddresses": ["bob@example.com"], "CcAddresses": ["ops@example.com"]},
        "Content": {
            "Simple": {
                "Subject": {"Data": "Order SO-10042", "Charset": "UTF-8"},
                "Body": {"Text": {"Data": "It shipped.", "Charset": "UTF-8"}},
            }
        },
        "EmailTags": [{"Name": "tenant", "Value": "acme"}, {"Name": "request", "Value": "k1"}],
    }
    stub.add_response("send_email", {"MessageId": "ses-0001"}, expected)  # one response: a second call would fail
    sender = SesEmailSender(outbox, "agent@mail.example.com", client)
    with stub:
        first = sender.send("acme", MESSAGE, idempotency_key="k1", requested_by="alice", conversation_id="c1")
        again = sender.send("acme", MESSAGE, idempotency_key="k1", requested_by="alice", conversation_id="c1")
    stub.assert_no_pending_responses()
    assert (first.duplicate, first.entry.status, first.entry.message_id) == (False, "sent", "ses-0001")
    assert (again.duplicate, again.entry.message_id) == (True, "ses-0001")
    [entry], _ = outbox.list("acme")
    assert entry.transport == "ses" and entry.body == "It shipped." and entry.sent_at is not None


def test_a_failed_ses_send_is_recorded_and_not_repeated(outbox):
    client, stub = ses_stub()
    stub.add_client_error("send_email", service_error_code="MessageRejected", http_status_code=400)
    sender = SesEmailSender(outbox, "agent@mail.example.com", client)
    with stub, pytest.raises(DependencyRejected):  # SES refused this message: a resend cannot help
        sender.send("acme", MESSAGE, idempotency_key="k1", requested_by="alice")
    with stub:  # no response queued: a second SES call would raise
        again = sender.send("acme", MESSAGE, idempotency_key="k1", requested_by="alice")
    assert again.duplicate and again.entry.status == "failed" and again.entry.error == "MessageRejected"


def test_the_tool_needs_approval_and_sends_once_per_key(outbox):
    registry = ToolRegistry([send_email.SPEC])
    sender = OutboxEmailSender(outbox)
    arguments = {"to": ["bob@example.com"], "subject": "Hello", "body": "Hi Bob"}
    waiting = registry.call("send_email", arguments, ctx(sender))
    assert waiting.status == "needs_approval" and outbox.list("acme") == ([], None)
    sent = registry.call("send_email", arguments, ctx(sender), approved=True)
    again = registry.call("send_email", arguments, ctx(sender), approved=True)
    assert sent.status == "ok" and sent.result["duplicate"] is False and again.result["duplicate"] is True
    assert len(outbox.list("acme")[0]) == 1
    assert registry.call("send_email", arguments, ctx(sender, key="k2"), approved=True).result["duplicate"] is False
    assert len(outbox.list("acme")[0]) == 2


@pytest.mark.parametrize(
    "arguments",
    [
        {"to": [], "subject": "s", "body": "b"},
        {"to": ["Bob <bob@example.com>"], "subject": "s", "body": "b"},
        {"to": ["bob@example.com"], "subject": "s\r\nBcc: eve@evil.example", "body": "b"},
        {"to": [f"u{i}@example.com" for i in range(11)], "subject": "s", "body": "b"},
        {"to": ["bob@example.com"], "subject": "s", "body": "b" * 20_001},
        {"to": ["bob@example.com"], "subject": "s", "body": "b", "bcc": ["eve@evil.example"]},
    ],
)
def test_malformed_or_oversized_emails_are_refused_before_anything_is_recorded(outbox, arguments):
    outcome = ToolRegistry([send_email.SPEC]).call(
        "send_email", arguments, ctx(OutboxEmailSender(outbox)), approved=True
    )
    assert outcome.status == "error" and "invalid arguments" in outcome.error
    assert outbox.list("acme") == ([], None)


def test_without_a_sender_the_tool_says_it_is_not_available():
    arguments = {"to": ["bob@example.com"], "subject": "Hello", "body": "Hi"}
    outcome = ToolRegistry([send_email.SPEC]).call("send_email", arguments, ctx(None), approved=True)
    assert outcome.status == "error" and "not available" in outcome.error
