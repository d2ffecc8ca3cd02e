"""The SageMaker runtime adapter turns every answer InvokeEndpoint can give into the platform's own errors."""

from __future__ import annotations

import io

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
from agentplatform.errors import (
    ConfigurationError,
    DependencyRejected,
    ModelEndpointUnavailable,
    ModelInputRejected,
    ModelOutputInvalid,
    UpstreamThrottled,
)


@pytest.fixture
def runtime():
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_json_answer_is_returned(runtime):
    client, stubber = runtime
    stubber.add_response("invoke_endpoint", {"Body": body(b"[[0.1, 0.2]]"), "ContentType": "application/json"})
    assert SageMakerEndpoint("emb", client).invoke({"inputs": "x"}) == [[0.1, 0.2]]


def test_non_json_answer_is_model_output_invalid(runtime):
    client, stubber = runtime
    stubber.add_response("invoke_endpoint", {"Body": body(b"<html>oops"), "ContentType": "text/html"})
    with pytest.raises(ModelOutputInvalid):
        SageMakerEndpoint("emb", client).invoke({"inputs": "x"})


@pytest.mark.parametrize(
    ("code", "fields", "expected", "says"),
    [
        (
            "ModelError",
            {"OriginalStatusCode": 422, "OriginalMessage": '{"error": "inputs: bad"}'},
            ModelInputRejected,
            "inputs: bad",
        ),
        (
            "ModelError",
            {"OriginalStatusCode": 502, "OriginalMessage": '{"error": "no valid tool call"}'},
            ModelOutputInvalid,
            "no valid tool call",
        ),
        (
            "ModelError",
            {"OriginalStatusCode": 500, "OriginalMessage": "CUDA out of memory"},
            ModelEndpointUnavailable,  # the Embed state or the gateway retries it; the SDK never resends
            "endpoint emb",
        ),
        ("ValidationError", {}, ConfigurationError, "endpoint emb"),
        ("ThrottlingException", {}, UpstreamThrottled, "throttled"),
        ("ServiceUnavailable", {}, ModelEndpointUnavailable, "endpoint emb"),
        ("AccessDeniedException", {}, DependencyRejected, "refused"),  # no retry can fix a missing grant
    ],
)
def test_errors_map_to_platform_errors(runtime, code, fields, expected, says):
    client, stubber = runtime
    status = {"ModelError": 424, "ServiceUnavailable": 503}.get(code, 400)
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message="m",
        http_status_code=status,
        modeled_fields=fields or None,
    )
    with pytest.raises(expected, match=says):
        SageMakerEndpoint("emb", client).invoke({"inputs": "x"})
