"""The official `openai` client, unchanged, against the running local stack with an API key: the API's
OpenAI-compatible routes -> the LLM gateway function -> the local model server's real models."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from agentplatform.topology import ADMIN_SCOPE
from local.runtime import LocalRuntime
from tests.fixtures.tools import WEATHER
from tests.integration.conftest import bearer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def runtime_overrides() -> dict[str, Any]:
    return {"LOCAL_MODELS": "all"}


@pytest.fixture(scope="module")
def api_key(runtime: LocalRuntime) -> str:
    admin = bearer(runtime, "acme", scopes=[ADMIN_SCOPE], subject="acme-admin")
    created = requests.post(
        f"{runtime.http_url}/v1/admin/api-keys",
        json={"name": "openai-client", "scopes": ["llm", "usage"]},
        headers=admin,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return created.json()["key"]


@pytest.fixture(scope="module")
def client(runtime: LocalRuntime, api_key: str) -> Iterator[Any]:
    assert runtime.model_server is not None and runtime.model_server.wait_ready(300)
    # No client retries: a failure here must show, not be papered over.
    with openai.OpenAI(base_url=runtime.http_url + "/v1", api_key=api_key, max_retries=0, timeout=180) as c:
        yield c


def test_chat_completion(client: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hello to the team."}], max_tokens=12
    )
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert 0 < completion.usage.completion_tokens <= 12 and completion.usage.prompt_tokens > 0
    assert completion.model == raw.headers["x-gateway-target"]
    assert raw.headers["x-gateway-cache"] in ("miss", "bypass", "exact", "semantic")
    assert int(raw.headers["x-gateway-attempts"]) >= 1 and float(raw.headers["x-gateway-overhead-ms"]) >= 0


def test_a_tool_call_when_tools_are_given(client: Any) -> None:
    completion = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "What is the weather in Paris right now?"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "get_weather"
    assert isinstance(json.loads(tool_call.function.arguments).get("city"), str)


def test_embeddings(client: Any) -> None:
    texts = ["How does heat transfer affect the boundary layer?", "boundary layer heat transfer", "a bread recipe"]
    response = client.embeddings.create(model="auto", input=texts)  # the client asks base64 and decodes it
    vectors = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert response.usage.prompt_tokens > 0
    floats = client.embeddings.create(model="auto", input=texts[0], encoding_format="float")
    assert cosine(floats.data[0].embedding, vectors[0]) > 0.9999


def test_stream_is_a_clear_400_and_an_unknown_model_a_422(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert refused.value.body["code"] == "unsupported_parameter"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as unknown:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    assert [e["field"] for e in unknown.value.body["errors"]] == ["body.model"]  # type: ignore[index]


def test_usage_sums_the_calls(runtime: LocalRuntime, api_key: str, client: Any) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    before = requests.get(f"{runtime.http_url}/v1/usage", headers=headers, timeout=30)
    assert before.status_code == 200, before.text
    client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Count to three."}], max_tokens=8
    )
    after = requests.get(f"{runtime.http_url}/v1/usage", headers=headers, timeout=30).json()
    assert after["tenant"] == "acme" and after["records"] == before.json()["records"] + 1
    assert after["tokens_used"] == sum(line["prompt_tokens"] + line["completion_tokens"] for line in after["lines"])
    assert after["tokens_used"] > before.json()["tokens_used"]
