"""The API's resolver: validation on, one error model (problem+json), correlation id and size limit on every call."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from agentplatform.bootstrap import container
from agentplatform.config import get_settings
from agentplatform.errors import (
    FieldError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PlatformError,
    Throttled,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from agentplatform.observability import CORRELATION_HEADER, correlation_id, telemetry
from agentplatform.principal import principal_from_event
from agentplatform.topology import PLATFORM, Route
from functions.api.problems import PROBLEM_JSON, field_errors_from_pydantic, from_platform_error

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # JSON only: nothing a browser should render, run or frame (the docs page sets its own policy).
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def build_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)

    def instance() -> str:
        return app.current_event.path

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response:
        errors = field_errors_from_pydantic(exc.errors())
        fields = ", ".join(e.as_dict()["field"] for e in errors)
        detail = f"invalid fields: {fields}" if fields else "the request is invalid"
        return from_platform_error(ValidationFailed(detail, errors=errors), instance())

    @app.exception_handler(UnicodeDecodeError)
    def undecodable_body(_: UnicodeDecodeError) -> Response:
        error = FieldError(loc=("body",), message="not UTF-8", type="json_invalid")
        return from_platform_error(ValidationFailed("the body is not UTF-8 text", errors=[error]), instance())

    @app.exception_handler(PlatformError)
    def platform_error(exc: PlatformError) -> Response:
        if exc.status >= 500:
            telemetry("api").logger.exception("request failed", extra={"code": exc.code})
        return from_platform_error(exc, instance())

    @app.not_found
    def not_found(_: NotFoundError) -> Response:
        event = app.current_event
        method = event.request_context.http.method
        routes = [r for r in PLATFORM.routes if r.function == "api" and r.match(event.path) is not None]
        error: PlatformError
        if not _may_see(routes, event.raw_event):  # the path's methods are for holders of its scopes only
            error = Forbidden(f"the credentials hold none of the scopes of {event.path}")
        elif routes:
            allowed = sorted({r.method for r in routes})
            error = MethodNotAllowed(f"{event.path} allows {', '.join(allowed)}, not {method}", allow=allowed)
        else:
            error = NotFound(f"no route for {method} {event.path}")
        return from_platform_error(error, event.path)

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        telemetry("api").logger.exception("unhandled error")
        return from_platform_error(PlatformError("unexpected error"), instance())

    app.use(middlewares=[limit_rate])
    return app


def _may_see(routes: list[Route], event: dict[str, Any]) -> bool:
    """Whether the caller may learn which methods a path takes: it is public, or they hold one of its scopes."""
    needed = {scope for route in routes if not route.public for scope in route.scopes}
    if not needed:
        return True
    try:
        return bool(needed & principal_from_event(event).scopes)
    except Unauthorized:
        return False


def refused_early(event: dict[str, Any]) -> dict[str, Any] | None:
    """The answer to a request refused before anything reads its body (validation included): a body over the
    size limit (413), or a body that is not JSON on an operation that takes one (415)."""
    body = event.get("body") or ""
    limit = get_settings().max_request_bytes
    # Base64 inflates 4/3; compare the decoded size.
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode())
    error: PlatformError | None = None
    if size > limit:
        error = PayloadTooLarge(f"request body is {size} bytes; the limit is {limit}")
    elif body and _takes_json(event):
        media = str((event.get("headers") or {}).get("content-type", "")).split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            error = UnsupportedMediaType(f"the body must be application/json, not {media or 'untyped'}")
        elif not _object_or_unparsed(body, bool(event.get("isBase64Encoded"))):
            # Every body of this API is an object; the resolver would read a list as its first element.
            field = FieldError(loc=("body",), message="must be a JSON object", type="model_type")
            error = ValidationFailed("the body must be a JSON object", errors=[field])
    if error is None:
        return None
    problem = from_platform_error(error, event.get("rawPath"))
    return {
        "statusCode": problem.status_code,
        "headers": {"Content-Type": PROBLEM_JSON, **problem.headers},
        "body": problem.body,
        "isBase64Encoded": False,
    }


def _object_or_unparsed(body: str, base64_encoded: bool) -> bool:
    """Whether a JSON body is an object, or is not JSON at all (the resolver answers that one itself)."""
    try:
        value = json.loads(base64.b64decode(body) if base64_encoded else body)
    except ValueError:  # not JSON, not base64, not UTF-8: the resolver's own errors name them
        return True
    return isinstance(value, dict)


def _takes_json(event: dict[str, Any]) -> bool:
    http = (event.get("requestContext") or {}).get("http") or {}
    method, path = str(http.get("method", "")), str(event.get("rawPath", ""))
    return method in ("POST", "PUT", "PATCH") and any(
        r.method == method and r.function == "api" and r.match(path) is not None for r in PLATFORM.routes
    )


def limit_rate(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """The caller's tenant spends one token of its request-rate bucket (public routes have no tenant)."""
    try:
        principal = principal_from_event(app.current_event.raw_event)
    except Unauthorized:
        return next_middleware(app)
    try:
        container().rate_limiter.acquire(principal.tenant)
    except Throttled as exc:
        return from_platform_error(exc, app.current_event.path)
    return next_middleware(app)


def response_headers() -> dict[str, str]:
    """Headers every API response carries: the correlation id and the security headers."""
    headers = dict(SECURITY_HEADERS)
    cid = correlation_id()
    if cid:
        headers[CORRELATION_HEADER] = cid
    return headers
