"""`/mcp`: the platform's tools as an MCP server over Streamable HTTP, stateless (functions/api/mcp_protocol.py).

One JSON-RPC message per POST; GET and DELETE answer 405 from the resolver (no server-sent stream, no session to
end), as the transport allows. The protocol module loads the SDK's types on the first MCP request only: other
routes do not pay for them in a cold start.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from agentplatform.bootstrap import container
from agentplatform.principal import caller
from agentplatform.tools import ToolsClient

SCOPE = "tools"

router = APIGatewayHttpRouter()


@router.post("/mcp", include_in_schema=False)
def mcp_post() -> Response[str]:
    from functions.api.mcp_protocol import McpTools, handle

    event = router.current_event
    principal = caller(event.raw_event, SCOPE)
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    return handle(event.decoded_body or "", headers, McpTools(ToolsClient(container().tools_function), principal))
