"""What every endpoint's /invocations shares: JSON in, a status and JSON out, errors as {"error", "error_type"}
(the shape TEI and TGI use), so callers read one error format whatever the model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentplatform.inference import BATCH_TOO_LARGE

Request = TypeVar("Request", bound=BaseModel)


class InvocationError(Exception):
    def __init__(self, status: int, message: str, error_type: str = "validation") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "error_type": self.error_type}


def parse_request(body: bytes, content_type: str | None, model: type[Request]) -> Request:
    """Decode and validate a request; every failure is a 4xx that names the offending field."""
    if content_type and "json" not in content_type.lower():
        raise InvocationError(415, f"content type {content_type!r} is not supported; send application/json")
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvocationError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvocationError(422, "body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise InvocationError(_status_for(exc), problems) from exc


def _status_for(exc: ValidationError) -> int:
    # TEI answers 413 when the batch is too large; everything else is 422.
    return 413 if any(e["type"] == BATCH_TOO_LARGE for e in exc.errors()) else 422
