"""The LLM gateway's SageMaker provider: a chat or embedding call on a SageMaker real-time endpoint (TGI Messages
API / LMI for chat, TEI for embeddings), over the same InvokeEndpoint adapter the rest of the platform uses.

Also `TimedClients`, shared by the boto3 providers: botocore fixes a client's timeouts when it is built, so a
per-call timeout needs a client per timeout. One is built per whole second asked for and kept, so a container
holds a handful; each has the SDK's retries off (the gateway retries, in one place).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
from agentplatform.errors import ConfigurationError, DependencyUnavailable
from agentplatform.inference import EMBEDDING_DIMENSION, ChatRequest, ChatResponse, Usage, estimate_tokens
from agentplatform.model_clients import EndpointEmbeddings, chat_response

if TYPE_CHECKING:
    from agentplatform.config import Settings
    from agentplatform.llm import ChatCall

CONNECT_TIMEOUT_S = 3.0


class TimedClients:
    """boto3 clients of one service whose read timeout is the call's own. An injected `client` (a Stubber's,
    a test's) is used for every call as it is."""

    def __init__(
        self,
        service: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
        client: Any = None,
    ) -> None:
        self.service = service
        self._region = region
        self._endpoint_url = endpoint_url
        self._credentials = credentials or {}
        self._fixed = client
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings, service: str) -> TimedClients:
        """Pointed where the container's own clients point (moto or the model server locally, AWS otherwise)."""
        credentials = None
        if settings.backend == "local":  # as Container: a developer's real credentials never travel to moto
            credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        return cls(
            service, region=settings.region, endpoint_url=settings.endpoint_url(service), credentials=credentials
        )

    def get(self, timeout_s: float) -> Any:
        if self._fixed is not None:
            return self._fixed
        seconds = max(1, math.ceil(timeout_s))
        with self._lock:
            if seconds not in self._clients:
                self._clients[seconds] = self._build(seconds)
            return self._clients[seconds]

    def _build(self, seconds: int) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            # total_max_attempts counts the first try; botocore's `max_attempts` counts retries (1 = two tries).
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=min(CONNECT_TIMEOUT_S, seconds),
            read_timeout=seconds,
        )
        kwargs: dict[str, Any] = {"config": config, **self._credentials}
        if self._region:
            kwargs["region_name"] = self._region
        if self._endpoint_url:
            kwargs["endpoint_url"] = self._endpoint_url
        try:
            return boto3.session.Session().client(self.service, **kwargs)
        except ValueError as exc:
            raise ConfigurationError(f"cannot build a {self.service} client: {exc}", service=self.service) from exc


class SageMakerChatProvider:
    """`model` is the endpoint's physical name. A JSON `response_format` goes to the endpoint as OpenAI's shape
    (TGI and LMI take it); a target whose endpoint does not lacks the `json` capability and the gateway skips it."""

    name = "sagemaker"

    def __init__(self, clients: TimedClients | None = None, *, dimension: int = EMBEDDING_DIMENSION) -> None:
        self._clients = clients or TimedClients("sagemaker-runtime")
        self._dimension = dimension

    def chat(self, call: ChatCall, *, model: str, timeout_s: float) -> ChatResponse:
        request = ChatRequest(
            messages=call.messages,
            tools=call.tools,
            tool_choice=call.tool_choice,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
            stop=call.stop,
        )
        payload = request.model_dump(mode="json", exclude_none=True)
        if call.needs_json and call.response_format is not None:
            payload["response_format"] = call.response_format.model_dump(mode="json", exclude_none=True)
        answer = self._endpoint(model, timeout_s).invoke(payload)
        return chat_response(answer, f"chat endpoint {model}", endpoint=model)

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> tuple[list[list[float]], Usage]:
        vectors = EndpointEmbeddings(self._endpoint(model, timeout_s), dimension=self._dimension).embed(texts)
        # TEI reports no usage: the tokens are estimated, as everywhere else an embedding call is metered.
        tokens = sum(estimate_tokens(t) for t in texts)
        return vectors, Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)

    def _endpoint(self, model: str, timeout_s: float) -> _GatewayEndpoint:
        return _GatewayEndpoint(model, self._clients.get(timeout_s))


class _GatewayEndpoint(SageMakerEndpoint):
    """To the gateway a missing or still-loading endpoint is an unavailable target (fall back), not a crash."""

    def invoke(self, payload: Any) -> Any:
        try:
            return super().invoke(payload)
        except ConfigurationError as exc:
            raise DependencyUnavailable(exc.detail, endpoint=self.name) from exc
