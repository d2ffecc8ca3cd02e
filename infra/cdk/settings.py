"""Deploy-time settings from CDK context (cdk.json, or `-c key=value` on the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import aws_logs as logs
from constructs import Node

from infra.cdk.api import Throttle

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
class InfraSettings:
    stack_name: str = "AgentPlatform"
    api_throttle: Throttle = field(default_factory=lambda: Throttle(burst_limit=100, rate_limit=50))
    log_retention_days: int = 30
    access_log_retention_days: int = 365

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
        )
