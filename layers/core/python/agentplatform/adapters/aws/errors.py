"""Translate botocore failures into the platform's errors, by error code (never by message text)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from agentplatform.errors import DependencyRejected, DependencyUnavailable, NotFound, PlatformError

_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
}
_MISSING_ITEM = {"NoSuchKey", "404", "NotFound", "ExecutionDoesNotExist"}


def translate(exc: Exception, *, resource: str) -> PlatformError:
    """A boto3 failure, after the SDK's own retries (the one retry place of an AWS API call), as a platform error:
    a missing item is NotFound; throttling, 5xx and transport failures are DependencyUnavailable (the caller may
    try later, nothing retries it again); any other 4xx (access denied, no such resource, invalid request) is
    DependencyRejected, which no retry can fix."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _MISSING_ITEM:
            return NotFound(f"{resource}: not found", resource=resource, aws_code=code)
        if code in _THROTTLING or status == 429:
            return DependencyUnavailable(f"{resource} kept throttling the request", resource=resource, aws_code=code)
        if 400 <= status < 500:
            return DependencyRejected(
                f"{resource} refused the request: {code or status}", resource=resource, aws_code=code
            )
        return DependencyUnavailable(f"{resource} failed: {code or status}", resource=resource, aws_code=code)
    return DependencyUnavailable(f"{resource} unreachable: {type(exc).__name__}", resource=resource)


def is_throttling(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in _THROTTLING or int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0) == 429


@contextmanager
def aws_call(resource: str) -> Iterator[None]:
    """Run boto3 calls, re-raising their failures as platform errors that name the resource."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, resource=resource) from exc


def probe(resource: str, call: Callable[[], object]) -> None:
    """A health check: any failure, a missing resource or a refused request included, means the dependency is
    unavailable to this deployment."""
    try:
        with aws_call(resource):
            call()
    except NotFound as exc:
        raise DependencyUnavailable(f"{resource} does not exist", resource=resource) from exc
    except DependencyRejected as exc:
        raise DependencyUnavailable(exc.detail, resource=resource) from exc
