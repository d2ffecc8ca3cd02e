"""The HTTP API on 127.0.0.1 (HTTP and HTTPS): each request becomes an API Gateway HTTP API payload v2 event for
the routed handler, and the handler's result becomes the HTTP response, as API Gateway would do it."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agentplatform.topology import CorsPolicy, Route
from local.auth import AuthFailure, Authorizers, Invoke

log = logging.getLogger("local.gateway")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit
_TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "application/x-www-form")


class RouteTable:
    """API Gateway's route selection: the most specific `METHOD /path/{param}` wins, then ANY, then $default."""

    def __init__(self, routes: list[Route]) -> None:
        self._default = next((r for r in routes if r.path == "$default"), None)
        self._routes = sorted(
            (r for r in routes if r.path != "$default"),
            key=lambda r: r.path.count("{") * 5 - r.path.count("/") * 10,  # most specific first
        )

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for wanted in (method, "ANY"):
            for route in self._routes:
                if route.method == wanted and (parameters := route.match(path)) is not None:
                    return route, parameters
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
    if body and is_text:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:  # "text" that is not UTF-8 travels as bytes, base64-encoded
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    elif body:
        event["body"] = base64.b64encode(body).decode()
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
        authorizers: Authorizers,
        host: str,
        http_port: int,
        https_port: int | None,
        tls_context: ssl.SSLContext | None,
        cors: CorsPolicy | None = None,
    ) -> None:
        self._table = RouteTable(routes)
        self._invoke = invoke
        self._authorizers = authorizers
        self._cors = cors if cors and cors.allow_origins else None
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

            def __getattr__(self, name: str) -> Any:
                # Every method reaches the routes (`$default` takes the ones no route names), as in API Gateway;
                # http.server would answer 501 to any method without a do_<METHOD>.
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

        return Handler

    def handle(self, request: BaseHTTPRequestHandler) -> int:
        origin = request.headers.get("origin")
        cors = self._cors_headers(origin)
        try:
            body = read_body(request)
        except BodyTooLarge:
            request.close_connection = True
            return self._message(request, 413, "Request Entity Too Large", cors)
        except ValueError:
            request.close_connection = True
            return self._message(request, 400, "Bad Request", cors)
        if (
            self._cors
            and request.command == "OPTIONS"
            and origin
            and request.headers.get("access-control-request-method")
        ):
            # API Gateway answers preflights itself when CORS is configured: no route, no authorizer.
            return self._write(request, 204, {**cors, **self._preflight_headers()} if cors else {}, [], b"")
        path = urlsplit(request.path).path
        route, path_parameters = self._table.match(request.command, path)
        if route is None:
            return self._message(request, 404, "Not Found", cors)
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
        if not route.public:
            try:
                event["requestContext"]["authorizer"] = self._authorizers.authorize(route, event)
            except AuthFailure as failure:  # API Gateway's own answer, before the route's function runs
                extra = {"www-authenticate": "Bearer"} if failure.status == 401 else {}
                return self._message(request, failure.status, failure.message, {**cors, **extra})
        failed, result = self._invoke(route.function, event)
        if failed:  # API Gateway's answer when the integration fails
            return self._message(request, 500, "Internal Server Error", cors)
        status, headers, cookies, raw = response_parts(result)
        return self._write(request, status, {**headers, **cors}, cookies, raw)

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        """What API Gateway adds to every response for an allowed origin (nothing for others)."""
        if self._cors is None or not origin:
            return {}
        allowed = self._cors.allow_origins
        if "*" not in allowed and origin not in allowed:
            return {}
        return {
            "access-control-allow-origin": "*" if "*" in allowed else origin,
            "access-control-expose-headers": ",".join(self._cors.expose_headers),
            "vary": "origin",
        }

    def _preflight_headers(self) -> dict[str, str]:
        assert self._cors is not None
        return {
            "access-control-allow-methods": ",".join(self._cors.allow_methods),
            "access-control-allow-headers": ",".join(self._cors.allow_headers),
            "access-control-max-age": str(self._cors.max_age_s),
        }

    def _message(self, request: BaseHTTPRequestHandler, status: int, message: str, headers: dict[str, str]) -> int:
        """One of API Gateway's own answers: `{"message": ...}` as application/json."""
        body = json.dumps({"message": message}).encode()
        return self._write(request, status, {"content-type": "application/json", **headers}, [], body)

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


class BodyTooLarge(Exception):
    """The request body is over API Gateway's payload limit."""


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether framed by Content-Length or sent chunked (Transfer-Encoding: chunked, as clients
    that stream a body do); over MAX_BODY_BYTES raises BodyTooLarge, bad framing ValueError."""
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = request.rfile.readline(1024)
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)  # chunk extensions are ignored
            if size == 0:
                while request.rfile.readline(1024).strip():  # trailers, up to the blank line
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise BodyTooLarge
            body += request.rfile.read(size)
            request.rfile.readline(3)  # the CRLF after each chunk
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_BODY_BYTES:
        raise BodyTooLarge
    return request.rfile.read(length) if length else b""
