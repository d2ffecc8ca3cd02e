"""cdk-nag (3.x): the AwsSolutions pack runs as a CDK policy-validation plugin; findings are acknowledged with
CDK's own `Validations.of(construct).acknowledge(...)`, always on the narrowest construct, one finding id at a
time (`AwsSolutions-IAM5[Resource::*]`), and never without a written reason.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

# Reasons shared by several constructs.
XRAY_REASON = (
    "X-Ray tracing (PutTraceSegments, PutTelemetryRecords, GetSamplingRules, GetSamplingTargets) supports no "
    "resource-level permissions: AWS requires Resource '*'. Added by CDK for active tracing."
)
SFN_LOGGING_AND_XRAY_REASON = (
    "Step Functions logging to CloudWatch Logs uses the vended-log delivery actions (logs:CreateLogDelivery, "
    "GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, "
    "DescribeResourcePolicies, DescribeLogGroups) and X-Ray tracing uses PutTraceSegments, PutTelemetryRecords, "
    "GetSamplingRules and GetSamplingTargets; none of them supports resource-level permissions, so AWS requires "
    "Resource '*'. Added by CDK for logs and tracing."
)


def add_checks(app: App) -> None:
    """Run the AwsSolutions pack on the whole app at synth; any unacknowledged finding fails the synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: Construct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on `scope` (and what it contains), with a reason a reviewer can check."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule_id} on {scope.node.path} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason.strip()))
