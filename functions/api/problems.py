"""RFC 9457 problem details: the one error shape of every API response."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, Field

from agentplatform.errors import FieldError, PlatformError

PROBLEM_JSON = "application/problem+json"


class ProblemFieldError(BaseModel):
    field: str = Field(description="Dotted path to the input, e.g. `query.component` or `body.messages.0.role`.")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with `code` (stable, machine-readable) and per-field `errors`."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None


def problem_response(
    *,
    status: int,
    title: str,
    detail: str,
    code: str,
    instance: str | None = None,
    errors: Iterable[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    field_errors = [ProblemFieldError(**e.as_dict()) for e in errors]
    body = Problem(
        type=f"https://agentplatform.dev/problems/{code.replace('_', '-')}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        errors=field_errors or None,
    )
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=dict(headers or {}),
    )


def from_platform_error(exc: PlatformError, instance: str | None) -> Response:
    return problem_response(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        instance=instance,
        errors=exc.errors,
        headers=exc.headers,
    )


def field_errors_from_pydantic(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    return [
        FieldError(
            # A body that is not JSON at all arrives located at ("body", <character offset>): it is the body.
            loc=("body",) if e.get("type") == "json_invalid" else tuple(e.get("loc", ())),
            message=str(e.get("msg", "invalid")),
            type=str(e.get("type", "invalid")),
        )
        for e in errors
    ]
