"""The LLM gateway's providers (ports.LlmProvider): Bedrock Converse against botocore's Stubber (which validates
each request against the service model), SageMaker and the OpenAI-compatible provider against the real local
model server, and every provider's failures as the platform's errors."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from agentplatform.adapters.aws.bedrock import BedrockConverseProvider
from agentplatform.adapters.aws.sagemaker_chat import SageMakerChatProvider, TimedClients
from agentplatform.adapters.openai_compat import OpenAICompatibleProvider, SecretsManagerKey
from agentplatform.errors import (
    DependencyUnavailable,
    ModelInputRejected,
    ModelOutputInvalid,
    UpstreamThrottled,
)
from agentplatform.llm import ChatCall
from agentplatform.ports import LlmProvider
from local.model_server import ModelServer, hosted_model
from tests.fixtures.tools import WEATHER

TITAN = "amazon.titan-embed-text-v2:0"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
# WEATHER as Converse's toolConfig names it
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "inputSchema": {"json": WEATHER["function"]["parameters"]},
    }
}


def chat_call(**fields: Any) -> ChatCall:
    fields.setdefault("messages", [{"role": "user", "content": "What is the boundary layer?"}])
    return ChatCall(tenant="acme", **fields)


# --- Bedrock Converse -------------------------------------------------------------------------------------------


@pytest.fixture
def bedrock() -> Iterator[tuple[BedrockConverseProvider, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    with Stubber(client) as stubber:
        yield BedrockConverseProvider(TimedClients("bedrock-runtime", client=client)), stubber
        stubber.assert_no_pending_responses()


def converse_answer(content: list[dict[str, Any]], stop: str, tokens_in: int = 12, tokens_out: int = 5) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "totalTokens": tokens_in + tokens_out},
        "metrics": {"latencyMs": 210},
    }


def test_bedrock_text_answer_maps_system_inference_config_and_usage(bedrock) -> None:
    provider, stubber = bedrock
    call = chat_call(
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the boundary layer?"},
        ],
        max_tokens=64,
        temperature=0.2,
        stop=["\n\n"],
    )
    stubber.add_response(
        "converse",
        converse_answer([{"text": "A thin layer of fluid near a surface."}], "end_turn", 14, 9),
        expected_params={
            "modelId": CLAUDE,
            "system": [{"text": "Answer briefly."}],
            "messages": [{"role": "user", "content": [{"text": "What is the boundary layer?"}]}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "stopSequences": ["\n\n"]},
        },
    )
    response = provider.chat(call, model=CLAUDE, timeout_s=5)
    choice = response.choices[0]
    assert choice.message.content == "A thin layer of fluid near a surface."
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (14, 9, 23)
    assert response.model == CLAUDE


def test_bedrock_tool_use_round_trip(bedrock) -> None:
    provider, stubber = bedrock
    call = chat_call(
        messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], tool_choice="required"
    )
    stubber.add_response(
        "converse",
        converse_answer(
            [{"toolUse": {"toolUseId": "tu-1", "name": "get_weather", "input": {"city": "Paris"}}}], "tool_use"
        ),
        expected_params={
            "modelId": CLAUDE,
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            "inferenceConfig": {"maxTokens": 256, "temperature": 0.0},
            "toolConfig": {
                "tools": [WEATHER_SPEC],
                "toolChoice": {"any": {}},
            },
        },
    )
    response = provider.chat(call, model=CLAUDE, timeout_s=5)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls or []
    assert tool_call.id == "tu-1" and tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}

    # The next turn carries the call and two tool results: one assistant toolUse turn, one user toolResult turn.
    follow_up = chat_call(
        messages=[
            {"role": "user", "content": "Weather in Paris and Lyon?"},
            {"role": "assistant", "tool_calls": [tool_call.model_dump(), {**tool_call.model_dump(), "id": "tu-2"}]},
            {"role": "tool", "tool_call_id": "tu-1", "content": "18 C, sunny"},
            {"role": "tool", "tool_call_id": "tu-2", "content": "16 C, rain"},
        ],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    stubber.add_response(
        "converse",
        converse_answer([{"text": "Paris 18 C, Lyon 16 C."}], "end_turn"),
        expected_params={
            "modelId": CLAUDE,
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Paris and Lyon?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "tu-1", "name": "get_weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "tu-2", "name": "get_weather", "input": {"city": "Paris"}}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "tu-1", "content": [{"text": "18 C, sunny"}]}},
                        {"toolResult": {"toolUseId": "tu-2", "content": [{"text": "16 C, rain"}]}},
                    ],
                },
            ],
            "inferenceConfig": {"maxTokens": 256, "temperature": 0.0},
            "toolConfig": {
                "tools": [WEATHER_SPEC],
                "toolChoice": {"tool": {"name": "get_weather"}},
            },
        },
    )
    assert provider.chat(follow_up, model=CLAUDE, timeout_s=5).choices[0].message.content == "Paris 18 C, Lyon 16 C."


def test_bedrock_tool_choice_none_leaves_the_tools_out(bedrock) -> None:
    provider, stubber = bedrock
    stubber.add_response(
        "converse",
        converse_answer([{"text": "No tools needed."}], "end_turn"),
        expected_params={
            "modelId": CLAUDE,
            "messages": [{"role": "user", "content": [{"text": "What is the boundary layer?"}]}],
            "inferenceConfig": {"maxTokens": 256, "temperature": 0.0},
        },
    )
    provider.chat(chat_call(tools=[WEATHER], tool_choice="none"), model=CLAUDE, timeout_s=5)


def test_bedrock_max_tokens_stop_is_length(bedrock) -> None:
    provider, stubber = bedrock
    stubber.add_response("converse", converse_answer([{"text": "The boundary layer is"}], "max_tokens", 10, 4))
    response = provider.chat(chat_call(max_tokens=4), model=CLAUDE, timeout_s=5)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 4


def test_bedrock_json_schema_goes_to_output_config(bedrock) -> None:
    provider, stubber = bedrock
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    call = chat_call(response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}})
    stubber.add_response(
        "converse",
        converse_answer([{"text": '{"answer": "a thin layer"}'}], "end_turn"),
        expected_params={
            "modelId": CLAUDE,
            "messages": [{"role": "user", "content": [{"text": "What is the boundary layer?"}]}],
            "inferenceConfig": {"maxTokens": 256, "temperature": 0.0},
            "outputConfig": {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {"jsonSchema": {"schema": json.dumps(schema), "name": "reply"}},
                }
            },
        },
    )
    assert json.loads(provider.chat(call, model=CLAUDE, timeout_s=5).choices[0].message.content or "") == {
        "answer": "a thin layer"
    }


def test_bedrock_a_broken_answer_is_model_output_invalid(bedrock) -> None:
    provider, stubber = bedrock
    stubber.add_response("converse", converse_answer([{"text": "{bad"}], "malformed_tool_use"))
    with pytest.raises(ModelOutputInvalid):
        provider.chat(chat_call(), model=CLAUDE, timeout_s=5)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 429, UpstreamThrottled),
        ("ValidationException", 400, ModelInputRejected),
        ("ModelTimeoutException", 408, DependencyUnavailable),
        ("ServiceUnavailableException", 503, DependencyUnavailable),
        ("InternalServerException", 500, DependencyUnavailable),
        ("ModelNotReadyException", 429, UpstreamThrottled),  # a 429 is throttling, whatever the code
    ],
)
def test_bedrock_errors_are_platform_errors(bedrock, code: str, status: int, expected: type) -> None:
    provider, stubber = bedrock
    stubber.add_client_error("converse", service_error_code=code, service_message="m", http_status_code=status)
    with pytest.raises(expected) as raised:
        provider.chat(chat_call(), model=CLAUDE, timeout_s=5)
    assert raised.value.context["aws_code"] == code


def test_bedrock_timeout_is_dependency_unavailable() -> None:
    class TimingOut:
        def converse(self, **_: Any) -> Any:
            raise ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")

    provider = BedrockConverseProvider(TimedClients("bedrock-runtime", client=TimingOut()))
    with pytest.raises(DependencyUnavailable):
        provider.chat(chat_call(), model=CLAUDE, timeout_s=1)


def test_bedrock_titan_embeddings(bedrock) -> None:
    provider, stubber = bedrock
    for text, vector, tokens in (("first", [0.6, 0.8], 2), ("second one", [1.0, 0.0], 3)):
        answer = json.dumps({"embedding": vector, "inputTextTokenCount": tokens}).encode()
        stubber.add_response(
            "invoke_model",
            {"body": StreamingBody(io.BytesIO(answer), len(answer)), "contentType": "application/json"},
            expected_params={
                "modelId": TITAN,
                "body": json.dumps({"inputText": text, "normalize": True}),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
    vectors, usage = provider.embed(["first", "second one"], model=TITAN, timeout_s=5)
    assert vectors == [[0.6, 0.8], [1.0, 0.0]] and usage.prompt_tokens == 5


def test_bedrock_chat_model_is_not_an_embedding_model(bedrock) -> None:
    provider, _ = bedrock
    with pytest.raises(ModelInputRejected):
        provider.embed(["x"], model=CLAUDE, timeout_s=5)


def test_timed_clients_have_the_calls_timeout_and_no_sdk_retries() -> None:
    clients = TimedClients(
        "bedrock-runtime", region="us-east-1", credentials={"aws_access_key_id": "t", "aws_secret_access_key": "t"}
    )
    client = clients.get(2.5)
    assert client.meta.config.read_timeout == 3 and client.meta.config.connect_timeout == 3
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert clients.get(2.1) is client and clients.get(0.2).meta.config.read_timeout == 1
    assert clients.get(0.2).meta.config.connect_timeout == 1


# --- SageMaker chat over the Stubber -------------------------------------------------------------------------------


@pytest.fixture
def sagemaker_stub() -> Iterator[tuple[SageMakerChatProvider, Stubber]]:
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stubber:
        yield SageMakerChatProvider(TimedClients("sagemaker-runtime", client=client)), stubber
        stubber.assert_no_pending_responses()


def streaming(payload: Any) -> StreamingBody:
    data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return StreamingBody(io.BytesIO(data), len(data))


CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "SmolLM2",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": '{"a": 1}'}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}


def test_sagemaker_chat_passes_a_json_schema_to_the_endpoint(sagemaker_stub) -> None:
    provider, stubber = sagemaker_stub
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    call = chat_call(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
    expected = {
        "messages": [{"role": "user", "content": "What is the boundary layer?"}],
        "max_tokens": 256,
        "temperature": 0.0,
        "top_p": 1.0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    }
    stubber.add_response(
        "invoke_endpoint",
        {"Body": streaming(CHAT_ANSWER), "ContentType": "application/json"},
        expected_params={
            "EndpointName": "gen-endpoint",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(expected).encode(),
        },
    )
    response = provider.chat(call, model="gen-endpoint", timeout_s=5)
    assert response.choices[0].message.content == '{"a": 1}' and response.usage.total_tokens == 12


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"service_error_code": "ModelError", "http_status_code": 424, "OriginalStatusCode": 500},
            DependencyUnavailable,
        ),
        ({"service_error_code": "ModelError", "http_status_code": 424, "OriginalStatusCode": 422}, ModelInputRejected),
        ({"service_error_code": "ThrottlingException", "http_status_code": 400}, UpstreamThrottled),
        ({"service_error_code": "ValidationError", "http_status_code": 400}, DependencyUnavailable),  # no endpoint
    ],
)
def test_sagemaker_chat_errors(sagemaker_stub, error: dict[str, Any], expected: type) -> None:
    provider, stubber = sagemaker_stub
    original = error.pop("OriginalStatusCode", None)
    fields = {"OriginalStatusCode": original, "OriginalMessage": '{"error": "m"}'} if original else {}
    stubber.add_client_error("invoke_endpoint", service_message="m", modeled_fields=fields or None, **error)
    with pytest.raises(expected):
        provider.chat(chat_call(), model="gen-endpoint", timeout_s=5)


def test_sagemaker_chat_broken_answer(sagemaker_stub) -> None:
    provider, stubber = sagemaker_stub
    broken = {**CHAT_ANSWER, "choices": []}
    stubber.add_response("invoke_endpoint", {"Body": streaming(broken), "ContentType": "application/json"})
    with pytest.raises(ModelOutputInvalid):
        provider.chat(chat_call(), model="gen-endpoint", timeout_s=5)


# --- the real local model server: SageMaker and the OpenAI-compatible provider --------------------------------------


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory) -> Iterator[ModelServer]:
    server = ModelServer(
        "127.0.0.1", 0, [hosted_model("emb", "embedding", tmp_path_factory.mktemp("models"), 1)], "000000000000"
    )
    server.start()
    assert server.wait_ready(120), server.health()
    yield server
    server.stop()


def sagemaker(server: ModelServer) -> SageMakerChatProvider:
    credentials = {"aws_access_key_id": "t", "aws_secret_access_key": "t"}
    return SageMakerChatProvider(
        TimedClients("sagemaker-runtime", region="us-east-1", endpoint_url=server.url, credentials=credentials)
    )


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_providers_satisfy_the_port(embedding_server: ModelServer) -> None:
    # Typed as the port (mypy checks the signatures); here: each is a distinct, named provider.
    providers: list[LlmProvider] = [
        sagemaker(embedding_server),
        OpenAICompatibleProvider(embedding_server.url + "/v1"),
        BedrockConverseProvider(),
    ]
    assert [p.name for p in providers] == ["sagemaker", "openai", "bedrock"]
    assert all(callable(p.chat) and callable(p.embed) for p in providers)


def test_sagemaker_and_openai_providers_embed_alike(embedding_server: ModelServer) -> None:
    texts = ["How is the boundary layer affected by heat transfer?", "heat transfer in boundary layers", "bake bread"]
    by_sagemaker, usage = sagemaker(embedding_server).embed(texts, model="emb", timeout_s=30)
    by_openai, openai_usage = OpenAICompatibleProvider(embedding_server.url + "/v1").embed(
        texts, model="emb", timeout_s=30
    )
    assert [len(v) for v in by_openai] == [384, 384, 384]
    assert all(cosine(a, b) > 0.9999 for a, b in zip(by_sagemaker, by_openai, strict=True))
    assert cosine(by_openai[0], by_openai[1]) > cosine(by_openai[0], by_openai[2]) + 0.3
    assert openai_usage.prompt_tokens == usage.prompt_tokens > 0


def test_more_inputs_than_one_endpoint_batch(embedding_server: ModelServer) -> None:
    texts = [f"document number {i}" for i in range(70)]
    vectors, _ = OpenAICompatibleProvider(embedding_server.url + "/v1").embed(texts, model="emb", timeout_s=60)
    assert len(vectors) == 70 and cosine(vectors[3], vectors[3]) == pytest.approx(1.0)


def test_the_tasks_name_selects_its_only_endpoint(embedding_server: ModelServer) -> None:
    by_name, _ = OpenAICompatibleProvider(embedding_server.url + "/v1").embed(["x"], model="emb", timeout_s=30)
    by_task, _ = OpenAICompatibleProvider(embedding_server.url + "/v1").embed(["x"], model="embedding", timeout_s=30)
    assert by_name == by_task
    with pytest.raises(ModelInputRejected):  # a generation route with no generation model hosted: 404
        OpenAICompatibleProvider(embedding_server.url + "/v1").chat(chat_call(), model="generation", timeout_s=5)


def test_unknown_models_are_refused(embedding_server: ModelServer) -> None:
    with pytest.raises(ModelInputRejected):  # 404 model_not_found
        OpenAICompatibleProvider(embedding_server.url + "/v1").embed(["x"], model="nope", timeout_s=5)
    with pytest.raises(DependencyUnavailable):  # no such endpoint: the target is unusable, the gateway falls back
        sagemaker(embedding_server).embed(["x"], model="nope", timeout_s=5)


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/embeddings", {"model": "emb", "input": []}, 400, "input"),
        ("/v1/embeddings", {"model": "emb", "input": [1, 2]}, 400, "input"),
        ("/v1/embeddings", {"model": "emb", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ("/v1/embeddings", {"model": "emb", "input": "x", "dimensions": 1024}, 400, "dimensions"),
        ("/v1/embeddings", {"model": "nope", "input": "x"}, 404, "model"),
        ("/v1/embeddings", b"{not json", 400, None),
        ("/v1/chat/completions", {"model": "emb", "messages": []}, 404, "model"),  # emb is not a chat model
    ],
)
def test_the_servers_openai_errors(
    embedding_server: ModelServer, path: str, body: Any, status: int, param: Any
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.post(
        embedding_server.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert error["type"] == "invalid_request_error" and error["message"]


def test_the_servers_base64_embeddings_are_the_float32_vectors(embedding_server: ModelServer) -> None:
    def embed(encoding: str) -> Any:
        body = {"model": "emb", "input": ["heat transfer"], "encoding_format": encoding}
        answer = requests.post(embedding_server.url + "/v1/embeddings", json=body, timeout=30).json()
        assert answer["object"] == "list" and answer["model"] == "emb" and answer["usage"]["prompt_tokens"] > 0
        return answer["data"][0]["embedding"]

    decoded = struct.unpack("<384f", base64.b64decode(embed("base64")))
    assert decoded == pytest.approx(embed("float"), abs=1e-6)


# --- the OpenAI-compatible provider: HTTP failures and its key ---------------------------------------------------


class Scripted:
    """A one-route HTTP server whose answer each test scripts; it records what it was sent."""

    def __init__(self) -> None:
        self.answer: Callable[[], tuple[int, dict[str, str], Any]] = lambda: (200, {}, {})
        self.seen: list[tuple[str, dict[str, str], Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None: ...

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.seen.append((self.path, dict(self.headers), body))
                status, headers, payload = outer.answer()
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.server.shutdown()
    s.server.server_close()


def openai_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, UpstreamThrottled),
        (500, DependencyUnavailable),
        (503, DependencyUnavailable),
        (400, ModelInputRejected),
        (422, ModelInputRejected),
    ],
)
def test_openai_http_errors(scripted: Scripted, status: int, expected: type) -> None:
    scripted.answer = lambda: (status, {"Retry-After": "7"}, openai_error("nope"))
    with pytest.raises(expected) as raised:
        OpenAICompatibleProvider(scripted.url).chat(chat_call(), model="gpt-x", timeout_s=5)
    assert "nope" in raised.value.detail
    assert len(scripted.seen) == 1  # no retries underneath the gateway


def test_openai_timeout_and_unreachable_are_dependency_unavailable(scripted: Scripted) -> None:
    def slow() -> tuple[int, dict[str, str], Any]:
        time.sleep(1.5)
        return 200, {}, {}

    scripted.answer = slow
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        OpenAICompatibleProvider(scripted.url).chat(chat_call(), model="gpt-x", timeout_s=0.4)
    assert time.monotonic() - started < 1.2  # the call's own timeout, not the server's pace
    with pytest.raises(DependencyUnavailable):
        OpenAICompatibleProvider("http://127.0.0.1:9/v1").chat(chat_call(), model="gpt-x", timeout_s=1)


def test_openai_broken_answer_is_model_output_invalid(scripted: Scripted) -> None:
    scripted.answer = lambda: (200, {}, {"id": "x", "choices": []})
    with pytest.raises(ModelOutputInvalid):
        OpenAICompatibleProvider(scripted.url).chat(chat_call(), model="gpt-x", timeout_s=5)
    scripted.answer = lambda: (200, {}, b"<html>")
    with pytest.raises(ModelOutputInvalid):
        OpenAICompatibleProvider(scripted.url).embed(["x"], model="e", timeout_s=5)


def test_openai_request_shape_and_key_from_the_resolver(scripted: Scripted) -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
    }
    scripted.answer = lambda: (200, {}, answer)
    resolved: list[str] = []

    def resolver(secret_id: str) -> str:
        resolved.append(secret_id)
        return "sk-test"

    provider = OpenAICompatibleProvider(scripted.url, api_key_secret="llm/openai", secret_resolver=resolver)
    call = chat_call(tools=[WEATHER], tool_choice="required", max_tokens=32, stop="END")
    for _ in range(2):
        response = provider.chat(call, model="gpt-x", timeout_s=5)
    assert response.choices[0].message.tool_calls[0].function.parsed_arguments() == {"city": "Oslo"}  # type: ignore[index]
    assert resolved == ["llm/openai"]  # read once, then cached
    path, headers, body = scripted.seen[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-x" and body["tool_choice"] == "required" and body["stop"] == ["END"]
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["max_tokens"] == 32


def test_secrets_manager_key_reads_plain_and_json_secrets() -> None:
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name="plain", SecretString="sk-plain\n")
        client.create_secret(Name="json", SecretString=json.dumps({"api_key": "sk-json"}))
        resolve = SecretsManagerKey(client)
        assert (resolve("plain"), resolve("json")) == ("sk-plain", "sk-json")
        with pytest.raises(Exception) as raised:
            resolve("missing")
        assert type(raised.value).__module__ == "agentplatform.errors"


# --- chat on the real generation model (slow) ----------------------------------------------------------------------


@pytest.mark.slow
def test_chat_on_the_real_generation_model_through_both_providers(tmp_path_factory) -> None:
    server = ModelServer(
        "127.0.0.1", 0, [hosted_model("gen", "generation", tmp_path_factory.mktemp("models"), 2)], "000000000000"
    )
    server.start()
    try:
        assert server.wait_ready(300), server.health()
        call = chat_call(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8)
        by_openai = OpenAICompatibleProvider(server.url + "/v1").chat(call, model="gen", timeout_s=60)
        by_sagemaker = sagemaker(server).chat(call, model="gen", timeout_s=60)
        for response in (by_openai, by_sagemaker):
            assert response.choices[0].message.content
            assert 0 < response.usage.completion_tokens <= 8 and response.usage.prompt_tokens > 0
        assert by_openai.model == "gen"
        tools = chat_call(
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER],
            tool_choice="required",
        )
        answer = OpenAICompatibleProvider(server.url + "/v1").chat(tools, model="gen", timeout_s=120)
        assert answer.choices[0].finish_reason == "tool_calls"
        assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
    finally:
        server.stop()
