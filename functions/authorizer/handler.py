"""The API's Lambda authorizer (HTTP API, payload 2.0, simple responses). Thin: one service call."""

from __future__ import annotations

from functools import cache
from typing import Any

from agentplatform.bootstrap import container
from agentplatform.errors import Unauthorized
from agentplatform.observability import lambda_entry, telemetry
from agentplatform.topology import PLATFORM
from functions.authorizer.service import JwtVerifier, TokenAuthorizer


@cache
def verifier(issuer: str, audiences: str, jwks_url: str) -> JwtVerifier:
    # One per container: it caches the issuer's keys.
    return JwtVerifier(issuer, audiences.split(","), jwks_url)


def authorizer() -> TokenAuthorizer:
    c = container()
    keys = verifier(
        c.settings.require("jwt_issuer"), c.settings.require("jwt_audience"), c.settings.require("jwks_url")
    )
    return TokenAuthorizer(keys, c.api_keys, PLATFORM.routes)


@lambda_entry("authorizer")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        answer = authorizer().authorize(event)
    except Unauthorized as exc:
        telemetry("authorizer").logger.info("credential refused", extra={"reason": exc.context.get("reason")})
        raise
    if not answer["isAuthorized"]:
        telemetry("authorizer").logger.info("scope missing", extra={"route": event.get("routeKey")})
    return answer
