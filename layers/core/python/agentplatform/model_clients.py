"""Typed clients over the ModelEndpoint port: contracts checked on the way out and on the way back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from agentplatform.errors import ModelOutputInvalid
from agentplatform.inference import (
    EMBEDDING_DIMENSION,
    EMBEDDING_MAX_BATCH,
    EMBEDDING_MAX_CHARS,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
)
from agentplatform.ports import ModelEndpoint


class EndpointEmbeddings:
    """EmbeddingModel over a TEI-contract endpoint: batches of at most the endpoint's batch size."""

    def __init__(
        self, endpoint: ModelEndpoint, dimension: int = EMBEDDING_DIMENSION, batch_size: int = EMBEDDING_MAX_BATCH
    ) -> None:
        self._endpoint = endpoint
        self.dimension = dimension
        self._batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            # Clipped to the contract's character bound: only the head fits the model's window anyway.
            batch = [text[:EMBEDDING_MAX_CHARS] for text in texts[start : start + self._batch_size]]
            # truncate=True: a passage longer than the model's window is embedded by its head, not refused.
            request = EmbeddingRequest(inputs=batch, normalize=True, truncate=True)
            payload = self._endpoint.invoke(request.model_dump())
            try:
                response = EmbeddingResponse.parse(payload, expected=len(batch))
            except (ValidationError, ValueError) as exc:
                raise ModelOutputInvalid(f"embedding endpoint {self._endpoint.name}: {exc}") from exc
            if any(len(v) != self.dimension for v in response.vectors):
                raise ModelOutputInvalid(
                    f"embedding endpoint {self._endpoint.name} returned vectors that are not {self.dimension}-d"
                )
            vectors.extend(response.vectors)
        return vectors

    def check(self) -> None:
        """Health: one word embedded; the endpoint's own error when it does not answer."""
        self.embed(["health"])


class EndpointChat:
    """ChatModel over an OpenAI chat-completions endpoint (TGI Messages API, LMI, the local server)."""

    def __init__(self, endpoint: ModelEndpoint) -> None:
        self._endpoint = endpoint

    def chat(self, request: ChatRequest) -> ChatResponse:
        payload = self._endpoint.invoke(request.model_dump(exclude_none=True))
        return chat_response(payload, f"chat endpoint {self._endpoint.name}")

    def check(self) -> None:
        """Health: a one-token answer (the cheapest generation that proves the model serves)."""
        self.chat(ChatRequest(messages=[ChatMessage(role="user", content="ping")], max_tokens=1))


def chat_response(payload: Any, source: str, **context: Any) -> ChatResponse:
    """A chat-completions answer checked against the contract, tool-call arguments included (JSON objects);
    ModelOutputInvalid naming `source` when it breaks it."""
    try:
        response = ChatResponse.model_validate(payload)
        for call in response.choices[0].message.tool_calls or []:
            call.function.parsed_arguments()
    except (ValidationError, ValueError) as exc:
        raise ModelOutputInvalid(f"{source}: {exc}", **context) from exc
    return response


class EndpointReranker:
    """RerankModel over a TEI `/rerank`-contract endpoint."""

    def __init__(self, endpoint: ModelEndpoint) -> None:
        self._endpoint = endpoint

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        request = RerankRequest(query=query[:EMBEDDING_MAX_CHARS], texts=[t[:EMBEDDING_MAX_CHARS] for t in texts])
        payload = self._endpoint.invoke(request.model_dump())
        try:
            response = RerankResponse.parse(payload, expected=len(texts))
        except (ValidationError, ValueError) as exc:
            raise ModelOutputInvalid(f"rerank endpoint {self._endpoint.name}: {exc}") from exc
        scores = [0.0] * len(texts)
        for item in response.scores:
            scores[item.index] = item.score
        return scores
