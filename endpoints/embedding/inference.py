"""Entry point of the SageMaker Hugging Face inference container for the embedding endpoint.

model_dir holds the model files (config.json, tokenizer.json, model.safetensors) at its root; the encoder
runs on torch, on the GPU when the instance has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from endpoints.embedding.engine import SentenceEmbedder
from endpoints.embedding.service import EmbeddingService
from endpoints.protocol_toolkit import input_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]


def model_fn(model_dir: str, context: Any = None) -> EmbeddingService:
    return EmbeddingService(SentenceEmbedder.load(backend="torch", model_dir=Path(model_dir)))
