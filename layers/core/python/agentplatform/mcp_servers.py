"""A tenant's external MCP servers: the registration the API writes and the tools service reads.

One item per server in the `mcp_servers` table (pk `MCP#<tenant>`, sk the server's name). The optional auth
header value is stored in the item (DynamoDB encrypts it at rest) and never leaves the platform again: listings
say only whether one is set.

URLs are checked twice against server-side request forgery: here on registration (scheme, literal addresses),
and by the tools service before each connection on the addresses the host resolves to (DNS can change).
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from agentplatform.errors import Conflict, FieldError, NotFound, ValidationFailed
from agentplatform.ports import KeyValueTable

# `<server>__<tool>` is a tool's name in the registry: a server's name has no underscore, so the split is unique.
SEPARATOR = "__"
ServerName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="Lower case, digits and '-'.")]
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Cloud metadata services answer on these even where they are not link-local (AWS's IPv6 one is ULA).
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class McpServerRegistration(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "crm", "url": "https://mcp.example.com/mcp", "timeout_s": 10}]},
    )

    name: ServerName
    url: Annotated[
        str,
        Field(
            min_length=8,
            max_length=2048,
            # The shape only; check_url decides which hosts the platform may reach.
            pattern=r"^(https://[^\s/?#@:\[\]]+|http://(127\.0\.0\.1|localhost|\[::1\]))(:[0-9]{1,5})?([/?#]\S*)?$",
            description="The server's Streamable HTTP endpoint: https (http only to the local runtime's loopback).",
        ),
    ]
    auth_header: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            max_length=4096,
            pattern=r"^[\x21-\x7e][\x20-\x7e]*$",
            description="The Authorization header value sent to the server (write-only: never returned).",
        ),
    ]
    timeout_s: Annotated[float, Field(default=10.0, ge=1, le=25, description="Per call, listing included.")]


class McpServer(BaseModel):
    name: str
    url: str
    timeout_s: float
    has_auth: bool
    created_at: str
    created_by: str


class McpServerList(BaseModel):
    servers: list[McpServer]


def check_url(url: str, *, local: bool) -> str:
    """The URL if the platform may connect to it, else ValidationFailed naming `body.url`: https only (http only to
    the local machine's loopback when running locally), and never a link-local or metadata address literal."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise _bad_url("must be an https URL with a host and no user info")
    if parts.scheme == "http" and not (local and host in _LOOPBACK_HOSTS):
        raise _bad_url("must be https (plain http is allowed only to 127.0.0.1 on the local runtime)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url  # a name: its addresses are checked when the tools service connects
    refusal = address_refusal(address, local=local)
    if refusal:
        raise _bad_url(refusal)
    return url


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, local: bool) -> str | None:
    """Why the platform must not connect to this address, or None."""
    if address in _METADATA or address.is_link_local or address.is_unspecified or address.is_multicast:
        return f"{address} is a link-local, metadata or non-unicast address"
    if not local and (address.is_loopback or address.is_private or address.is_reserved):
        return f"{address} is not a public address"
    return None


def resolved_refusal(url: str, *, local: bool) -> str | None:
    """Why a connection to this URL's host must not be made now, judged on every address it resolves to."""
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return f"{parts.hostname} does not resolve"
    for info in infos:
        refusal = address_refusal(ipaddress.ip_address(str(info[4][0]).split("%")[0]), local=local)
        if refusal:
            return refusal
    return None


def _bad_url(message: str) -> ValidationFailed:
    return ValidationFailed(f"url {message}", errors=[FieldError(loc=("body", "url"), message=message)])


class McpServerStore:
    def __init__(self, table: KeyValueTable) -> None:
        self.table = table

    def register(self, tenant: str, registration: McpServerRegistration, *, by: str) -> McpServer:
        item: dict[str, Any] = {
            "pk": _pk(tenant),
            "sk": registration.name,
            "url": registration.url,
            "timeout_s": str(registration.timeout_s),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "created_by": by,
        }
        if registration.auth_header:
            item["auth_header"] = registration.auth_header
        values = {k: v for k, v in item.items() if k not in ("pk", "sk")}
        if not self.table.update({"pk": item["pk"], "sk": item["sk"]}, values, expect={"url": None}):
            raise Conflict(f"an MCP server named {registration.name!r} is registered already; delete it first")
        return _public(item)

    def servers(self, tenant: str) -> list[McpServer]:
        return [_public(item) for item in self.items(tenant)]

    def items(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's registrations with their auth header values (for the tools service only)."""
        found: list[dict[str, Any]] = []
        after: dict[str, Any] | None = None
        while True:
            page, after = self.table.query({"pk": _pk(tenant)}, limit=100, after=after)
            found.extend(page)
            if after is None:
                return found

    def delete(self, tenant: str, name: str) -> McpServer:
        item = self.table.get({"pk": _pk(tenant), "sk": name})
        if item is None:
            raise NotFound(f"no MCP server named {name!r}")
        self.table.delete({"pk": _pk(tenant), "sk": name})
        return _public(item)


def _pk(tenant: str) -> str:
    return f"MCP#{tenant}"


def _public(item: dict[str, Any]) -> McpServer:
    return McpServer(
        name=str(item["sk"]),
        url=str(item["url"]),
        timeout_s=float(item["timeout_s"]),
        has_auth=bool(item.get("auth_header")),
        created_at=str(item["created_at"]),
        created_by=str(item["created_by"]),
    )
