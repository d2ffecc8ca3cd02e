"""Which adapter serves a policy target's `provider` kind, built once per container and target.

Adapters are imported by module path when a target first needs one, so a container whose policy names no Bedrock
target never imports boto3's bedrock-runtime model, and an adapter that fails to import fails only the targets
that use it (the gateway counts it as that target's failure and falls back).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from agentplatform.errors import ConfigurationError
from agentplatform.inference import ChatResponse, Usage
from agentplatform.llm import ChatCall
from agentplatform.ports import LlmProvider
from agentplatform.topology import split_ref
from functions.llm_gateway.policy import Target

Builder = Callable[[Target, Any], LlmProvider]  # (target, container) -> provider


def _load(module: str, attribute: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"provider adapter {module}.{attribute} is not available: {exc}") from exc


class _AtModel:
    """A provider that addresses the target by another id than the policy's `model` (a SageMaker endpoint's
    physical name): the policy stays readable and deploy-independent."""

    def __init__(self, provider: LlmProvider, model: str) -> None:
        self.name = provider.name
        self._provider = provider
        self._model = model

    def chat(self, call: ChatCall, *, model: str, timeout_s: float) -> ChatResponse:
        return self._provider.chat(call, model=self._model, timeout_s=timeout_s)

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> tuple[list[list[float]], Usage]:
        return self._provider.embed(texts, model=self._model, timeout_s=timeout_s)


def endpoint_name(ref: str, settings: Any) -> str:
    """The physical endpoint name of a topology ref ("endpoint:generation"), from the function's settings."""
    kind, name = split_ref(ref)
    value = getattr(settings, f"{name}_endpoint_name", None) if kind == "endpoint" else None
    if not value:
        raise ConfigurationError(f"no endpoint name configured for {ref!r}", ref=ref)
    return str(value)


def _sagemaker(target: Target, c: Any) -> LlmProvider:
    clients = _load("agentplatform.adapters.aws.sagemaker_chat", "TimedClients").for_settings(
        c.settings, "sagemaker-runtime"
    )
    provider = _load("agentplatform.adapters.aws.sagemaker_chat", "SageMakerChatProvider")(clients)
    assert target.endpoint is not None  # the policy requires it for sagemaker targets
    return _AtModel(provider, endpoint_name(target.endpoint, c.settings))


def _bedrock(target: Target, c: Any) -> LlmProvider:
    timed = _load("agentplatform.adapters.aws.sagemaker_chat", "TimedClients")
    clients = timed("bedrock-runtime", region=target.region or c.settings.region)
    return _load("agentplatform.adapters.aws.bedrock", "BedrockConverseProvider")(clients)


def _openai(target: Target, c: Any) -> LlmProvider:
    assert target.base_url is not None  # the policy requires it for openai targets
    # "{model_server}" is the local model server's URL: the local policy cannot know its port.
    base_url = target.base_url.replace("{model_server}", c.settings.local_model_endpoint_url.rstrip("/"))
    module = "agentplatform.adapters.openai_compat"
    resolver = _load(module, "SecretsManagerKey")(c.client("secretsmanager")) if target.secret else None
    provider_class = _load(module, "OpenAICompatibleProvider")
    return provider_class(base_url, api_key_secret=target.secret, secret_resolver=resolver)


def _extractive(target: Target, c: Any) -> LlmProvider:
    return _load("functions.llm_gateway.providers.extractive", "ExtractiveProvider")(c.embedding_model)


BUILDERS: dict[str, Builder] = {
    "sagemaker": _sagemaker,
    "bedrock": _bedrock,
    "openai": _openai,
    "extractive": _extractive,
}


class Providers:
    """`(target name, target) -> provider`, built on first use and kept while the target's settings stay the
    same (an edited policy that changes a target rebuilds its provider)."""

    def __init__(self, container: Any, builders: dict[str, Builder] | None = None) -> None:
        self._container = container
        self._builders = builders or BUILDERS
        self._built: dict[str, tuple[Target, LlmProvider]] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, target: Target) -> LlmProvider:
        with self._lock:
            known = self._built.get(name)
            if known is not None and known[0] == target.model_copy(update={"fault": known[0].fault}):
                return known[1]
            builder = self._builders.get(target.provider)
            if builder is None:
                raise ConfigurationError(f"no provider adapter for kind {target.provider!r}", target=name)
            provider = builder(target, self._container)
            self._built[name] = (target, provider)
            return provider
