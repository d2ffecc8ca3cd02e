"""SageMaker runtime InvokeEndpoint: the one adapter for AWS, LocalStack and the local model server alike."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agentplatform.adapters.aws.errors import is_throttling, translate
from agentplatform.errors import (
    ConfigurationError,
    DependencyUnavailable,
    ModelEndpointUnavailable,
    ModelInputRejected,
    ModelOutputInvalid,
    PlatformError,
    UpstreamThrottled,
)


class SageMakerEndpoint:
    def __init__(self, endpoint_name: str, client: Any) -> None:
        self.name = endpoint_name
        self._runtime = client

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        try:
            out = self._runtime.invoke_endpoint(
                EndpointName=self.name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(payload).encode(),
            )
            body = out["Body"].read()
        except ClientError as exc:
            raise self._translate(exc) from exc
        except BotoCoreError as exc:  # unreachable, timed out: the SDK does not resend model calls
            raise ModelEndpointUnavailable(f"endpoint {self.name} unreachable: {type(exc).__name__}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ModelOutputInvalid(f"endpoint {self.name} answered with non-JSON", endpoint=self.name) from exc

    def _translate(self, exc: ClientError) -> PlatformError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code == "ModelError":
            # The container answered 4xx/5xx; OriginalStatusCode and OriginalMessage are its own.
            status, detail = _original(exc.response, error.get("Message", ""))
            if status == 429:
                return UpstreamThrottled(f"endpoint {self.name}: {detail}", endpoint=self.name)
            if status == 502:  # the model ran but produced nothing valid (e.g. no schema-valid tool call)
                return ModelOutputInvalid(detail, endpoint=self.name)
            if 400 <= status < 500 and status != 408:
                return ModelInputRejected(detail, endpoint=self.name, status=status)
            return ModelEndpointUnavailable(f"endpoint {self.name}: {detail}", endpoint=self.name, status=status)
        if code == "ValidationError":  # e.g. no such endpoint: a deployment problem, not the caller's input
            return ConfigurationError(f"endpoint {self.name}: {error.get('Message', code)}", endpoint=self.name)
        if is_throttling(exc):
            return UpstreamThrottled(f"endpoint {self.name} throttled the request", endpoint=self.name)
        failure = translate(exc, resource=f"endpoint {self.name}")
        if isinstance(failure, DependencyUnavailable):  # the endpoint's 5xx: the caller's retry place decides
            return ModelEndpointUnavailable(failure.detail, endpoint=self.name)
        return failure


def _original(response: Mapping[str, Any], fallback: str) -> tuple[int, str]:
    """The container's own status and error text. Our servers answer {"error": ...} with the real status; in
    the Hugging Face inference container every failure is a 400 whose message carries that same body with
    a "status" field (endpoints/protocol_toolkit.py), sometimes wrapped in {"message": ...}."""
    status = int(response.get("OriginalStatusCode") or 0)
    body: Any = response.get("OriginalMessage") or fallback
    for _ in range(3):  # unwrap JSON text, and {"message": <JSON text>} wrappers
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                break
        elif isinstance(body, dict) and isinstance(body.get("message"), str) and "error" not in body:
            body = body["message"]
        else:
            break
    if isinstance(body, dict):
        if isinstance(body.get("status"), int):
            status = body["status"]
        return status, str(body.get("error") or body.get("message") or body)
    return status, str(body)
