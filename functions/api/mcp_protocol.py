"""The MCP server behind `/mcp` (functions/api/mcp.py): one POSTed JSON-RPC message in, its HTTP answer out.

Stateless Streamable HTTP: a request gets one `application/json` JSON-RPC response; a notification or a client's
response gets 202 and no body. There is no session (no `Mcp-Session-Id`) and no server-sent stream. The tools are
the caller's tenant's, under the same tool policy as the agent's: the tools function answers `describe` and `call`
with channel "mcp". Protocol messages are parsed and built with the SDK's types (`mcp_types`, which `mcp.types`
re-exports; imported from there because `mcp` itself loads the whole SDK, seconds of a cold start).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import mcp_types as mt
from aws_lambda_powertools.event_handler import Response
from pydantic import ValidationError

from agentplatform.observability import telemetry
from agentplatform.principal import Principal
from agentplatform.tools import ToolCaller, ToolCallRequest, ToolCallResult, ToolsClient
from functions.api.health import VERSION

# Streamable HTTP exists from 2025-03-26 on; JSON-RPC batches (2025-03-26 only) are not taken: the API refuses
# any body that is not one JSON object.
VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LATEST = VERSIONS[-1]
# A client that sends no MCP-Protocol-Version header is taken to speak the first version without one.
DEFAULT_VERSION = "2025-03-26"
# Fields of the SDK's result models that belong to the 2026 per-request era, not to the handshake versions.
_NEWER_FIELDS = {"result_type", "ttl_ms", "cache_scope"}
APPROVAL_ONLY_IN_CONVERSATION = (
    "{name} needs an operator's approval before it runs, and approval is only possible in a conversation "
    "(POST /v1/conversations/{{id}}/messages); it was not run"
)


class RpcError(Exception):
    def __init__(self, code: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


class McpTools:
    """The tools function, as the caller sees it over MCP."""

    def __init__(self, client: ToolsClient, principal: Principal) -> None:
        self.client = client
        self.caller = ToolCaller(
            tenant=principal.tenant, user=principal.subject, groups=principal.groups, channel="mcp"
        )

    def list(self) -> mt.ListToolsResult:
        tools = self.client.describe(self.caller).tools
        return mt.ListToolsResult(
            tools=[
                mt.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=t.parameters,
                    annotations=mt.ToolAnnotations(read_only_hint=not t.side_effect),
                )
                for t in tools
            ]
        )

    def call(self, params: mt.CallToolRequestParams, request_id: str) -> mt.CallToolResult:
        # A fresh key per call: MCP request ids restart with every client session, so they cannot key a side effect.
        caller_ = self.caller.model_copy(update={"call_id": request_id, "idempotency_key": f"mcp-{uuid.uuid4().hex}"})
        outcome = self.client.call(ToolCallRequest(caller=caller_, name=params.name, arguments=params.arguments or {}))
        telemetry("api").logger.info(
            "mcp tool call", extra={"tenant": caller_.tenant, "tool": params.name, "status": outcome.status}
        )
        return tool_result(params.name, outcome)


def tool_result(name: str, outcome: ToolCallResult) -> mt.CallToolResult:
    if outcome.status == "ok":
        result = outcome.result or {}
        return mt.CallToolResult(content=[mt.TextContent(text=json.dumps(result))], structured_content=result)
    text = APPROVAL_ONLY_IN_CONVERSATION.format(name=name) if outcome.status == "needs_approval" else outcome.error
    return mt.CallToolResult(content=[mt.TextContent(text=text or f"{name} failed")], is_error=True)


def handle(body: str, headers: dict[str, str], tools: McpTools) -> Response[str]:
    """One POSTed JSON-RPC message -> its HTTP answer (headers' names lower case)."""
    try:
        version = _header_version(headers)
        _check_accept(headers.get("accept"))
        message = _parse(body)
    except RpcError as exc:
        return _error(None, exc)
    if not isinstance(message, mt.JSONRPCRequest):
        return Response(status_code=202, content_type="application/json", body="")
    try:
        result = dispatch(message, version, tools)
    except RpcError as exc:
        return _error(message.id, exc)
    envelope = mt.JSONRPCResponse(jsonrpc="2.0", id=message.id, result=result)
    return _json(200, envelope.model_dump_json(by_alias=True), headers_for(message, result))


def dispatch(message: mt.JSONRPCRequest, version: str, tools: McpTools) -> dict[str, Any]:
    params = message.params or {}
    result: Any
    if message.method == "initialize":
        init = _params(mt.InitializeRequestParams, params)
        result = mt.InitializeResult(
            protocol_version=init.protocol_version if init.protocol_version in VERSIONS else LATEST,
            capabilities=mt.ServerCapabilities(tools=mt.ToolsCapability(list_changed=False)),
            server_info=mt.Implementation(name="agentplatform", version=VERSION),
            instructions="The tools of your tenant on the agent platform, under your tenant's tool policy.",
        )
    elif message.method == "ping":
        result = mt.EmptyResult()
    elif message.method == "tools/list":
        _params(mt.PaginatedRequestParams, params)  # one page: a cursor is accepted and changes nothing
        result = tools.list()
    elif message.method == "tools/call":
        result = tools.call(_params(mt.CallToolRequestParams, params), str(message.id))
    else:
        raise RpcError(mt.METHOD_NOT_FOUND, f"method {message.method!r} is not served (version {version})")
    return result.model_dump(by_alias=True, mode="json", exclude_none=True, exclude=_NEWER_FIELDS)


def headers_for(message: mt.JSONRPCRequest, result: dict[str, Any]) -> dict[str, str]:
    if message.method == "initialize":
        return {"MCP-Protocol-Version": str(result["protocolVersion"])}
    return {}


def _params(model: type[Any], params: dict[str, Any]) -> Any:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) or "params" for e in exc.errors())
        raise RpcError(mt.INVALID_PARAMS, f"invalid params: {where}") from None


def _header_version(headers: dict[str, str]) -> str:
    version = headers.get("mcp-protocol-version", DEFAULT_VERSION).strip()
    if version not in VERSIONS:
        raise RpcError(mt.INVALID_REQUEST, f"unsupported MCP-Protocol-Version {version!r}", http_status=400)
    return version


def _check_accept(accept: str | None) -> None:
    if accept is None:
        return
    media = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if not media & {"application/json", "application/*", "*/*"}:
        raise RpcError(mt.INVALID_REQUEST, "this server answers application/json only", http_status=406)


def _parse(body: str) -> Any:
    try:
        raw = json.loads(body)
    except ValueError:
        raise RpcError(mt.PARSE_ERROR, "the body is not JSON", http_status=400) from None
    try:
        return mt.jsonrpc_message_adapter.validate_python(raw)
    except ValidationError:
        raise RpcError(mt.INVALID_REQUEST, "the body is not a JSON-RPC 2.0 message", http_status=400) from None


def _error(request_id: Any, exc: RpcError) -> Response[str]:
    envelope = mt.JSONRPCError(jsonrpc="2.0", id=request_id, error=mt.ErrorData(code=exc.code, message=exc.message))
    return _json(exc.http_status, envelope.model_dump_json(by_alias=True, exclude_unset=True), {})


def _json(status: int, body: str, headers: dict[str, str]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)
