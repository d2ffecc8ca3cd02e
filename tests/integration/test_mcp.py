"""MCP in and out on the local stack, with the official `mcp` SDK on both ends.

In: the SDK's streamable HTTP client + ClientSession against the gateway's `/mcp` with an API key lists the
tenant's tools and calls knowledge_search over seeded passages; without a key the gateway answers 401.
Out: a real MCP server (the SDK's MCPServer, formerly FastMCP, over streamable HTTP on a localhost port) is
registered for acme through `/v1/mcp/servers`; the tools service lists its tool as `tickets__open_tickets` and the
agent loop calls it in a conversation turn when the (scripted) model asks for it. Another tenant never sees it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp.types as mt
import pytest
import requests
import uvicorn
from mcp import MCPError
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from agentplatform.topology import ADMIN_SCOPE, PLATFORM
from tests.integration.conftest import bearer, scripted_answer, seed_passages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = {
    "acme": [("refunds", "Refunds", "Refunds for damaged parcels are paid within five working days.")],
    "globex": [("globex", "Globex", "Globex refunds take ninety days.")],
}
POLICY = {
    "version": "test-mcp",
    "tenants": {
        "*": {"allow": ["knowledge_search", "escalate_to_human"]},
        "acme": {"allow": ["knowledge_search", "escalate_to_human", "mcp:tickets"]},
        "globex": {"allow": ["knowledge_search", "mcp:tickets"]},  # allowed, but globex registered no server
    },
}
TICKETS = {"initech": 3, "acme-corp": 42}


def ticket_server() -> MCPServer:
    server = MCPServer("tickets")

    @server.tool(annotations=mt.ToolAnnotations(read_only_hint=True))
    def open_tickets(customer: str) -> dict[str, Any]:
        """How many support tickets a customer has open."""
        return {"customer": customer, "open": TICKETS.get(customer, 0)}

    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tickets_url() -> Iterator[str]:
    port = free_port()
    app = ticket_server().streamable_http_app(stateless_http=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="mcp-tickets", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test MCP server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def runtime_overrides(tmp_path_factory):
    policy = tmp_path_factory.mktemp("policy") / "tools.json"
    policy.write_text(json.dumps(POLICY))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TOOLS_POLICY_PATH", str(policy))
        env.setenv("AGENT_MODEL_STEP", "always")  # the scripted model is asked after the first search
        yield {"LOCAL_MODELS": "embedding"}


def scripted_gateway(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Asks for the tickets tool once the first search ran, then answers with what the tool said."""
    question = next(m["content"] for m in event["messages"] if m["role"] == "user")
    tool_steps = sum(1 for m in event["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    message: dict[str, Any] = {"role": "assistant", "content": None}
    offered = [t["function"]["name"] for t in event.get("tools") or []]
    if event["task"] == "tool_use" and "TICKETS" in question and tool_steps == 1:
        assert "tickets__open_tickets" in offered, offered
        arguments = json.dumps({"customer": "acme-corp"})
        message["tool_calls"] = [
            {"id": "t1", "type": "function", "function": {"name": "tickets__open_tickets", "arguments": arguments}}
        ]
    elif event["task"] == "tool_use":
        message["content"] = "done"
    else:
        results = [m["content"] for m in event["messages"] if m["role"] == "tool"]
        message["content"] = f"Tool said: {results[-1] if results else 'nothing'}"
    return scripted_answer(message)


@pytest.fixture(scope="module")
def stack(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    gateway = runtime.provisioned.value("function:llm_gateway", "name")
    runtime.router.register(gateway, PLATFORM.function("llm_gateway"), scripted_gateway)
    seed_passages(DOCS)
    return runtime


def admin(rt, tenant: str) -> dict[str, str]:
    return bearer(rt, tenant, scopes=[ADMIN_SCOPE], subject=f"{tenant}-admin")


def api_key(rt, tenant: str, scopes: list[str]) -> str:
    created = requests.post(
        f"{rt.http_url}/v1/admin/api-keys",
        json={"name": "mcp-client", "scopes": scopes},
        headers=admin(rt, tenant),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def mcp_session(url: str, key: str | None, use):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        return init, await use(session)


def register(rt, tenant: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{rt.http_url}/v1/mcp/servers", json=body, headers=admin(rt, tenant), timeout=30)


def test_the_sdk_client_lists_and_calls_the_platforms_tools_with_an_api_key(stack):
    key = api_key(stack, "acme", ["tools"])

    async def use(session: ClientSession):
        listed = await session.list_tools()
        called = await session.call_tool("knowledge_search", {"query": "refunds for damaged parcels"})
        missing = await session.call_tool("knowledge_search", {})
        await session.send_ping()
        return listed, called, missing

    init, (listed, called, missing) = anyio.run(mcp_session, f"{stack.http_url}/mcp", key, use)
    assert init.protocol_version == "2025-11-25" and init.server_info.name == "agentplatform"
    names = {t.name for t in listed.tools}
    assert "knowledge_search" in names
    search = next(t for t in listed.tools if t.name == "knowledge_search")
    assert search.input_schema["properties"]["query"]["type"] == "string"
    assert called.is_error is False
    passages = called.structured_content["passages"]
    assert passages and "five working days" in passages[0]["text"]
    assert all("ninety" not in p["text"] for p in passages)  # globex's passage never reaches acme
    assert missing.is_error is True and "query" in missing.content[0].text


def test_without_credentials_mcp_is_401_with_www_authenticate(stack):
    answer = requests.post(
        f"{stack.http_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    with pytest.RaisesGroup(MCPError, flatten_subgroups=True):  # the SDK's error for the 401, in its task groups
        anyio.run(mcp_session, f"{stack.http_url}/mcp", None, lambda s: s.list_tools())
    no_scope = api_key(stack, "acme", ["search"])
    refused = requests.post(
        f"{stack.http_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": f"Bearer {no_scope}"},
        timeout=30,
    )
    assert refused.status_code == 403
    assert (
        requests.get(
            f"{stack.http_url}/mcp",
            headers={"Authorization": f"Bearer {api_key(stack, 'acme', ['tools'])}"},
            timeout=30,
        ).status_code
        == 405
    )


def test_registration_refuses_metadata_and_plain_http_urls_and_hides_the_auth_header(stack, tickets_url):
    for url in ("http://169.254.169.254/latest/meta-data", "https://169.254.169.254/mcp", "http://example.com/mcp"):
        refused = register(stack, "acme", {"name": "meta", "url": url})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "body.url"
    created = register(
        stack, "acme", {"name": "tickets", "url": tickets_url, "auth_header": "Bearer s3cret", "timeout_s": 5}
    )
    assert created.status_code == 201, created.text
    assert register(stack, "acme", {"name": "tickets", "url": tickets_url}).status_code == 409
    listed = requests.get(f"{stack.http_url}/v1/mcp/servers", headers=admin(stack, "acme"), timeout=30)
    assert listed.json()["servers"][0]["has_auth"] is True and "s3cret" not in listed.text
    others = requests.get(f"{stack.http_url}/v1/mcp/servers", headers=admin(stack, "globex"), timeout=30)
    assert others.json()["servers"] == []


def test_the_agent_calls_a_registered_servers_tool_in_a_turn(stack, tickets_url):
    servers = requests.get(f"{stack.http_url}/v1/mcp/servers", headers=admin(stack, "acme"), timeout=30).json()
    if not servers["servers"]:
        assert register(stack, "acme", {"name": "tickets", "url": tickets_url}).status_code == 201
    user = bearer(stack, "acme", scopes=["conversations"])
    cid = requests.post(f"{stack.http_url}/v1/conversations", json={}, headers=user, timeout=30).json()["id"]
    answer = requests.post(
        f"{stack.http_url}/v1/conversations/{cid}/messages",
        json={"content": "TICKETS: how many tickets does acme-corp have open?"},
        headers=user,
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    turn = answer.json()
    runs = [r for r in turn["tool_runs"] if r["name"] == "tickets__open_tickets"]
    assert len(runs) == 1 and runs[0]["status"] == "ok", turn["tool_runs"]
    assert runs[0]["result"]["structured"] == {"customer": "acme-corp", "open": 42}
    assert runs[0]["arguments"] == {"customer": "acme-corp"}

    # Over MCP too: acme's client sees the remote tool; globex (allowed by its policy, no server) does not.
    async def names(session: ClientSession) -> set[str]:
        return {t.name for t in (await session.list_tools()).tools}

    _, acme = anyio.run(mcp_session, f"{stack.http_url}/mcp", api_key(stack, "acme", ["tools"]), names)
    _, globex = anyio.run(mcp_session, f"{stack.http_url}/mcp", api_key(stack, "globex", ["tools"]), names)
    assert "tickets__open_tickets" in acme and "tickets__open_tickets" not in globex

    gone = requests.delete(f"{stack.http_url}/v1/mcp/servers/tickets", headers=admin(stack, "acme"), timeout=30)
    assert gone.status_code == 200 and gone.json()["name"] == "tickets"
    _, after = anyio.run(mcp_session, f"{stack.http_url}/mcp", api_key(stack, "acme", ["tools"]), names)
    assert "tickets__open_tickets" not in after
