"""API Gateway HTTP API (payload v2) -> the platform's routes. Thin: parse, call one service, shape the reply."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from agentplatform.bootstrap import container
from agentplatform.observability import lambda_entry
from functions.api.app import build_resolver, response_headers
from functions.api.documents import router as documents_router
from functions.api.health import VERSION, Component, HealthReport, check_health
from functions.api.problems import document_problems
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


@cache
def openapi_document() -> str:
    generated = api().get_openapi_json_schema(
        title="Agent Platform API",
        version=VERSION,
        description="The public HTTP API of the agent platform. Every error is application/problem+json.",
    )
    return json.dumps(document_problems(json.loads(generated)))


@cache
def api() -> APIGatewayHttpResolver:
    resolver = build_resolver()
    resolver.include_router(router)
    resolver.include_router(search_router)
    resolver.include_router(documents_router)
    return resolver


@lambda_entry("api")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = api().resolve(event, context)
    # Here rather than in a middleware: exception handlers' responses skip middlewares.
    response.setdefault("headers", {}).update(response_headers())
    return response
