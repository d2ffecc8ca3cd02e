"""Which tool, if any, a message calls for: by sentence similarity between the message and each tool's name
and description (all-MiniLM-L6-v2), with a threshold below which the model answers directly.

Measured on the 20 labelled prompts of tests/integration/test_model_endpoints.py (3 tools): scoring the
tool names with the local 135M chat model picked right 6 of 20 times (chance level); this router 15 of 20
(weather 4/4, tickets 3/4, no-tool 8/8, knowledge-base search 0/4: "search our docs" sits close to nothing in
a one-line description). The threshold was read off those same prompts, so treat it as a starting point:
TOOL_ROUTER_THRESHOLD overrides it, and richer tool descriptions route better. A larger chat model can route
itself; this router is what makes a small one usable.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

import numpy as np

ANSWER_THRESHOLD = 0.25  # best similarity below this: no tool fits, answer directly


class Embedder(Protocol):
    def embed(self, texts: list[str], *, truncate: bool = True, normalize: bool = True) -> np.ndarray: ...


class SimilarityRouter:
    def __init__(self, embedder: Embedder, threshold: float | None = None) -> None:
        self._embedder = embedder
        self._threshold = (
            threshold if threshold is not None else float(os.environ.get("TOOL_ROUTER_THRESHOLD", ANSWER_THRESHOLD))
        )

    def route(self, message: str, tools: list[dict[str, Any]], *, required: bool) -> str | None:
        """The best tool's name, or None when no tool is similar enough (never None when `required`)."""
        descriptions = [_describe(t["function"]) for t in tools]
        vectors = self._embedder.embed([message, *descriptions])
        similarity = vectors[1:] @ vectors[0]
        best = int(np.argmax(similarity))
        if not required and similarity[best] < self._threshold:
            return None
        return str(tools[best]["function"]["name"])


def _describe(function: dict[str, Any]) -> str:
    # get_weather -> "get weather": the words of the name count as much as the description's.
    words = re.sub(r"[_\-]+", " ", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", function["name"])).lower()
    return f"{words}: {function.get('description') or ''}"
