"""One error hierarchy for the whole platform.

Every error carries a stable `code`, the HTTP `status` it maps to at the API edge, and whether a caller may
retry it. The class name is also the error name Step Functions sees when a Lambda task raises it, so ASL
Retry/Catch blocks match on these names (for example `"ErrorEquals": ["DependencyUnavailable"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; `loc` is the path to it, e.g. ("query", "component")."""

    loc: tuple[str | int, ...]
    message: str
    type: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        return {"field": ".".join(str(p) for p in self.loc), "message": self.message, "type": self.type}


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.context = context

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that belong with this error's answer at the API edge."""
        return {}


class ValidationFailed(PlatformError):
    code, status, title = "validation_failed", 422, "Request validation failed"


class Unauthorized(PlatformError):
    """No credentials, or credentials that do not verify (expired, wrong signature, unknown issuer)."""

    code, status, title = "unauthorized", 401, "Authentication required"


class Forbidden(PlatformError):
    """Authenticated, but the credentials lack the scope the operation needs."""

    code, status, title = "forbidden", 403, "Forbidden"


class NotFound(PlatformError):
    code, status, title = "not_found", 404, "Not found"


class Conflict(PlatformError):
    """The resource is not in a state that allows the operation (an escalation resolved already)."""

    code, status, title = "conflict", 409, "Conflict"


class MethodNotAllowed(PlatformError):
    code, status, title = "method_not_allowed", 405, "Method not allowed"

    def __init__(self, detail: str, *, allow: list[str], **context: Any) -> None:
        super().__init__(detail, **context)
        self.allow = allow

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class PayloadTooLarge(PlatformError):
    code, status, title = "payload_too_large", 413, "Payload too large"


class UnsupportedMediaType(PlatformError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class Throttled(PlatformError):
    code, status, title, retryable = "throttled", 429, "Too many requests", True

    def __init__(self, detail: str, *, retry_after_s: int = 1, **context: Any) -> None:
        super().__init__(detail, **context)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class QuotaExceeded(Throttled):
    """The tenant has spent its model-token quota for the current period; Retry-After is the period's end."""

    code, title = "quota_exceeded", "Token quota exceeded"


class BudgetExceeded(QuotaExceeded):
    """The tenant's model budget (tokens or money) for the period cannot cover the request's maximum cost;
    Retry-After is the period's end."""

    code, title = "budget_exceeded", "Model budget exceeded"


class DocumentRejected(PlatformError):
    """A document cannot be ingested as it is (unsupported format, corrupt file, no text, unknown tenant): the
    document fails with this reason; retrying will not help."""

    code, status, title = "document_rejected", 422, "Document rejected"


class ConfigurationError(PlatformError):
    """A required setting is missing or invalid; a deploy problem, never the caller's."""

    code, status, title = "configuration_error", 500, "Service misconfigured"


class DependencyUnavailable(PlatformError):
    """A backing service (S3, SQS, DynamoDB, a model endpoint, ...) could not be reached, answered 5xx, or kept
    throttling. From an AWS API it comes after the SDK's own retries: nothing above retries it again."""

    code, status, title, retryable = "dependency_unavailable", 503, "Dependency unavailable", True


class ModelEndpointUnavailable(DependencyUnavailable):
    """A model endpoint could not be reached or failed (5xx, a timeout). Model calls are never resent by the
    SDK: the caller's one retry place (the gateway, or the ingestion state machine's Embed state) decides."""

    code = "model_endpoint_unavailable"


class DependencyRejected(PlatformError):
    """A backing service refused the request as this deployment sent it: access denied, a resource that does
    not exist, an invalid request. A deploy or code problem: retrying cannot help, so nothing retries it."""

    code, status, title = "dependency_rejected", 500, "Dependency refused the request"


class QueryFailed(PlatformError):
    """The SQL database refused a statement (an unknown column, a type mismatch): the statement's to fix."""

    code, status, title = "query_failed", 422, "Query failed"


class QueryTimedOut(PlatformError):
    """A SQL statement ran past its statement timeout and was cancelled."""

    code, status, title = "query_timed_out", 504, "Query timed out"


class ModelInputRejected(PlatformError):
    """A model endpoint refused the input (too long, too many, malformed): the caller's to fix, not retryable."""

    code, status, title = "model_input_rejected", 422, "Model rejected the input"


class ModelOutputInvalid(PlatformError):
    """A model answered something that breaks its contract (not JSON, wrong shape, an invalid tool call)."""

    code, status, title, retryable = "model_output_invalid", 502, "Model output invalid", True


class UpstreamThrottled(PlatformError):
    """A backing service throttled us; retry later with backoff."""

    code, status, title, retryable = "upstream_throttled", 503, "Upstream throttled", True


class UpstreamUnavailable(PlatformError):
    """Every model target the policy allows for a call failed, was skipped or has its breaker open; retry after
    `retry_after_s` (the soonest a breaker half-opens, or a short backoff)."""

    code, status, title, retryable = "upstream_unavailable", 503, "No model target available", True

    def __init__(self, detail: str, *, retry_after_s: int = 5, **context: Any) -> None:
        super().__init__(detail, **context)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


def error_names() -> set[str]:
    """Every platform error's name: the names ASL Retry/Catch blocks may match on."""
    return {klass.__name__ for klass in _error_classes()}


def error_class(name: str) -> type[PlatformError] | None:
    """The platform error class of that name (an error another function raised, crossing back by name)."""
    return next((klass for klass in _error_classes() if klass.__name__ == name), None)


def _error_classes() -> list[type[PlatformError]]:
    out: list[type[PlatformError]] = []
    stack: list[type[PlatformError]] = [PlatformError]
    while stack:
        klass = stack.pop()
        out.append(klass)
        stack.extend(klass.__subclasses__())
    return out
