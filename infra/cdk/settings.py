"""Deploy-time settings from CDK context (cdk.json, or `-c key=value` on the command line)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import aws_logs as logs
from constructs import Node

from agentplatform.topology import ModelEndpoint
from infra.cdk.api import Throttle

# The Hugging Face PyTorch inference DLC (GPU) both endpoints run; the tag is one of the published ones
# (aws/deep-learning-containers, docs/reference/available_images.md). `agentplatform:endpointImageTag` moves
# both endpoints, `agentplatform:endpoint:<name>:imageTag` one of them.
DEFAULT_ENDPOINT_IMAGE_TAG = "2.6.0-transformers4.49.0-gpu-py312-cu124-ubuntu22.04"
# What an endpoint without packaged weights (bundling.PACKAGED_WEIGHTS) downloads at start (HF_MODEL_ID), by task.
DEFAULT_HUB_MODEL = {"generation": "HuggingFaceTB/SmolLM2-1.7B-Instruct"}

# `agentplatform:endpoint:<name>:<setting>`: per-endpoint overrides of the topology's defaults.
_ENDPOINT_KEY = re.compile(r"^agentplatform:endpoint:(?P<name>[^:]+):(?P<setting>[^:]+)$")
ENDPOINT_SETTINGS = ("instanceType", "minInstances", "maxInstances", "imageTag", "modelId")

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


@dataclass(frozen=True)
class EndpointSettings:
    """One model endpoint as deployed: the topology's defaults with the context's overrides applied."""

    instance_type: str
    min_instances: int
    max_instances: int
    target_invocations_per_instance: int
    image_tag: str
    hub_model: str | None  # HF_MODEL_ID: the model the container downloads; None when the archive holds it


@dataclass(frozen=True)
class InfraSettings:
    stack_name: str = "AgentPlatform"
    api_throttle: Throttle = field(default_factory=lambda: Throttle(burst_limit=100, rate_limit=50))
    log_retention_days: int = 30
    access_log_retention_days: int = 365
    endpoint_image_tag: str = DEFAULT_ENDPOINT_IMAGE_TAG
    # endpoint name -> setting (one of ENDPOINT_SETTINGS) -> the context's value
    endpoint_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def endpoint(self, spec: ModelEndpoint) -> EndpointSettings:
        """The deployed settings of one topology endpoint; fails on values SageMaker would refuse at deploy."""
        overrides = self.endpoint_overrides.get(spec.name, {})
        key = f"agentplatform:endpoint:{spec.name}"
        hub_model = overrides.get("modelId", DEFAULT_HUB_MODEL.get(spec.task))
        if "modelId" in overrides and spec.task not in DEFAULT_HUB_MODEL:
            raise ValueError(f"{key}:modelId: a {spec.task} endpoint serves the weights packaged in its archive")
        settings = EndpointSettings(
            instance_type=overrides.get("instanceType", spec.instance_type),
            min_instances=int(overrides.get("minInstances", spec.min_instances)),
            max_instances=int(overrides.get("maxInstances", spec.max_instances)),
            target_invocations_per_instance=spec.target_invocations_per_instance,
            image_tag=overrides.get("imageTag", self.endpoint_image_tag),
            hub_model=hub_model,
        )
        if not settings.instance_type.startswith("ml."):
            raise ValueError(f"{key}:instanceType must be a SageMaker instance type (ml.*): {settings.instance_type}")
        if not 1 <= settings.min_instances <= settings.max_instances:
            raise ValueError(
                f"{key}: need 1 <= minInstances <= maxInstances (a real-time endpoint keeps at least one instance), "
                f"got {settings.min_instances} and {settings.max_instances}"
            )
        return settings

    @property
    def log_retention(self) -> logs.RetentionDays:
        if self.log_retention_days not in _RETENTION:
            raise ValueError(f"agentplatform:logRetentionDays must be one of {sorted(_RETENTION)}")
        return _RETENTION[self.log_retention_days]

    @classmethod
    def from_context(cls, node: Node) -> InfraSettings:
        default = cls()

        def get(key: str, fallback: object) -> str:
            value = node.try_get_context(f"agentplatform:{key}")
            return str(fallback if value is None else value)

        return cls(
            stack_name=get("stackName", default.stack_name),
            api_throttle=Throttle(
                burst_limit=int(get("apiThrottleBurst", default.api_throttle.burst_limit)),
                rate_limit=int(get("apiThrottleRate", default.api_throttle.rate_limit)),
            ),
            log_retention_days=int(get("logRetentionDays", default.log_retention_days)),
            access_log_retention_days=int(get("accessLogRetentionDays", default.access_log_retention_days)),
            endpoint_image_tag=get("endpointImageTag", default.endpoint_image_tag),
            endpoint_overrides=_endpoint_overrides(node),
        )


def _endpoint_overrides(node: Node) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for key, value in node.get_all_context().items():
        match = _ENDPOINT_KEY.match(key)
        if match is None:
            if key.startswith("agentplatform:endpoint:"):
                raise ValueError(f"context key {key!r}: expected agentplatform:endpoint:<name>:<setting>")
            continue
        if match["setting"] not in ENDPOINT_SETTINGS:
            raise ValueError(f"context key {key!r}: the setting must be one of {', '.join(ENDPOINT_SETTINGS)}")
        overrides.setdefault(match["name"], {})[match["setting"]] = str(value)
    return overrides
