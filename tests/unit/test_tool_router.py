"""The similarity router: best tool above the threshold, none below it, always a tool when required."""

from __future__ import annotations

import numpy as np

from endpoints.generation.router import SimilarityRouter

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city."}},
    {"type": "function", "function": {"name": "createTicket", "description": "Open a support ticket."}},
]


class WordEmbedder:
    """Bag of words over a tiny vocabulary: enough to make similarity meaningful and predictable."""

    VOCABULARY = ["weather", "city", "rain", "ticket", "support", "open", "hello"]

    def __init__(self):
        self.seen = []

    def embed(self, texts, *, truncate=True, normalize=True):
        self.seen.extend(texts)
        rows = np.array([[t.lower().count(w) for w in self.VOCABULARY] for t in texts], dtype=float) + 1e-6
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_routes_to_the_most_similar_tool_and_answers_when_nothing_fits():
    router = SimilarityRouter(WordEmbedder(), threshold=0.3)
    assert router.route("will it rain in this city? weather please", TOOLS, required=False) == "get_weather"
    assert router.route("open a support ticket", TOOLS, required=False) == "createTicket"
    assert router.route("hello", TOOLS, required=False) is None
    assert router.route("hello", TOOLS, required=True) in {"get_weather", "createTicket"}


def test_tool_names_count_as_words():
    embedder = WordEmbedder()
    SimilarityRouter(embedder, threshold=0.3).route("x", TOOLS, required=False)
    assert embedder.seen[1:] == ["get weather: Weather for a city.", "create ticket: Open a support ticket."]


def test_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOOL_ROUTER_THRESHOLD", "0.99")
    assert SimilarityRouter(WordEmbedder()).route("weather city", TOOLS, required=False) is None
