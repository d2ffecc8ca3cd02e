"""Lambda Invoke: one service calling another's function synchronously (the api calling retrieval)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentplatform.adapters.aws.errors import aws_call
from agentplatform.errors import DependencyUnavailable, PlatformError, error_class
from agentplatform.observability import with_correlation


class LambdaFunction:
    def __init__(self, function_name: str, client: Any) -> None:
        self.name = function_name
        self._lambda = client
        self._resource = f"function {function_name}"

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        with aws_call(self._resource):
            out = self._lambda.invoke(
                FunctionName=self.name,
                InvocationType="RequestResponse",
                Payload=json.dumps(with_correlation(payload)).encode(),
            )
            body = out["Payload"].read()
        try:
            result = json.loads(body) if body else None
        except ValueError as exc:
            raise DependencyUnavailable(f"{self._resource} answered with non-JSON", function=self.name) from exc
        if out.get("FunctionError"):
            raise _raised(result, self.name)
        return result


def _raised(result: Any, function: str) -> PlatformError:
    """The platform error the function raised, by its name (Lambda's errorType); anything else is a failure of
    that dependency (a crash, a timeout, an out-of-memory)."""
    error = result if isinstance(result, dict) else {}
    klass = error_class(str(error.get("errorType", "")))
    message = str(error.get("errorMessage", "the function failed"))
    if klass is None or klass is PlatformError:
        return DependencyUnavailable(f"function {function} failed: {message}", function=function)
    return klass(message, function=function)
