"""The per-tenant tool policy through the ToolService: deny by default, approval, argument limits (recipient domains,
file size, an order's account over the shipped SQLite data set), and a bad policy that refuses to load naming the
field. The repo's policy files follow the model's JSON Schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentplatform.adapters.local.outbox import OutboxEmailSender
from agentplatform.adapters.sqlite_db import SqliteDatabase
from agentplatform.errors import ConfigurationError
from agentplatform.outbox import Outbox
from agentplatform.tools import ToolCaller, ToolCallRequest
from functions.tools import erp_order_status, knowledge, send_email, write_file
from functions.tools.policy import ToolPolicy, parse_tool_policy
from functions.tools.registry import ToolRegistry, ToolSpec
from functions.tools.service import ToolService
from local.crm_db import ensure_database
from tests.fakes import MemoryObjectStore, MemoryTable

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def probe_spec(name: str) -> ToolSpec:
    """A tool that reports what it was given: the limits the policy passed in."""
    return ToolSpec(
        name=name,
        description="probe",
        parameters={"type": "object"},
        result_schema={"type": "object"},
        run=lambda arguments, ctx: {"limits": dict(ctx.limits)},
    )


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_database(tmp_path_factory.mktemp("crm") / "crm.sqlite3")


def service(policy: dict[str, Any], db_path: Path | None = None) -> tuple[ToolService, Outbox]:
    outbox = Outbox(MemoryTable())
    resources: dict[str, Any] = {"email_sender": OutboxEmailSender(outbox), "files_bucket": MemoryObjectStore()}
    if db_path:
        resources["sql_database"] = SqliteDatabase(db_path)
    specs = [knowledge.SPEC, send_email.SPEC, write_file.SPEC, erp_order_status.SPEC, probe_spec("sql_query")]
    parsed = parse_tool_policy(policy, "test")
    return ToolService(ToolRegistry(specs), lambda: parsed, resources), outbox


def call(svc: ToolService, name: str, arguments: Any, tenant: str = "acme", approved: bool = False, key: str = "k1"):
    caller = ToolCaller(tenant=tenant, user="alice", idempotency_key=key, conversation_id="c1")
    return svc.call(ToolCallRequest(caller=caller, name=name, arguments=arguments, approved=approved))


EMAIL = {"to": ["bob@acme.example"], "subject": "Hi", "body": "Hello"}


def test_a_tool_the_policy_does_not_name_is_neither_listed_nor_run():
    svc, outbox = service({"version": "1", "tenants": {"*": {"allow": ["knowledge_search"]}}})
    caller = ToolCaller(tenant="acme", user="alice")
    assert [t.name for t in svc.describe(caller).tools] == ["knowledge_search"]
    refused = call(svc, "send_email", EMAIL, approved=True)
    assert refused.status == "error" and "unknown tool 'send_email'" in refused.error
    assert outbox.list("acme") == ([], None)
    nothing = service({"version": "1", "tenants": {"globex": {"allow": ["*"]}}})[0]
    assert nothing.describe(caller).tools == []  # no "*" entry: acme gets nothing


def test_email_needs_approval_by_default_and_a_tenant_may_add_or_waive_approvals():
    svc, outbox = service(
        {
            "version": "1",
            "tenants": {
                "*": {"allow": ["send_email", "write_file"], "approval": ["write_file"]},
                "trusted": {"allow": ["send_email"], "no_approval": ["send_email"]},
            },
        }
    )
    described = {t.name: t.requires_approval for t in svc.describe(ToolCaller(tenant="acme", user="a")).tools}
    assert described == {"send_email": True, "write_file": True}
    assert call(svc, "send_email", EMAIL).status == "needs_approval"
    assert call(svc, "write_file", {"path": "a.txt", "content": "x"}).status == "needs_approval"
    assert outbox.list("acme") == ([], None)
    assert call(svc, "send_email", EMAIL, tenant="trusted").status == "ok"
    assert len(outbox.list("trusted")[0]) == 1


def test_recipients_outside_the_allowed_domains_are_refused_with_the_reason():
    limits = {"send_email": {"allowed_domains": ["acme.example", "*.partners.example"], "max_recipients": 2}}
    svc, outbox = service({"version": "1", "tenants": {"*": {"allow": ["send_email"], "limits": limits}}})
    for to, cc in ((["bob@acme.example"], []), (["x@eu.partners.example"], ["y@partners.example"])):
        assert call(svc, "send_email", {**EMAIL, "to": to, "cc": cc}, approved=True, key=to[0]).status == "ok"
    outside = call(svc, "send_email", {**EMAIL, "cc": ["eve@evil.example"]}, approved=True, key="k9")
    assert outside.status == "error" and "eve@evil.example not in the allowed domains" in outside.error
    lookalike = call(svc, "send_email", {**EMAIL, "to": ["bob@notacme.example"]}, approved=True, key="k8")
    assert lookalike.status == "error" and "allowed domains" in lookalike.error
    many = call(svc, "send_email", {**EMAIL, "cc": ["a@acme.example", "b@acme.example"]}, approved=True, key="k7")
    assert many.status == "error" and "at most 2" in many.error
    assert len(outbox.list("acme")[0]) == 2  # the refused ones never reached the outbox


def test_write_file_max_bytes_and_sql_max_rows_come_from_the_policy():
    limits = {"write_file": {"max_bytes": 10}, "sql_query": {"max_rows": 5}}
    svc, _ = service({"version": "1", "tenants": {"*": {"allow": ["write_file", "sql_query"], "limits": limits}}})
    assert call(svc, "write_file", {"path": "a.txt", "content": "0123456789"}).status == "ok"
    big = call(svc, "write_file", {"path": "a.txt", "content": "0123456789!"})
    assert big.status == "error" and "11 bytes" in big.error and "up to 10" in big.error
    assert call(svc, "sql_query", {}).result == {"limits": {"max_rows": 5}}


def test_order_lookups_only_for_allow_listed_accounts(db_path: Path):
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute(
            "SELECT order_number, account_id FROM orders WHERE tenant = 'acme' ORDER BY order_number"
        ).fetchall()
    allowed = rows[0][1]
    other = next((number for number, account in rows if account != allowed), None)
    assert other is not None, "the data set needs acme orders on two accounts"
    limits = {"erp_order_status": {"accounts": [allowed]}}
    svc, _ = service({"version": "1", "tenants": {"*": {"allow": ["erp_order_status"], "limits": limits}}}, db_path)
    assert call(svc, "erp_order_status", {"order_number": rows[0][0]}).status == "ok"
    refused = call(svc, "erp_order_status", {"order_number": other})
    assert refused.status == "error" and "refused by the tool policy" in refused.error


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"version": "1", "tenants": {"*": {"allow": ["x"], "limits": {"send_emial": {}}}}}, "limits.send_emial"),
        (
            {"version": "1", "tenants": {"*": {"limits": {"send_email": {"allowed_domains": ["Evil Domain"]}}}}},
            "limits.send_email.allowed_domains.0",
        ),
        ({"version": "1", "tenants": {"*": {"limits": {"write_file": {"max_bytes": 0}}}}}, "write_file.max_bytes"),
        ({"version": "1", "tenants": {"*": {"limits": {"sql_query": {"max_rows": 10_000}}}}}, "sql_query.max_rows"),
        ({"version": "1", "tenants": {"*": {"alow": ["send_email"]}}}, "tenants.*.alow"),
        ({"tenants": {}}, "version"),
    ],
)
def test_a_bad_policy_refuses_to_load_naming_the_field(policy, field):
    with pytest.raises(ConfigurationError) as refused:
        parse_tool_policy(policy, "policies/tools.json")
    assert field in str(refused.value)
    assert any(field in error.as_dict()["field"] for error in refused.value.errors)


def test_a_tool_that_both_needs_and_waives_approval_is_refused():
    with pytest.raises(ConfigurationError) as refused:
        parse_tool_policy({"version": "1", "tenants": {"*": {"approval": ["a"], "no_approval": ["a"]}}}, "p")
    assert "tenants.*" in str(refused.value)


def test_registered_mcp_servers_tools_need_the_policy_to_name_them():
    policy = ToolPolicy.model_validate({"version": "1", "tenants": {"acme": {"allow": ["mcp:weather"]}}})
    assert policy.allowed("acme", "weather__forecast") and not policy.allowed("acme", "other__forecast")
    assert policy.allows_remote("acme") and not policy.allows_remote("globex")


def test_the_schema_file_is_the_models_and_the_shipped_policy_follows_it():
    schema = json.loads((POLICIES / "tools.schema.json").read_text())
    assert schema == json.loads(json.dumps(ToolPolicy.model_json_schema(by_alias=True))), "regenerate the schema"
    shipped = json.loads((POLICIES / "tools.json").read_text())
    jsonschema.validate(shipped, schema)
    parse_tool_policy(shipped, "policies/tools.json")


def test_the_service_never_takes_the_tenant_from_arguments():
    svc, outbox = service({"version": "1", "tenants": {"*": {"allow": ["send_email"], "no_approval": ["send_email"]}}})
    injected = call(svc, "send_email", {**EMAIL, "tenant": "globex"})
    assert injected.status == "error" and "invalid arguments" in injected.error
    assert outbox.list("globex") == ([], None) and outbox.list("acme") == ([], None)
