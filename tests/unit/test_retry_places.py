"""One retry place per call path (docs/retries.md): the SDK for AWS API calls, the gateway (tenacity) for model
calls through it, the ingestion state machine's Embed state for the embedding endpoint, the OpenSearch adapter for
its bulk writes; never two stacked. Permanent failures are retried by none of them."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from agentplatform.adapters.aws.errors import translate
from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
from agentplatform.bootstrap import Container
from agentplatform.config import Settings
from agentplatform.errors import (
    DependencyRejected,
    DependencyUnavailable,
    ModelEndpointUnavailable,
    NotFound,
    UpstreamThrottled,
)
from agentplatform.topology import statemachines_dir


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("code", "status", "expected", "retryable"),
    [
        ("AccessDeniedException", 400, DependencyRejected, False),
        ("AccessDenied", 403, DependencyRejected, False),
        ("UnrecognizedClientException", 400, DependencyRejected, False),
        ("ResourceNotFoundException", 400, DependencyRejected, False),
        ("ValidationException", 400, DependencyRejected, False),
        ("NoSuchKey", 404, NotFound, False),
        ("ThrottlingException", 400, DependencyUnavailable, True),  # after the SDK's own retries
        ("ProvisionedThroughputExceededException", 400, DependencyUnavailable, True),
        ("InternalServerError", 500, DependencyUnavailable, True),
        ("ServiceUnavailable", 503, DependencyUnavailable, True),
    ],
)
def test_an_aws_failure_maps_to_a_platform_error_that_says_whether_to_retry(code, status, expected, retryable):
    error = translate(client_error(code, status), resource="table t")
    assert type(error) is expected and error.retryable is retryable


def test_a_transport_failure_is_unavailable_not_rejected():
    error = translate(EndpointConnectionError(endpoint_url="https://x"), resource="bucket b")
    assert type(error) is DependencyUnavailable and error.retryable


class _Runtime:
    def __init__(self, exc: Exception) -> None:
        self.exc, self.calls = exc, 0

    def invoke_endpoint(self, **_: object) -> dict:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("ThrottlingException", 400), UpstreamThrottled),
        (client_error("InternalFailure", 500), ModelEndpointUnavailable),
        (ReadTimeoutError(endpoint_url="https://x"), ModelEndpointUnavailable),
        (client_error("AccessDeniedException", 400), DependencyRejected),
    ],
)
def test_a_model_endpoint_failure_is_named_for_the_one_place_that_retries_it(exc, expected):
    runtime = _Runtime(exc)
    with pytest.raises(expected):
        SageMakerEndpoint("embedding", runtime).invoke({"inputs": ["x"]})
    assert runtime.calls == 1  # the adapter never resends a model call itself


def test_sdk_retries_are_on_for_aws_apis_and_off_where_the_platform_retries_or_must_not_resend():
    container = Container(Settings(AGENTPLATFORM_BACKEND="aws", AWS_REGION="us-east-1"))
    attempts = {s: container.client(s).meta.config.retries for s in ("dynamodb", "s3", "sagemaker-runtime")}
    # botocore counts the first attempt in: three retries on throttling, 5xx and transport errors.
    assert attempts["dynamodb"] == attempts["s3"] == {"mode": "standard", "total_max_attempts": 4}
    assert attempts["sagemaker-runtime"]["total_max_attempts"] == 1  # the gateway or the Embed state retries


def _retries(definition: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def walk(states: dict) -> None:
        for name, state in states.items():
            out[name] = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
            for key in ("Iterator", "ItemProcessor"):
                if key in state:
                    walk(state[key]["States"])
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(definition["States"])
    return out


def test_state_machines_retry_only_what_no_one_below_them_retries():
    lambda_service = {e for e in ("Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException")}
    for name in ("agent_loop", "ingestion"):
        retries = _retries(json.loads((statemachines_dir() / f"{name}.asl.json").read_text()))
        for state, errors in retries.items():
            # The SDK already retried AWS calls inside the task; the gateway retried model calls.
            assert "DependencyUnavailable" not in errors and "States.TaskFailed" not in errors, (name, state)
            if name == "ingestion" and state == "Embed":
                assert {"ModelEndpointUnavailable", "UpstreamThrottled"} <= errors  # its model call's one place
            elif state != "MarkFailed" or name == "agent_loop":
                assert errors <= lambda_service | {"Lambda.TooManyRequestsException"}, (name, state, errors)
