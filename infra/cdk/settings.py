"""Deploy-time settings from CDK context (cdk.json, or `-c key=value` on the command line)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

from agentplatform.topology import ModelEndpoint, SearchDomain
from infra.cdk.api import CustomDomain, Throttle
from infra.cdk.edge import EdgeOptions
from infra.cdk.firewall import DEFAULT_RATE_LIMIT

# The Hugging Face PyTorch inference DLC (GPU) both endpoints run; the tag is one of the published ones
# (aws/deep-learning-containers, docs/reference/available_images.md). `agentplatform:endpointImageTag` moves
# both endpoints, `agentplatform:endpoint:<name>:imageTag` one of them.
DEFAULT_ENDPOINT_IMAGE_TAG = "2.6.0-transformers4.49.0-gpu-py312-cu124-ubuntu22.04"
# What an endpoint without packaged weights (bundling.PACKAGED_WEIGHTS) downloads at start (HF_MODEL_ID), by task.
DEFAULT_HUB_MODEL = {"generation": "HuggingFaceTB/SmolLM2-1.7B-Instruct"}

# `agentplatform:endpoint:<name>:<setting>`: per-endpoint overrides of the topology's defaults.
_ENDPOINT_KEY = re.compile(r"^agentplatform:endpoint:(?P<name>[^:]+):(?P<setting>[^:]+)$")
ENDPOINT_SETTINGS = ("instanceType", "minInstances", "maxInstances", "imageTag", "modelId")

# `agentplatform:search:<name>:<setting>`: per-domain sizing of a topology search domain. The defaults are the
# smallest domain that still spreads over two AZs: two burstable data nodes, 10 GiB gp3 each (OpenSearch's
# minimum volume), no dedicated master nodes.
_SEARCH_KEY = re.compile(r"^agentplatform:search:(?P<name>[^:]+):(?P<setting>[^:]+)$")
SEARCH_SETTINGS = (
    "instanceType",
    "instanceCount",
    "volumeSizeGiB",
    "dedicatedMasterType",
    "dedicatedMasterCount",
    "removalPolicy",
)
DEFAULT_SEARCH_INSTANCE_TYPE = "t3.small.search"
DEFAULT_SEARCH_INSTANCE_COUNT = 2
DEFAULT_SEARCH_VOLUME_GIB = 10
_REMOVAL_POLICIES = {"retain": RemovalPolicy.RETAIN, "destroy": RemovalPolicy.DESTROY}

# The Cognito user pool's feature plan: `essentials` (the default) has the V2 pre-token-generation trigger that
# can put claims into access tokens; `plus` adds threat protection (cdk-nag COG8) at a higher price per user.
USER_POOL_FEATURE_PLANS = ("essentials", "plus")
# Where the app client may send the authorization code: a local CLI or dev server by default.
DEFAULT_AUTH_CALLBACK_URLS = ("http://localhost:8765/callback",)
# A browser origin: scheme, host and optional port, nothing else ("*": any origin).
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_ACM_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+$")
_BOOLEANS = {"true": True, "false": False}

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
class SearchSettings:
    """One search domain as deployed: the defaults with the context's overrides applied."""

    instance_type: str
    instance_count: int
    volume_size_gib: int
    dedicated_master_type: str | None
    dedicated_master_count: int  # 0: no dedicated master nodes
    removal_policy: RemovalPolicy


@dataclass(frozen=True)
class InfraSettings:
    stack_name: str = "AgentPlatform"
    api_throttle: Throttle = field(default_factory=lambda: Throttle(burst_limit=100, rate_limit=50))
    log_retention_days: int = 30
    access_log_retention_days: int = 365
    endpoint_image_tag: str = DEFAULT_ENDPOINT_IMAGE_TAG
    # endpoint name -> setting (one of ENDPOINT_SETTINGS) -> the context's value
    endpoint_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # search domain name -> setting (one of SEARCH_SETTINGS) -> the context's value
    search_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    user_pool_feature_plan: str = "essentials"
    auth_callback_urls: tuple[str, ...] = DEFAULT_AUTH_CALLBACK_URLS
    auth_domain_prefix: str | None = None  # None: <stack name>-<account id>, lower case
    cors_origins: tuple[str, ...] = ()  # () : no CORS configuration (browsers on other origins are refused)
    api_domain: CustomDomain | None = None  # None: the API answers on its execute-api name
    waf_rate_limit: int = DEFAULT_RATE_LIMIT  # requests per IP per 5 minutes, every web ACL
    edge: EdgeOptions | None = None  # None: no CloudFront in front of the API

    def search(self, spec: SearchDomain) -> SearchSettings:
        """The deployed sizing of one topology search domain; fails on values OpenSearch Service would refuse."""
        overrides = self.search_overrides.get(spec.name, {})
        key = f"agentplatform:search:{spec.name}"
        removal = overrides.get("removalPolicy", "retain").lower()
        if removal not in _REMOVAL_POLICIES:
            raise ValueError(f"{key}:removalPolicy must be one of {sorted(_REMOVAL_POLICIES)}, got {removal!r}")
        master_type = overrides.get("dedicatedMasterType")
        settings = SearchSettings(
            instance_type=overrides.get("instanceType", DEFAULT_SEARCH_INSTANCE_TYPE),
            instance_count=int(overrides.get("instanceCount", DEFAULT_SEARCH_INSTANCE_COUNT)),
            volume_size_gib=int(overrides.get("volumeSizeGiB", DEFAULT_SEARCH_VOLUME_GIB)),
            dedicated_master_type=master_type,
            dedicated_master_count=int(overrides.get("dedicatedMasterCount", 3 if master_type else 0)),
            removal_policy=_REMOVAL_POLICIES[removal],
        )
        for setting, value in (("instanceType", settings.instance_type), ("dedicatedMasterType", master_type)):
            if value is not None and not value.endswith(".search"):
                raise ValueError(f"{key}:{setting} must be an OpenSearch instance type (*.search): {value}")
        if settings.instance_count < 2 or settings.instance_count % 2:
            raise ValueError(
                f"{key}:instanceCount must be even and at least 2 (the domain spreads over two AZs), "
                f"got {settings.instance_count}"
            )
        if settings.volume_size_gib < 10:
            raise ValueError(f"{key}:volumeSizeGiB must be at least 10 (gp3), got {settings.volume_size_gib}")
        if settings.dedicated_master_count and not master_type:
            raise ValueError(f"{key}:dedicatedMasterCount needs {key}:dedicatedMasterType")
        if master_type and settings.dedicated_master_count not in (3, 5):
            raise ValueError(
                f"{key}:dedicatedMasterCount must be 3 or 5 (a quorum), got {settings.dedicated_master_count}"
            )
        return settings

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
            endpoint_overrides=_overrides(node, "endpoint", _ENDPOINT_KEY, ENDPOINT_SETTINGS),
            search_overrides=_overrides(node, "search", _SEARCH_KEY, SEARCH_SETTINGS),
            user_pool_feature_plan=_one_of(
                get("userPoolFeaturePlan", default.user_pool_feature_plan).lower(),
                USER_POOL_FEATURE_PLANS,
                "agentplatform:userPoolFeaturePlan",
            ),
            auth_callback_urls=tuple(
                url.strip()
                for url in get("authCallbackUrls", ",".join(default.auth_callback_urls)).split(",")
                if url.strip()
            ),
            auth_domain_prefix=node.try_get_context("agentplatform:authDomainPrefix"),
            cors_origins=_cors_origins(node.try_get_context("agentplatform:corsOrigins")),
            api_domain=_domain(node, "apiDomainName", "apiCertificateArn"),
            waf_rate_limit=int(get("wafRateLimit", default.waf_rate_limit)),
            edge=_edge(node),
        )


def _cors_origins(value: object) -> tuple[str, ...]:
    """`agentplatform:corsOrigins` (comma-separated) as origins; each must be an origin (no path) or `*`."""
    origins = tuple(o.strip().rstrip("/") for o in str(value or "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(f"agentplatform:corsOrigins: {origin!r} is not an origin (scheme://host[:port])")
    return origins


def _domain(node: Node, name_key: str, certificate_key: str) -> CustomDomain | None:
    """A custom domain from its two context keys: both or neither."""
    name = node.try_get_context(f"agentplatform:{name_key}")
    certificate = node.try_get_context(f"agentplatform:{certificate_key}")
    if not name and not certificate:
        return None
    if not name or not certificate:
        raise ValueError(f"agentplatform:{name_key} and agentplatform:{certificate_key} go together")
    if not _ACM_CERTIFICATE_ARN.match(str(certificate)):
        raise ValueError(f"agentplatform:{certificate_key} must be an ACM certificate ARN, got {certificate!r}")
    return CustomDomain(name=str(name).lower(), certificate_arn=str(certificate))


def _edge(node: Node) -> EdgeOptions | None:
    """`agentplatform:edge` (true/false) and the edge's own settings, which make no sense without it."""
    raw = str(node.try_get_context("agentplatform:edge") or "false").lower()
    if raw not in _BOOLEANS:
        raise ValueError(f"agentplatform:edge must be true or false, got {raw!r}")
    web_acl_arn = node.try_get_context("agentplatform:edgeWebAclArn")
    domain = _domain(node, "edgeDomainName", "edgeCertificateArn")
    if not _BOOLEANS[raw]:
        if web_acl_arn or domain:
            raise ValueError("agentplatform:edgeWebAclArn / edgeDomainName need agentplatform:edge=true")
        return None
    return EdgeOptions(web_acl_arn=str(web_acl_arn) if web_acl_arn else None, domain=domain)


def _one_of(value: str, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _overrides(node: Node, kind: str, pattern: re.Pattern[str], allowed: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`agentplatform:<kind>:<name>:<setting>` context keys as name -> setting -> value; a misspelt key fails."""
    overrides: dict[str, dict[str, str]] = {}
    for key, value in node.get_all_context().items():
        match = pattern.match(key)
        if match is None:
            if key.startswith(f"agentplatform:{kind}:"):
                raise ValueError(f"context key {key!r}: expected agentplatform:{kind}:<name>:<setting>")
            continue
        if match["setting"] not in allowed:
            raise ValueError(f"context key {key!r}: the setting must be one of {', '.join(allowed)}")
        overrides.setdefault(match["name"], {})[match["setting"]] = str(value)
    return overrides
