"""Entry point of the SageMaker Hugging Face inference container for the generation endpoint.

The container downloads the model named by HF_MODEL_ID into model_dir; it runs on the GPU when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from endpoints.embedding.engine import SentenceEmbedder
from endpoints.generation.engine import ChatEngine
from endpoints.generation.router import SimilarityRouter
from endpoints.generation.service import GenerationService
from endpoints.protocol_toolkit import input_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]


def model_fn(model_dir: str, context: Any = None) -> GenerationService:
    router_dir = Path(model_dir) / "router"  # the tool router's sentence model, shipped in model.tar.gz
    router = None
    if (router_dir / "config.json").exists():
        router = SimilarityRouter(SentenceEmbedder.load(backend="torch", model_dir=router_dir))
    return GenerationService(ChatEngine.load(model_dir=Path(model_dir)), router)
