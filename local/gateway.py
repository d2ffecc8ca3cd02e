"""The HTTP API on 127.0.0.1 (HTTP and HTTPS): each request becomes an API Gateway HTTP API payload v2 event for
the routed handler, and the handler's result becomes the HTTP response, as API Gateway would do it."""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agentplatform.topology import Route
from local.auth import AuthFailure, JwtAuthorizer

log = logging.getLogger("local.gateway")

Invoke = Callable[[str, dict[str, Any]], tuple[bool, Any]]  # (function, event) -> (failed, result)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit
_TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "application/x-www-form")


class RouteTable:
    """API Gateway's route selection: the most specific `METHOD /path/{param}` wins, then ANY, then $default."""

    def __init__(self, routes: list[Route]) -> None:
        self._default: Route | None = None
        self._routes: list[tuple[re.Pattern[str], Route, int]] = []
        for route in routes:
            if route.path == "$default":
                self._default = route
                continue
            pattern = (
                "^"
                + re.sub(
                    r"\\\{(\w+)\\\+\\\}|\\\{(\w+)\\\}",
                    lambda m: f"(?P<{m.group(1)}>.+)" if m.group(1) else f"(?P<{m.group(2)}>[^/]+)",
                    re.escape(route.path),
                )
                + "$"
            )
            specificity = route.path.count("/") * 10 - route.path.count("{") * 5
            self._routes.append((re.compile(pattern), route, specificity))
        self._routes.sort(key=lambda r: -r[2])

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for wanted in (method, "ANY"):
            for pattern, route, _ in self._routes:
                if route.method == wanted and (m := pattern.match(path)):
                    return route, m.groupdict()
        return self._default, {}


def build_event(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    route: Route,
    path_parameters: dict[str, str],
    domain: str,
) -> dict[str, Any]:
    path, _, query = raw_path.partition("?")
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    content_type = lowered.get("content-type", "")
    is_text = not body or content_type.startswith(_TEXT_TYPES)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if cookies:
        event["cookies"] = cookies
    if params:
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = body.decode("utf-8") if is_text else base64.b64encode(body).decode()
    return event


def response_parts(result: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """Payload v2's response rules: a dict with statusCode is used as-is; anything else is a 200 JSON body."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, {"content-type": "application/json"}, [], json.dumps(result).encode()
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    return int(result["statusCode"]), headers, list(result.get("cookies") or []), raw


class HttpGateway:
    def __init__(
        self,
        routes: list[Route],
        invoke: Invoke,
        authorizer: JwtAuthorizer,
        host: str,
        http_port: int,
        https_port: int | None,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        self._table = RouteTable(routes)
        self._invoke = invoke
        self._authorizer = authorizer
        self._servers: list[ThreadingHTTPServer] = []
        handler = self._handler_class()
        self._servers.append(ThreadingHTTPServer((host, http_port), handler))
        if https_port is not None and tls_context is not None:
            secure = ThreadingHTTPServer((host, https_port), handler)
            secure.socket = tls_context.wrap_socket(secure.socket, server_side=True)
            self._servers.append(secure)

    @property
    def ports(self) -> list[int]:
        return [s.server_address[1] for s in self._servers]

    def start(self) -> None:
        for server in self._servers:
            name = f"http-{server.server_address[1]}"
            threading.Thread(target=server.serve_forever, name=name, daemon=True).start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "agentplatform-local"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

            def _handle(self) -> None:
                started = time.perf_counter()
                status = gateway.handle(self)
                log.info(
                    "%s %s -> %s (%.1f ms)", self.command, self.path, status, (time.perf_counter() - started) * 1000
                )

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        return Handler

    def handle(self, request: BaseHTTPRequestHandler) -> int:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            request.close_connection = True
            return self._write(
                request, 413, {"content-type": "application/json"}, [], b'{"message":"Request Entity Too Large"}'
            )
        body = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        route, path_parameters = self._table.match(request.command, path)
        if route is None:
            return self._write(request, 404, {"content-type": "application/json"}, [], b'{"message":"Not Found"}')
        authorizer = None
        if not route.public and route.path != "$default":
            try:
                authorizer = self._authorizer.authorize(route, {k.lower(): v for k, v in request.headers.items()})
            except AuthFailure as failure:  # API Gateway's own answer, before any function runs
                headers = {"content-type": "application/json"}
                if failure.status == 401:
                    headers["www-authenticate"] = "Bearer"
                body = json.dumps({"message": failure.message}).encode()
                return self._write(request, failure.status, headers, [], body)
        host = request.headers.get("host", "localhost").split(":")[0]
        event = build_event(
            request.command,
            request.path,
            list(request.headers.items()),
            body,
            request.client_address[0],
            route,
            path_parameters,
            host,
        )
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        failed, result = self._invoke(route.function, event)
        if failed:  # API Gateway's answer when the integration fails
            return self._write(
                request, 500, {"content-type": "application/json"}, [], b'{"message":"Internal Server Error"}'
            )
        status, headers, cookies, raw = response_parts(result)
        return self._write(request, status, headers, cookies, raw)

    @staticmethod
    def _write(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], cookies: list[str], body: bytes
    ) -> int:
        request.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                request.send_header(name, value)
        for cookie in cookies:
            request.send_header("Set-Cookie", cookie)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)
        return status
