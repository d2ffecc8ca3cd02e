"""The tools function's policy parameter and, with an SES identity in the context, its email: the identity, the
sender in its environment and ses:SendEmail on that identity for that From address only; cdk-nag clean (the synth
fails on an unexplained finding). Bad email context fails the synth naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.tools.policy import DEFAULT_POLICY_PATH
from infra.cdk.email import SENDER_ENV
from infra.cdk.tool_policy import POLICY_ENV
from tests.infra.cdk_synth import Synth, text
from tests.infra.conftest import _synth

pytestmark = pytest.mark.infra

EMAIL_CONTEXT = {
    "agentplatform:emailIdentity": "mail.example.com",
    "agentplatform:emailSender": "agent@mail.example.com",
}


@pytest.fixture(scope="module")
def email_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out.email"), EMAIL_CONTEXT)


def _tools_env(synth: Synth) -> dict[str, Any]:
    return synth.props("function:tools")["Environment"]["Variables"]


def _tools_statements(synth: Synth) -> list[dict[str, Any]]:
    role = synth.target(synth.props("function:tools")["Role"])[0]
    return synth.role_statements(role)


def test_the_tools_function_reads_the_shipped_policy_from_its_parameter_only(synth: Synth) -> None:
    lid, _ = synth.target(_tools_env(synth)[POLICY_ENV])
    parameter = synth.resources[lid]
    assert parameter["Type"] == "AWS::SSM::Parameter"
    assert json.loads(text(parameter["Properties"]["Value"])) == json.loads(DEFAULT_POLICY_PATH.read_text())
    reads = [s for s in _tools_statements(synth) if "ssm:GetParameter" in str(s["Action"])]
    assert len(reads) == 1 and lid in json.dumps(reads[0]["Resource"])


def test_without_an_identity_there_is_no_email(synth: Synth) -> None:
    assert SENDER_ENV not in _tools_env(synth)
    assert not synth.of_type("AWS::SES::EmailIdentity")
    assert not [s for s in _tools_statements(synth) if "ses:" in json.dumps(s["Action"])]


def test_with_an_identity_the_tools_function_sends_as_it_and_nothing_else(email_synth: Synth) -> None:
    [identity] = email_synth.of_type("AWS::SES::EmailIdentity").values()
    assert identity["Properties"]["EmailIdentity"] == "mail.example.com"
    assert _tools_env(email_synth)[SENDER_ENV] == "agent@mail.example.com"
    [send] = [s for s in _tools_statements(email_synth) if "ses:" in json.dumps(s["Action"])]
    assert send["Action"] == "ses:SendEmail"
    assert text(send["Resource"]).endswith(":identity/mail.example.com")
    assert send["Condition"] == {"StringEquals": {"ses:FromAddress": "agent@mail.example.com"}}
    others = [f for f in email_synth.of_type("AWS::IAM::Policy").values() if "ses:" in json.dumps(f)]
    assert len(others) == 1  # the tools function's policy alone


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"agentplatform:emailIdentity": "not a domain"}, "agentplatform:emailIdentity"),
        (
            {"agentplatform:emailIdentity": "mail.example.com", "agentplatform:emailSender": "eve@evil.example"},
            "agentplatform:emailSender",
        ),
    ],
)
def test_bad_email_context_fails_naming_the_key(context: dict[str, str], key: str) -> None:
    from infra.cdk.email import email_context

    class _Node:
        def try_get_context(self, name: str) -> Any:
            return context.get(name)

    with pytest.raises(ValueError, match=key):
        email_context(_Node())  # type: ignore[arg-type]
