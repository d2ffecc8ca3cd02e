"""Typed model clients over a scripted endpoint: batching, contract checks, typed errors."""

from __future__ import annotations

import json

import pytest

from agentplatform.errors import ModelOutputInvalid
from agentplatform.inference import ChatMessage, ChatRequest, EmbeddingRequest
from agentplatform.model_clients import EndpointChat, EndpointEmbeddings
from tests.fakes import ScriptedModelEndpoint


def vectors_for(request):
    return [[1.0] + [0.0] * 383 for _ in request["inputs"]]


def chat_response(message):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def test_embeddings_are_sent_in_batches_of_at_most_32_and_come_back_in_order():
    endpoint = ScriptedModelEndpoint("emb", [vectors_for])
    vectors = EndpointEmbeddings(endpoint).embed([f"text {i}" for i in range(70)])
    assert len(vectors) == 70
    assert [len(r["inputs"]) for r in endpoint.requests] == [32, 32, 6]
    assert endpoint.requests[2]["inputs"][-1] == "text 69"
    assert all(r["truncate"] and r["normalize"] for r in endpoint.requests)


@pytest.mark.parametrize(
    "answer",
    [[[0.1] * 384], [[0.1] * 10, [0.2] * 10], {"vectors": []}, "oops"],
    ids=["too-few", "wrong-dimension", "object", "string"],
)
def test_embedding_answers_that_break_the_contract_are_typed_errors(answer):
    with pytest.raises(ModelOutputInvalid):
        EndpointEmbeddings(ScriptedModelEndpoint("emb", [answer])).embed(["a", "b"])


def test_chat_accepts_openai_and_tgi_argument_shapes():
    request = ChatRequest(messages=[ChatMessage(role="user", content="weather?")])
    tgi = {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": {"city": "Oslo"}}}],
    }
    response = EndpointChat(ScriptedModelEndpoint("gen", [chat_response(tgi)])).chat(request)
    assert json.loads(response.choices[0].message.tool_calls[0].function.arguments) == {"city": "Oslo"}


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": []},
        chat_response(
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{not json"}}],
            }
        ),
        chat_response(
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "[1, 2]"}}],
            }
        ),
    ],
    ids=["no-choices", "arguments-not-json", "arguments-not-object"],
)
def test_malformed_chat_answers_are_typed_errors_not_crashes(answer):
    request = ChatRequest(messages=[ChatMessage(role="user", content="hi")])
    with pytest.raises(ModelOutputInvalid):
        EndpointChat(ScriptedModelEndpoint("gen", [answer])).chat(request)


def test_request_contracts_refuse_what_the_endpoints_would():
    with pytest.raises(ValueError, match="exceeds the maximum of 32"):
        EmbeddingRequest(inputs=["x"] * 33)
    with pytest.raises(ValueError):
        ChatRequest(messages=[])
    with pytest.raises(ValueError, match="not in tools"):
        ChatRequest(
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "a"}}],
            tool_choice={"type": "function", "function": {"name": "b"}},
        )
    with pytest.raises(ValueError, match="up to 4"):
        ChatRequest(messages=[{"role": "user", "content": "x"}], stop=["a", "b", "c", "d", "e"])
