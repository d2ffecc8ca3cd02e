"""The API's MCP server (JSON-RPC over one POST, stateless) and the SSRF checks on MCP server URLs."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as mt
import pytest

from agentplatform.errors import ValidationFailed
from agentplatform.mcp_servers import address_refusal, check_url
from agentplatform.principal import Principal
from agentplatform.tools import ToolCaller, ToolCallRequest, ToolsClient
from functions.api.mcp_protocol import LATEST, McpTools, handle
from functions.tools.mcp_remote import as_json, server_of
from functions.tools.policy import parse_tool_policy
from functions.tools.registry import ToolFailed, ToolRegistry, ToolSpec
from functions.tools.service import ToolService

SEARCH = {
    "name": "knowledge_search",
    "description": "Search the tenant's documents.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
EMAIL = {"name": "send_email", "description": "Send an email.", "parameters": {"type": "object"}, "side_effect": True}


class ToolsFunction:
    """The tools function's answers, recording what the API sent it."""

    name = "tools"

    def __init__(self, outcome: dict[str, Any] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.outcome = outcome or {"status": "ok", "result": {"hits": [{"text": "Refunds take 5 days."}]}}

    def invoke(self, payload: dict[str, Any]) -> Any:
        self.sent.append(dict(payload))
        if payload["action"] == "describe":
            return {"tools": [SEARCH, {**EMAIL, "requires_approval": True}]}
        return self.outcome


def post(message: Any, function: ToolsFunction | None = None, **headers: str) -> tuple[int, dict[str, str], Any]:
    principal = Principal(tenant="acme", subject="alice", scopes=frozenset({"tools"}), groups=("staff",))
    tools = McpTools(ToolsClient(function or ToolsFunction()), principal)
    body = message if isinstance(message, str) else json.dumps(message)
    response = handle(body, {"accept": "application/json, text/event-stream", **headers}, tools)
    return response.status_code, response.headers, json.loads(response.body) if response.body else None


def rpc(method: str, params: dict[str, Any] | None = None, id_: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params is not None else {})}


def test_initialize_negotiates_a_version_it_speaks_and_echoes_one_it_shares():
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    status, headers, answer = post(rpc("initialize", params))
    assert status == 200
    result = mt.InitializeResult.model_validate(answer["result"])
    assert result.protocol_version == "2025-06-18" and result.capabilities.tools is not None
    assert headers["MCP-Protocol-Version"] == "2025-06-18"
    assert "Mcp-Session-Id" not in headers  # stateless: no session to keep

    _, _, newer = post(rpc("initialize", {**params, "protocolVersion": "2099-01-01"}))
    assert newer["result"]["protocolVersion"] == LATEST


def test_notifications_and_client_responses_are_accepted_with_202_and_no_body():
    assert post({"jsonrpc": "2.0", "method": "notifications/initialized"})[::2] == (202, None)
    assert post({"jsonrpc": "2.0", "id": 7, "result": {}})[::2] == (202, None)


def test_tools_list_is_the_callers_tenant_tools_with_their_schemas():
    function = ToolsFunction()
    status, _, answer = post(rpc("tools/list"), function)
    assert status == 200
    tools = {t.name: t for t in mt.ListToolsResult.model_validate(answer["result"]).tools}
    assert tools["knowledge_search"].input_schema == SEARCH["parameters"]
    assert tools["knowledge_search"].annotations.read_only_hint is True
    assert tools["send_email"].annotations.read_only_hint is False
    caller = function.sent[0]["caller"]
    assert (caller["tenant"], caller["user"], caller["channel"], caller["groups"]) == (
        "acme",
        "alice",
        "mcp",
        ["staff"],
    )


def test_tools_call_answers_the_result_as_text_and_structured_content():
    function = ToolsFunction()
    status, _, answer = post(
        rpc("tools/call", {"name": "knowledge_search", "arguments": {"query": "refunds"}}), function
    )
    result = mt.CallToolResult.model_validate(answer["result"])
    assert status == 200 and result.is_error is False
    assert result.structured_content == {"hits": [{"text": "Refunds take 5 days."}]}
    assert json.loads(result.content[0].text) == result.structured_content
    sent = function.sent[0]
    assert sent["name"] == "knowledge_search" and sent["arguments"] == {"query": "refunds"}
    assert sent["caller"]["tenant"] == "acme" and sent["caller"]["idempotency_key"].startswith("mcp-")


def test_a_tool_that_needs_approval_is_a_tool_error_pointing_to_a_conversation():
    function = ToolsFunction({"status": "needs_approval", "error": "send_email needs an operator's approval"})
    _, _, answer = post(rpc("tools/call", {"name": "send_email", "arguments": {}}), function)
    result = mt.CallToolResult.model_validate(answer["result"])
    assert result.is_error is True
    assert "only possible in a conversation" in result.content[0].text


def test_a_failed_tool_is_a_tool_error_with_the_services_reason():
    function = ToolsFunction({"status": "error", "error": "invalid arguments (query): 'query' is a required property"})
    _, _, answer = post(rpc("tools/call", {"name": "knowledge_search", "arguments": {}}), function)
    assert answer["result"]["isError"] is True and "required property" in answer["result"]["content"][0]["text"]


def test_ping_answers_an_empty_result():
    assert post(rpc("ping", id_=9))[2] == {"jsonrpc": "2.0", "id": 9, "result": {}}


@pytest.mark.parametrize(
    ("message", "status", "code"),
    [
        (rpc("resources/list"), 200, mt.METHOD_NOT_FOUND),
        (rpc("tools/call", {"arguments": {}}), 200, mt.INVALID_PARAMS),  # no name
        (rpc("initialize", {"protocolVersion": "2025-06-18"}), 200, mt.INVALID_PARAMS),
        ("{not json", 400, mt.PARSE_ERROR),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, 400, mt.INVALID_REQUEST),
        ({"id": 1}, 400, mt.INVALID_REQUEST),
    ],
)
def test_bad_messages_get_json_rpc_errors(message, status, code):
    function = ToolsFunction()
    got, _, answer = post(message, function)
    assert got == status
    assert answer["jsonrpc"] == "2.0" and answer["error"]["code"] == code
    assert "id" in answer  # null where the request's id could not be read
    assert not [s for s in function.sent if s["action"] == "call"]


def test_an_unsupported_protocol_version_header_is_400_and_a_json_only_accept_is_required():
    status, _, answer = post(rpc("ping"), **{"mcp-protocol-version": "1999-01-01"})
    assert status == 400 and answer["error"]["code"] == mt.INVALID_REQUEST
    assert post(rpc("ping"), **{"mcp-protocol-version": "2025-06-18"})[0] == 200
    assert post(rpc("ping"), accept="text/event-stream")[0] == 406


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/mcp",  # plain http off the local machine
        "http://10.0.0.5/mcp",
        "https://169.254.169.254/latest/meta-data",  # the instance metadata service
        "https://[fe80::1]/mcp",
        "https://[fd00:ec2::254]/mcp",
        "https://0.0.0.0/mcp",
        "ftp://example.com/mcp",
        "https://user:pw@example.com/mcp",
        "https:///mcp",
    ],
)
def test_urls_that_could_reach_the_platforms_own_network_are_refused_naming_the_field(url):
    with pytest.raises(ValidationFailed) as refused:
        check_url(url, local=True)
    assert refused.value.errors[0].as_dict()["field"] == "body.url"


def test_loopback_http_only_locally_and_private_addresses_only_locally():
    assert check_url("http://127.0.0.1:8123/mcp", local=True)
    assert check_url("https://mcp.example.com/mcp", local=False)
    with pytest.raises(ValidationFailed):
        check_url("http://127.0.0.1:8123/mcp", local=False)
    with pytest.raises(ValidationFailed):
        check_url("https://10.1.2.3/mcp", local=False)
    import ipaddress

    assert address_refusal(ipaddress.ip_address("127.0.0.1"), local=True) is None
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), local=False)


def test_a_remote_result_becomes_json_and_a_remote_error_fails_the_call():
    ok = mt.CallToolResult(content=[mt.TextContent(text="42 open tickets")], structured_content={"open": 42})
    assert as_json(ok) == {"text": "42 open tickets", "structured": {"open": 42}}
    with pytest.raises(ToolFailed, match="no such ticket"):
        as_json(mt.CallToolResult(content=[mt.TextContent(text="no such ticket")], is_error=True))
    assert server_of("crm__lookup") == "crm" and server_of("knowledge_search") is None


class StubRemote:
    """A tenant's registered servers' tools, as RemoteTools hands them to the service."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

        def run(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
            self.calls.append({"tenant": ctx.tenant, **arguments})
            return {"text": "42", "structured": {"open": 42}}

        self.tickets = ToolSpec(
            name="tickets__open_tickets",
            description="[tickets] Open tickets.",
            parameters={"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]},
            result_schema={"type": "object"},
            run=run,
        )

    def specs(self, tenant: str) -> list[ToolSpec]:
        return [self.tickets] if tenant == "acme" else []

    def spec(self, tenant: str, name: str) -> ToolSpec | None:
        return next((s for s in self.specs(tenant) if s.name == name), None)


def remote_service(allow: list[str]) -> tuple[ToolService, StubRemote]:
    policy = parse_tool_policy({"version": "t", "tenants": {"acme": {"allow": allow}}}, "test")
    remote = StubRemote()
    return ToolService(ToolRegistry([]), lambda: policy, remote=remote), remote  # type: ignore[arg-type]


@pytest.mark.parametrize("allow", [["mcp:tickets"], ["tickets__open_tickets"], ["mcp:*"]])
def test_a_registered_servers_tool_is_listed_and_runs_when_the_policy_names_it(allow):
    service, remote = remote_service(allow)
    caller = ToolCaller(tenant="acme", user="alice", channel="mcp")
    assert [t.name for t in service.describe(caller).tools] == ["tickets__open_tickets"]
    result = service.call(ToolCallRequest(caller=caller, name="tickets__open_tickets", arguments={"customer": "x"}))
    assert result.status == "ok" and result.result == {"text": "42", "structured": {"open": 42}}
    assert remote.calls == [{"tenant": "acme", "customer": "x"}]
    invalid = service.call(ToolCallRequest(caller=caller, name="tickets__open_tickets", arguments={}))
    assert invalid.status == "error" and "customer" in (invalid.error or "")


def test_a_registered_servers_tool_is_neither_listed_nor_run_when_the_policy_does_not_name_it():
    service, remote = remote_service(["knowledge_search", "mcp:crm"])
    caller = ToolCaller(tenant="acme", user="alice")
    assert service.describe(caller).tools == []
    refused = service.call(ToolCallRequest(caller=caller, name="tickets__open_tickets", arguments={"customer": "x"}))
    assert refused.status == "error" and remote.calls == []
