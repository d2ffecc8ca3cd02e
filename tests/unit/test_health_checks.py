"""The checks /health runs beyond the storage ones: a model endpoint's cheapest real answer, a function's state
(moto's Lambda), and the retrieval function's health operation."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from moto import mock_aws

from agentplatform.adapters.aws.functions import LambdaFunction
from agentplatform.errors import DependencyUnavailable, ModelEndpointUnavailable, ModelOutputInvalid
from agentplatform.model_clients import EndpointChat, EndpointEmbeddings
from tests.fakes import ScriptedModelEndpoint

CHAT_ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def test_embedding_check_embeds_one_word_and_fails_on_a_broken_answer() -> None:
    endpoint = ScriptedModelEndpoint("embedding", [[[0.0] * 384], [[0.0] * 3]])
    EndpointEmbeddings(endpoint).check()
    assert endpoint.requests[0]["inputs"] == ["health"]
    with pytest.raises(ModelOutputInvalid):  # answers, but not what the contract says: not healthy
        EndpointEmbeddings(endpoint).check()


def test_generation_check_asks_for_one_token_and_raises_the_endpoint_failure() -> None:
    endpoint = ScriptedModelEndpoint("generation", [CHAT_ANSWER, ModelEndpointUnavailable("down")])
    EndpointChat(endpoint).check()
    assert endpoint.requests[0]["max_tokens"] == 1
    with pytest.raises(ModelEndpointUnavailable):
        EndpointChat(endpoint).check()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return out.getvalue()


def test_function_check_is_its_configuration_and_a_missing_function_is_down() -> None:
    with mock_aws():
        client = boto3.client("lambda", region_name="us-east-1")
        role = boto3.client("iam", region_name="us-east-1").create_role(RoleName="r", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        client.create_function(
            FunctionName="retrieval",
            Runtime="python3.13",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
        )
        LambdaFunction("retrieval", client).check()
        with pytest.raises(DependencyUnavailable, match="function gone"):
            LambdaFunction("gone", client).check()


def test_retrieval_health_operation_checks_its_search_index(fakes, lambda_context) -> None:
    from functions.retrieval.handler import handler
    from tests.fakes import MemorySearchIndex

    fakes.__dict__["search_index"] = index = MemorySearchIndex()
    assert handler({"operation": "health"}, lambda_context) == {"search_index": "ok"}
    index.available = False
    with pytest.raises(DependencyUnavailable):
        handler({"operation": "health"}, lambda_context)
