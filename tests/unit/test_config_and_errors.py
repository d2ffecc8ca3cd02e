"""Settings are read on first use and name what is missing; errors carry code, status and retryability."""

from __future__ import annotations

import pytest

from agentplatform.config import get_settings, reset_settings
from agentplatform.errors import (
    ConfigurationError,
    DependencyUnavailable,
    NotFound,
    Throttled,
    ValidationFailed,
    error_names,
)


@pytest.fixture(autouse=True)
def _fresh_settings():
    reset_settings()
    yield
    reset_settings()


def test_invalid_setting_is_reported_on_first_use_naming_the_variable(monkeypatch):
    monkeypatch.setenv("PLATFORM_BACKEND", "mainframe")
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert caught.value.errors[0].loc == ("PLATFORM_BACKEND",)


def test_require_names_the_missing_variable(monkeypatch):
    monkeypatch.delenv("DROP_BUCKET_NAME", raising=False)
    with pytest.raises(ConfigurationError, match="DROP_BUCKET_NAME"):
        get_settings().require("drop_bucket_name")


def test_local_backend_points_clients_at_the_emulator(monkeypatch):
    monkeypatch.setenv("PLATFORM_BACKEND", "local")
    monkeypatch.setenv("LOCAL_AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    assert get_settings().endpoint_url("s3") == "http://127.0.0.1:5999"
    assert get_settings().endpoint_url("sagemaker-runtime") == "http://127.0.0.1:8090"


def test_aws_backend_honours_aws_endpoint_url_for_localstack(monkeypatch):
    monkeypatch.setenv("PLATFORM_BACKEND", "aws")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    assert get_settings().endpoint_url("sqs") == "http://localhost:4566"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    reset_settings()
    assert get_settings().endpoint_url("sqs") is None


def test_errors_carry_status_code_and_retryability():
    assert (NotFound.status, NotFound.code, NotFound.retryable) == (404, "not_found", False)
    assert (ValidationFailed.status, DependencyUnavailable.status) == (422, 503)
    assert DependencyUnavailable.retryable and Throttled.retryable
    assert Throttled("slow down", retry_after_s=7).retry_after_s == 7
    assert {"PlatformError", "DependencyUnavailable", "NotFound", "UpstreamThrottled"} <= error_names()
