"""SageMaker runtime InvokeEndpoint: the one adapter for AWS, LocalStack and the local model server alike."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agentplatform.adapters.aws.errors import translate
from agentplatform.errors import ConfigurationError, ModelInputRejected, ModelOutputInvalid, PlatformError


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
        except BotoCoreError as exc:
            raise translate(exc, resource=f"endpoint {self.name}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ModelOutputInvalid(f"endpoint {self.name} answered with non-JSON", endpoint=self.name) from exc

    def _translate(self, exc: ClientError) -> PlatformError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code == "ModelError":
            # The container answered 4xx/5xx; OriginalStatusCode and OriginalMessage are its own.
            original = int(exc.response.get("OriginalStatusCode") or 0)
            message = exc.response.get("OriginalMessage") or error.get("Message", "")
            if 400 <= original < 500:
                return ModelInputRejected(_readable(message), endpoint=self.name, status=original)
            if original == 502:  # the model ran but produced nothing valid (e.g. no schema-valid tool call)
                return ModelOutputInvalid(_readable(message), endpoint=self.name)
        if code == "ValidationError":  # e.g. no such endpoint: a deployment problem, not the caller's input
            return ConfigurationError(f"endpoint {self.name}: {error.get('Message', code)}", endpoint=self.name)
        return translate(exc, resource=f"endpoint {self.name}")


def _readable(message: str) -> str:
    """The model server's error text: TEI/our servers send {"error": ...}; pass plain text through."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return message
    if isinstance(parsed, dict):
        return str(parsed.get("error") or parsed.get("message") or parsed)
    return message
