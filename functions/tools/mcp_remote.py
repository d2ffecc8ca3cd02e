"""The tools of a tenant's registered MCP servers, as the registry's ToolSpecs.

Each server's `tools/list` (through the SDK's streamable HTTP client, bounded by the server's timeout) becomes
one spec per tool, named `<server>__<tool>` with the server's input schema; listings are kept `LISTING_TTL_S`
per container. A call opens a session, calls the tool and closes it: the platform keeps no connection between
invocations. One breaker per tenant's server (the registry's Breaker, keyed `mcp:<tenant>/<server>`) covers
listing and calls, so a server that is down costs one timeout, not one per tool. Before every connection the
host's addresses are checked again (a registration's name may resolve elsewhere since).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import jsonschema

from agentplatform.mcp_servers import SEPARATOR, McpServerStore, resolved_refusal
from agentplatform.observability import telemetry
from functions.tools.registry import Breaker, ToolContext, ToolFailed, ToolSpec

if TYPE_CHECKING:  # the SDK loads on the first connection: seconds a cold start without MCP servers never pays
    import mcp_types as mt
    from mcp.client.session import ClientSession

LISTING_TTL_S = 60.0
PREFIX = "mcp:"  # the policy's name for all of one server's tools: `mcp:<server>`
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what model providers accept as a function name
_ANY_RESULT: dict[str, Any] = {"type": "object"}
T = TypeVar("T")


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    timeout_s: float
    auth_header: str | None

    @classmethod
    def of(cls, item: dict[str, Any]) -> Server:
        return cls(str(item["sk"]), str(item["url"]), float(item["timeout_s"]), item.get("auth_header"))


def server_of(tool_name: str) -> str | None:
    """The server a namespaced tool name belongs to, or None for the platform's own tools."""
    server, sep, _ = tool_name.partition(SEPARATOR)
    return server if sep else None


class RemoteTools:
    def __init__(
        self,
        store: McpServerStore,
        *,
        local: bool,
        breaker: Breaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.local = local
        self.breaker = breaker or Breaker()
        self._clock = clock
        self._listings: dict[tuple[str, Server], tuple[float, list[ToolSpec]]] = {}
        self._lock = threading.Lock()

    def specs(self, tenant: str) -> list[ToolSpec]:
        """The tools of every registered server of the tenant that answers its listing now."""
        found: list[ToolSpec] = []
        for item in self.store.items(tenant):
            found.extend(self._listing(tenant, Server.of(item)))
        return found

    def spec(self, tenant: str, name: str) -> ToolSpec | None:
        server = server_of(name)
        if server is None:
            return None
        item = next((i for i in self.store.items(tenant) if i["sk"] == server), None)
        if item is None:
            return None
        return next((s for s in self._listing(tenant, Server.of(item)) if s.name == name), None)

    def _listing(self, tenant: str, server: Server) -> list[ToolSpec]:
        key = (tenant, server)
        with self._lock:
            cached = self._listings.get(key)
        if cached and cached[0] > self._clock():
            return cached[1]
        breaker_key = _breaker_key(tenant, server)
        if self.breaker.is_open(breaker_key):
            return []
        try:
            tools = self._session(server, lambda session: _all_tools(session))
        except ToolFailed as exc:
            self.breaker.record(breaker_key, True)
            telemetry("tools").logger.warning(
                "mcp listing failed", extra={"tenant": tenant, "server": server.name, "reason": str(exc)}
            )
            return []
        self.breaker.record(breaker_key, False)
        specs = [spec for tool in tools if (spec := self._spec(server, tool)) is not None]
        with self._lock:
            self._listings[key] = (self._clock() + LISTING_TTL_S, specs)
        return specs

    def _spec(self, server: Server, tool: mt.Tool) -> ToolSpec | None:
        name = f"{server.name}{SEPARATOR}{tool.name}"
        schema = tool.input_schema or {"type": "object"}
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError:
            return None  # the registry validates arguments against it: a broken schema would fail every call
        if not _TOOL_NAME.match(name):
            return None

        def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            return self.call(ctx.tenant, server, tool.name, arguments)

        return ToolSpec(
            name=name,
            description=f"[{server.name}] {tool.description or tool.title or tool.name}"[:1024],
            parameters=schema,
            result_schema=_ANY_RESULT,
            run=run,
            # The registry's own bound: a little over the client's, which is the one that should fire.
            timeout_s=server.timeout_s + 1,
            side_effect=not (tool.annotations and tool.annotations.read_only_hint),
        )

    def call(self, tenant: str, server: Server, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        breaker_key = _breaker_key(tenant, server)
        if self.breaker.is_open(breaker_key):
            raise ToolFailed(f"the MCP server {server.name} is unavailable right now; answer without it")
        try:
            result = self._session(server, lambda session: session.call_tool(tool, arguments))
        except ToolFailed:
            self.breaker.record(breaker_key, True)
            raise
        self.breaker.record(breaker_key, False)
        return as_json(result)

    def _session(self, server: Server, use: Callable[[ClientSession], Awaitable[T]]) -> T:
        refusal = resolved_refusal(server.url, local=self.local)
        if refusal:
            raise ToolFailed(f"the MCP server {server.name} may not be reached: {refusal}")
        import httpx2
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": server.auth_header} if server.auth_header else {}

        async def session() -> T:
            with anyio.fail_after(server.timeout_s):
                async with (
                    httpx2.AsyncClient(headers=headers, timeout=server.timeout_s) as http,
                    streamable_http_client(server.url, http_client=http) as (read, write),
                    ClientSession(read, write) as client,
                ):
                    await client.initialize()
                    return await use(client)

        try:
            return anyio.run(session)
        except TimeoutError:
            raise ToolFailed(f"the MCP server {server.name} did not answer within {server.timeout_s:g} s") from None
        except Exception as exc:  # the SDK's transport and protocol errors, in whatever group they arrive
            raise ToolFailed(f"the MCP server {server.name} failed: {_reason(exc)}") from None


def _breaker_key(tenant: str, server: Server) -> str:
    return f"{PREFIX}{tenant}/{server.name}"  # servers are a tenant's own: one tenant's outage is not another's


async def _all_tools(session: ClientSession) -> list[mt.Tool]:
    import mcp_types as mt

    tools: list[mt.Tool] = []
    cursor: str | None = None
    for _ in range(20):  # a bound on pages: a server that paginates forever lists what it gave
        page = await session.list_tools(params=mt.PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def as_json(result: mt.CallToolResult) -> dict[str, Any]:
    """A CallToolResult as the tool's JSON result; a result the server marked as an error fails the call."""
    import mcp_types as mt

    text = "\n".join(c.text for c in result.content if isinstance(c, mt.TextContent))
    if result.is_error:
        raise ToolFailed(text[:2000] or "the MCP tool reported an error")
    other = [
        c.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"data", "blob"})
        for c in result.content
        if not isinstance(c, mt.TextContent)
    ]
    out: dict[str, Any] = {"text": text}
    if result.structured_content is not None:
        out["structured"] = result.structured_content
    if other:
        out["content"] = other  # images, audio, resources: described, their bytes left out
    return out


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {str(exc)[:200]}"
