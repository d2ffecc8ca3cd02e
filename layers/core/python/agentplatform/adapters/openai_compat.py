"""The LLM gateway's provider for any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, llama.cpp's server, TGI's
Messages API, the local model server's /v1 routes): `POST {base_url}/chat/completions` and `{base_url}/embeddings`.

The API key comes from Secrets Manager in AWS (the target names the secret; a plain SecretString or JSON with
`api_key`), read once per container; locally there is none. `requests` with no retry adapter: the gateway retries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agentplatform.errors import (
    DependencyUnavailable,
    ModelInputRejected,
    ModelOutputInvalid,
    PlatformError,
    UpstreamThrottled,
)
from agentplatform.inference import ChatResponse, Usage
from agentplatform.model_clients import chat_response

if TYPE_CHECKING:
    import requests

    from agentplatform.llm import ChatCall

CONNECT_TIMEOUT_S = 3.0


class SecretsManagerKey:
    """The default `secret_resolver`: GetSecretValue on a secret name or ARN."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def __call__(self, secret_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        from agentplatform.adapters.aws.errors import translate

        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        try:
            value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, resource=f"secret {secret_id}") from exc
        try:
            parsed = json.loads(value)
        except ValueError:
            return value.strip()
        if isinstance(parsed, dict) and isinstance(parsed.get("api_key"), str):
            return parsed["api_key"]
        return value.strip()


class OpenAICompatibleProvider:
    def __init__(
        self,
        base_url: str,
        *,
        api_key_secret: str | None = None,
        secret_resolver: Callable[[str], str] | None = None,
        session: requests.Session | None = None,
        name: str = "openai",
    ) -> None:
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._secret = api_key_secret
        self._resolve = secret_resolver or SecretsManagerKey()
        self._session = session
        self._key: str | None = None
        self._lock = threading.Lock()

    def chat(self, call: ChatCall, *, model: str, timeout_s: float) -> ChatResponse:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [m.model_dump(mode="json", exclude_none=True) for m in call.messages],
            "max_tokens": call.max_tokens,
            "temperature": call.temperature,
        }
        if call.tools:
            payload["tools"] = [t.model_dump(mode="json", exclude_none=True) for t in call.tools]
        if call.tool_choice is not None:
            choice = call.tool_choice
            payload["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump(mode="json")
        if call.stop:
            payload["stop"] = list(call.stop)
        if call.needs_json and call.response_format is not None:
            payload["response_format"] = call.response_format.model_dump(mode="json", exclude_none=True)
        answer = self._post("/chat/completions", payload, timeout_s, model)
        return chat_response(answer, f"{self._base_url} {model}", model=model)

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> tuple[list[list[float]], Usage]:
        answer = self._post("/embeddings", {"model": model, "input": list(texts)}, timeout_s, model)
        try:
            data = sorted(answer["data"], key=lambda d: d["index"])
            vectors = [[float(v) for v in d["embedding"]] for d in data]
            if [d["index"] for d in data] != list(range(len(texts))):
                raise ValueError(f"expected {len(texts)} embeddings, got {len(vectors)}")
            prompt = int(answer.get("usage", {}).get("prompt_tokens") or 0)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelOutputInvalid(f"{self._base_url} {model}: embeddings answer: {exc!r}", model=model) from exc
        return vectors, Usage(prompt_tokens=prompt, completion_tokens=0, total_tokens=prompt)

    def _post(self, path: str, payload: dict[str, Any], timeout_s: float, model: str) -> Any:
        import requests

        headers = {"Content-Type": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self._base_url + path
        try:
            response = self._http().post(
                url, data=json.dumps(payload), headers=headers, timeout=(min(CONNECT_TIMEOUT_S, timeout_s), timeout_s)
            )
        except requests.Timeout as exc:
            raise DependencyUnavailable(f"{url} timed out after {timeout_s:.1f} s", model=model) from exc
        except requests.RequestException as exc:
            raise DependencyUnavailable(f"{url} unreachable: {type(exc).__name__}", model=model) from exc
        if response.status_code >= 400:
            raise _http_error(response, url, model)
        try:
            return response.json()
        except ValueError as exc:
            raise ModelOutputInvalid(f"{url} answered with non-JSON", model=model) from exc

    def _api_key(self) -> str | None:
        if self._secret is None:
            return None
        with self._lock:
            if self._key is None:
                self._key = self._resolve(self._secret)
            return self._key

    def _http(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()  # default adapters: max_retries=0
        return self._session


def _http_error(response: requests.Response, url: str, model: str) -> PlatformError:
    status = response.status_code
    message = _error_message(response)
    if status == 429:
        retry_after = response.headers.get("Retry-After")
        return UpstreamThrottled(f"{url} throttled the request: {message}", model=model, retry_after=retry_after)
    if status >= 500 or status == 408:
        return DependencyUnavailable(f"{url} failed ({status}): {message}", model=model, status=status)
    return ModelInputRejected(f"{url} refused the input ({status}): {message}", model=model, status=status)


def _error_message(response: requests.Response) -> str:
    """OpenAI's {"error": {"message": ...}}, TGI's {"error": "..."}, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body)[:200]
