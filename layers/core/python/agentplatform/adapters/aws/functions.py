"""Lambda Invoke: one service calling another's function synchronously (the api calling retrieval)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentplatform.adapters.aws.errors import aws_call, probe
from agentplatform.errors import (
    DependencyUnavailable,
    FieldError,
    PlatformError,
    Throttled,
    UpstreamUnavailable,
    error_class,
)
from agentplatform.observability import client_context, with_correlation


class LambdaFunction:
    def __init__(self, function_name: str, client: Any) -> None:
        self.name = function_name
        self._lambda = client
        self._resource = f"function {function_name}"

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        with aws_call(self._resource):
            context = client_context()
            out = self._lambda.invoke(
                FunctionName=self.name,
                InvocationType="RequestResponse",
                Payload=json.dumps(with_correlation(payload)).encode(),
                **({"ClientContext": context} if context else {}),
            )
            body = out["Payload"].read()
        try:
            result = json.loads(body) if body else None
        except ValueError as exc:
            raise DependencyUnavailable(f"{self._resource} answered with non-JSON", function=self.name) from exc
        if out.get("FunctionError"):
            raise _raised(result, self.name)
        return result

    def check(self) -> None:
        """Health: the function exists and can run (Lambda's State; Failed or Inactive cannot take invocations)."""
        config: dict[str, Any] = {}
        probe(self._resource, lambda: config.update(self._lambda.get_function_configuration(FunctionName=self.name)))
        if config.get("State", "Active") != "Active":
            raise DependencyUnavailable(f"{self._resource} is {config['State']}", function=self.name)


# Lambda carries only a raised error's type and message back (errorType, errorMessage): what a caller needs beyond
# them (when to retry, which fields were wrong) travels in the message after this mark, as JSON.
_DATA_MARK = " #platform-error-data="


def lambda_error_message(exc: PlatformError) -> str:
    """The message a function's raised platform error should carry so `_raised` rebuilds it whole on the
    caller's side: its detail, then its Retry-After seconds and field errors where it has them."""
    data: dict[str, Any] = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if isinstance(retry_after, int):
        data["retry_after_s"] = retry_after
    if exc.errors:
        data["errors"] = [{"loc": list(e.loc), "message": e.message, "type": e.type} for e in exc.errors]
    return exc.detail + (_DATA_MARK + json.dumps(data) if data else "")


def _raised(result: Any, function: str) -> PlatformError:
    """The platform error the function raised, by its name (Lambda's errorType); anything else is a failure of
    that dependency (a crash, a timeout, an out-of-memory)."""
    error = result if isinstance(result, dict) else {}
    klass = error_class(str(error.get("errorType", "")))
    message = str(error.get("errorMessage", "the function failed"))
    message, _, encoded = message.partition(_DATA_MARK)
    if klass is None or klass is PlatformError:
        return DependencyUnavailable(f"function {function} failed: {message}", function=function)
    try:
        data = json.loads(encoded) if encoded else {}
    except ValueError:
        data = {}
    kwargs: dict[str, Any] = {"function": function}
    if isinstance(data.get("retry_after_s"), int) and issubclass(klass, Throttled | UpstreamUnavailable):
        kwargs["retry_after_s"] = data["retry_after_s"]
    if isinstance(data.get("errors"), list):
        kwargs["errors"] = [
            FieldError(tuple(e.get("loc", ())), str(e.get("message", "")), str(e.get("type", "invalid")))
            for e in data["errors"]
            if isinstance(e, dict)
        ]
    return klass(message, **kwargs)
