"""`/v1/mcp/servers`: a tenant's admins register the external MCP servers whose tools the tenant's agents may call.

The tools service lists each server's tools as `<server>__<tool>` and calls them under the tenant's tool policy;
registering a server does not allow its tools (the policy must name `mcp:<server>` or the namespaced tools).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from agentplatform.bootstrap import container
from agentplatform.mcp_servers import McpServer, McpServerList, McpServerRegistration, check_url
from agentplatform.principal import caller
from agentplatform.topology import ADMIN_SCOPE
from functions.api.problems import PROBLEM_JSON, Problem

router = APIGatewayHttpRouter()

_CONFLICT = {"description": "A server of that name exists", "content": {PROBLEM_JSON: {"model": Problem}}}
_Name = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="A registered server's name.")]


@router.post(
    "/v1/mcp/servers",
    summary="Register an external MCP server (Streamable HTTP) for the tenant",
    description=(
        "https only (http only to 127.0.0.1 on the local runtime); link-local and metadata addresses are refused. "
        "The optional `auth_header` is sent as the server's Authorization header and never returned."
    ),
    tags=["mcp"],
    responses={201: {"description": "Registered"}, 409: _CONFLICT},
)
def register_server(body: McpServerRegistration) -> Response[McpServer]:
    principal = caller(router.current_event.raw_event, ADMIN_SCOPE)
    c = container()
    check_url(body.url, local=c.settings.backend == "local")
    server = c.mcp_servers.register(principal.tenant, body, by=principal.subject)
    return Response(
        status_code=201,
        content_type="application/json",
        body=server,
        headers={"Location": f"/v1/mcp/servers/{server.name}"},
    )


@router.get("/v1/mcp/servers", summary="The tenant's registered MCP servers", tags=["mcp"])
def list_servers() -> McpServerList:
    principal = caller(router.current_event.raw_event, ADMIN_SCOPE)
    return McpServerList(servers=container().mcp_servers.servers(principal.tenant))


@router.delete(
    "/v1/mcp/servers/<name>",
    summary="Remove a registered MCP server",
    tags=["mcp"],
    responses={200: {"description": "Removed: the server as it was registered"}},
)
def delete_server(name: _Name) -> McpServer:
    principal = caller(router.current_event.raw_event, ADMIN_SCOPE)
    return container().mcp_servers.delete(principal.tenant, name)
