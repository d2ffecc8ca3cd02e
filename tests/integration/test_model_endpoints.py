"""The model endpoints through boto3's sagemaker-runtime client against the local model server: real models,
the same contract as on SageMaker, and the errors a client sees."""

from __future__ import annotations

import json

import boto3
import jsonschema
import numpy as np
import pytest
from botocore.exceptions import ClientError

from agentplatform.bootstrap import container
from agentplatform.errors import ConfigurationError, ModelInputRejected
from agentplatform.inference import ChatRequest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_knowledge_base",
            "description": "Search the company's documents (policies, manuals).",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "top_k": {"type": "integer", "minimum": 1, "maximum": 20}},
                "required": ["query", "top_k"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_ticket",
            "description": "Open a support ticket for a problem that needs a human.",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 80},
                    "priority": {"type": "string", "enum": ["low", "medium", "high"]},
                    "urgent": {"type": "boolean"},
                },
                "required": ["title", "priority", "urgent"],
            },
        },
    },
]
PROMPTS = [
    "What's the weather in Paris?",
    "Is it raining in Tokyo right now?",
    "Temperature in Oslo in fahrenheit?",
    "Search our docs for the vacation policy.",
    "Find the manual for the X200 printer.",
    "What does the travel expense policy say about taxis?",
    "Open a high priority ticket: the VPN is down.",
    "My laptop screen is broken, please create a ticket.",
    "Report an urgent outage of the billing system.",
    "Hi there!",
    "Thanks, that's all.",
    "What is 2 + 2?",
    "Tell me a joke.",
    "Translate 'hello' to French.",
    "Who wrote Hamlet?",
    "Summarize: the meeting moved to Friday.",
    "Should I bring an umbrella in London today?",
    "How many vacation days do new employees get?",
    "The printer on floor 3 is jammed again.",
    "Good morning! How are you?",
]


@pytest.fixture(scope="module")
def runtime_overrides():
    return {"LOCAL_MODELS": "all"}


@pytest.fixture(scope="module")
def sagemaker(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=runtime.model_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def endpoint(runtime, name: str) -> str:
    return runtime.provisioned.value(f"endpoint:{name}", "name")


def invoke(sagemaker, name: str, payload) -> dict:
    out = sagemaker.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=json.dumps(payload))
    return json.loads(out["Body"].read())


def test_embeddings_put_paraphrases_closer_than_unrelated_sentences(runtime, sagemaker):
    texts = [
        "The cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Quarterly revenue grew by eight percent.",
    ]
    vectors = np.array(invoke(sagemaker, endpoint(runtime, "embedding"), {"inputs": texts}))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_chat_answer_uses_the_given_context(runtime, sagemaker):
    answer = invoke(
        sagemaker,
        endpoint(runtime, "generation"),
        {
            "messages": [
                {
                    "role": "system",
                    "content": "Answer from this context only. Context: The Zephyr-9 drone has a "
                    "maximum flight time of 47 minutes.",
                },
                {"role": "user", "content": "What is the maximum flight time of the Zephyr-9 drone?"},
            ],
            "max_tokens": 40,
        },
    )
    assert "47" in answer["choices"][0]["message"]["content"]
    usage = answer["usage"]
    assert usage["prompt_tokens"] > 20 and 0 < usage["completion_tokens"] <= 40
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_twenty_prompts_with_tools_give_schema_valid_calls_or_plain_answers(runtime, sagemaker):
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    kinds = []
    for prompt in PROMPTS:
        answer = invoke(
            sagemaker,
            endpoint(runtime, "generation"),
            {
                "messages": [{"role": "user", "content": prompt}],
                "tools": TOOLS,
                "max_tokens": 32,
            },
        )
        choice = answer["choices"][0]
        calls = choice["message"].get("tool_calls")
        if calls:
            assert choice["finish_reason"] == "tool_calls"
            for call in calls:
                jsonschema.validate(json.loads(call["function"]["arguments"]), schemas[call["function"]["name"]])
            kinds.append(calls[0]["function"]["name"])
        else:
            assert isinstance(choice["message"]["content"], str)
            kinds.append("answer")
    assert len(kinds) == 20
    # The router is not degenerate: it answers small talk and calls more than one kind of tool.
    assert kinds.count("answer") >= 6, kinds
    assert len(set(kinds) - {"answer"}) >= 2, kinds


def test_named_tool_choice_is_honoured(runtime, sagemaker):
    answer = invoke(
        sagemaker,
        endpoint(runtime, "generation"),
        {
            "messages": [{"role": "user", "content": "Paris please"}],
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    )
    call = answer["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "get_weather"
    jsonschema.validate(json.loads(call["arguments"]), TOOLS[0]["function"]["parameters"])


@pytest.mark.parametrize(
    ("name", "payload", "status", "says"),
    [
        ("embedding", {"inputs": 42}, 422, "inputs"),
        ("embedding", {"inputs": ["x"] * 33}, 413, "maximum of 32"),
        ("embedding", {"inputs": ["word " * 400], "truncate": False}, 413, "maximum is 256"),
        ("generation", {"messages": []}, 422, "messages"),
        ("generation", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, 422, "max_tokens"),
        ("generation", {"messages": [{"role": "robot", "content": "hi"}]}, 422, "role"),
    ],
)
def test_bad_payloads_are_model_errors_with_readable_messages(runtime, sagemaker, name, payload, status, says):
    with pytest.raises(ClientError) as caught:
        invoke(sagemaker, endpoint(runtime, name), payload)
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == status
    assert says in error["Error"]["Message"]


def test_unknown_endpoint_is_a_validation_error(sagemaker):
    with pytest.raises(ClientError) as caught:
        invoke(sagemaker, "no-such-endpoint", {"inputs": "x"})
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "no-such-endpoint" in caught.value.response["Error"]["Message"]


def test_the_platform_adapter_gives_typed_results_and_errors(runtime, sagemaker):
    embeddings = container().embedding_model.embed([f"sentence number {i}" for i in range(40)])
    assert len(embeddings) == 40 and len(embeddings[0]) == 384
    chat = container().chat_model
    response = chat.chat(ChatRequest(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8))
    assert response.usage.completion_tokens <= 8
    with pytest.raises(ModelInputRejected, match="context"):
        chat.chat(ChatRequest(messages=[{"role": "user", "content": "word " * 9000}], max_tokens=8))
    from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint

    with pytest.raises(ConfigurationError, match="not found"):
        SageMakerEndpoint("missing", container().client("sagemaker-runtime")).invoke({"inputs": "x"})
