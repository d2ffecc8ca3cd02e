"""The embedding endpoint's /invocations: TEI's /embed contract over SentenceEmbedder."""

from __future__ import annotations

from typing import Any

from agentplatform.inference import EmbeddingRequest
from endpoints.embedding.engine import InputTooLong, SentenceEmbedder
from endpoints.protocol import InvocationError, parse_request


class EmbeddingService:
    def __init__(self, embedder: SentenceEmbedder) -> None:
        self.embedder = embedder

    def invoke(self, body: bytes, content_type: str | None) -> tuple[int, Any]:
        try:
            request = parse_request(body, content_type, EmbeddingRequest)
            vectors = self.embedder.embed(request.texts, truncate=request.truncate, normalize=request.normalize)
        except InvocationError as exc:
            return exc.status, exc.body()
        except InputTooLong as exc:
            return 413, InvocationError(413, str(exc)).body()
        return 200, vectors.tolist()
