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


def test_not_blank_means_the_same_to_json_schema_and_to_pydantic() -> None:
    """A string JSON Schema (ECMA-262) calls non-blank must not be refused by pydantic (Rust), and back."""
    import re

    from pydantic import BaseModel, Field, ValidationError

    from agentplatform.bodies import NOT_BLANK

    class Body(BaseModel):
        text: str = Field(pattern=NOT_BLANK)

    # U+0085 is whitespace to Rust only, U+FEFF to ECMA only, U+001C..U+001F to Python's re only.
    for blank in (" ", "\t\n", "\u0085", "\ufeff", "\u3000 \u2028"):
        with pytest.raises(ValidationError):
            Body(text=blank)
    for text in ("x", " x ", "\x1c", "\u0085a"):
        assert Body(text=text).text == text
    assert re.search(NOT_BLANK, "\u0085") is None  # Python's reading agrees where it matters
