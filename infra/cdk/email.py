"""Email for the tools function's `send_email`: an SES identity and the right to send as it, nothing more.

CDK context `agentplatform:emailIdentity` names the identity (a domain, or one address); `agentplatform:emailSender`
the From address (default `agent@<domain>`, or the address itself). The stack creates the identity (a domain is
verified through the DKIM records SES publishes; an address by the mail SES sends it), puts the sender in the
tools function's EMAIL_SENDER, and grants `ses:SendEmail` on that identity only, for that From address only.
Without the context there is no identity, no grant and no EMAIL_SENDER: send_email then tells the model it is not
available in this deployment. A new SES account sends only to verified recipients until AWS lifts its sandbox.
"""

from __future__ import annotations

import re

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from constructs import Construct, Node

from agentplatform.outbox import ADDRESS_PATTERN

SENDER_ENV = "EMAIL_SENDER"
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


def email_context(node: Node) -> tuple[str, str] | None:
    """(identity, sender) from the context, or None when no identity is configured; ValueError names a bad key."""
    identity = str(node.try_get_context("agentplatform:emailIdentity") or "").strip().lower()
    if not identity:
        return None
    if not (re.match(ADDRESS_PATTERN, identity) or _DOMAIN.match(identity)):
        raise ValueError(f"agentplatform:emailIdentity: {identity!r} is neither a domain nor an address")
    default = identity if "@" in identity else f"agent@{identity}"
    sender = str(node.try_get_context("agentplatform:emailSender") or default).strip().lower()
    allowed = sender == identity if "@" in identity else sender.rpartition("@")[2] == identity
    if not re.match(ADDRESS_PATTERN, sender) or not allowed:
        raise ValueError(f"agentplatform:emailSender: {sender!r} is not an address of the identity {identity}")
    return identity, sender


class ToolsEmail(Construct):
    def __init__(self, scope: Construct, id: str, *, function: lambda_.Function, identity: str, sender: str) -> None:
        super().__init__(scope, id)
        self.identity = ses.EmailIdentity(
            self,
            "Identity",
            identity=ses.Identity.email(identity) if "@" in identity else ses.Identity.domain(identity),
        )
        function.add_environment(SENDER_ENV, sender)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail"],
                resources=[f"arn:{Aws.PARTITION}:ses:{Aws.REGION}:{Aws.ACCOUNT_ID}:identity/{identity}"],
                conditions={"StringEquals": {"ses:FromAddress": sender}},
            )
        )
