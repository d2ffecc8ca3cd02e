"""API Gateway HTTP API (payload v2) -> the platform's routes. Thin: parse, call one service, shape the reply."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from agentplatform.bootstrap import container
from agentplatform.observability import lambda_entry
from agentplatform.topology import PLATFORM
from functions.api.admin import router as admin_router
from functions.api.app import build_resolver, refused_early, response_headers
from functions.api.conversations import router as conversations_router
from functions.api.documents import router as documents_router
from functions.api.escalations import router as escalations_router
from functions.api.evaluation import router as evaluation_router
from functions.api.health import VERSION, Component, HealthReport, check_health
from functions.api.llm import router as llm_router
from functions.api.mcp import router as mcp_router
from functions.api.mcp_servers import router as mcp_servers_router
from functions.api.memory import router as memory_router
from functions.api.openapi import describe
from functions.api.outbox import router as outbox_router
from functions.api.search import router as search_router

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

router = APIGatewayHttpRouter()


@router.get(
    "/health",
    summary="Health of the API and every component it depends on",
    description="No authentication. 200 when every component is ok, 503 when any is down.",
    tags=["operations"],
    responses={200: {"description": "All components ok"}, 503: {"description": "A component is down"}},
)
def health(
    component: Annotated[Component | None, Query(description="Check only this component.")] = None,
) -> Response[HealthReport]:
    report = check_health(container(), component)
    return Response(status_code=200 if report.status == "ok" else 503, content_type="application/json", body=report)


@router.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[dict[str, Any]]:
    return Response(status_code=200, content_type="application/json", body=json.loads(openapi_document()))


# Swagger UI (pinned) renders the document; this page is the only HTML the API serves. Its one inline script
# is allowed by its hash, nothing else inline.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14"
_DOCS_INIT = 'SwaggerUIBundle({url: "openapi.json", dom_id: "#ui", deepLinking: true});'
DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Agent Platform API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>{_DOCS_INIT}</script>
</body></html>
"""
DOCS_CSP = (
    "default-src 'none'; "
    f"script-src {SWAGGER_UI}/ 'sha256-{base64.b64encode(hashlib.sha256(_DOCS_INIT.encode()).digest()).decode()}'; "
    f"style-src {SWAGGER_UI}/ 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


@router.get("/docs", include_in_schema=False)
def docs() -> Response[str]:
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=DOCS_PAGE,
        headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "public, max-age=300"},
    )


@cache
def openapi_document() -> str:
    generated = api().get_openapi_json_schema(
        title="Agent Platform API",
        version=VERSION,
        description=(
            "The public HTTP API of the agent platform. Every error the API answers is application/problem+json; "
            'the gateway\'s own refusals are `{"message": ...}`. Interactive documentation: `/docs`.'
        ),
    )
    return json.dumps(describe(json.loads(generated), PLATFORM))


@cache
def api() -> APIGatewayHttpResolver:
    resolver = build_resolver()
    resolver.include_router(router)
    resolver.include_router(search_router)
    resolver.include_router(documents_router)
    resolver.include_router(admin_router)
    resolver.include_router(conversations_router)
    resolver.include_router(escalations_router)
    resolver.include_router(evaluation_router)
    resolver.include_router(llm_router)
    resolver.include_router(memory_router)
    resolver.include_router(mcp_router)
    resolver.include_router(mcp_servers_router)
    resolver.include_router(outbox_router)
    return resolver


@lambda_entry("api")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = refused_early(event) or api().resolve(event, context)
    # Here rather than in a middleware: exception handlers' responses skip middlewares.
    headers = response.setdefault("headers", {})
    for name, value in response_headers().items():
        headers.setdefault(name, value)
    return response
