"""AWS WAF web ACLs: a per-IP rate limit and AWS managed rule groups, for what WAF can be attached to.

AWS WAF cannot be associated with an API Gateway HTTP API (only REST API stages, ALBs, CloudFront, AppSync,
Cognito user pools, App Runner, Verified Access and Amplify). So the platform puts web ACLs where they can go:

- REGIONAL, on the Cognito user pool (`UserPoolFirewall`): its sign-in endpoints (hosted UI, InitiateAuth, token
  endpoint) are what a credential-stuffing or password-spraying client hammers.
- CLOUDFRONT, on the optional edge distribution in front of the HTTP API (edge.py). CLOUDFRONT-scope ACLs exist
  only in us-east-1.

The HTTP API itself is protected by the stage's throttling (api.Throttle) and its authorizers either way.
Every rule publishes CloudWatch metrics and sampled requests under its own name.
"""

from __future__ import annotations

from typing import Literal

from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# Requests per client IP per 5-minute window before the rate rule blocks that IP (agentplatform:wafRateLimit).
DEFAULT_RATE_LIMIT = 2000
RATE_WINDOW_S = 300
MIN_RATE_LIMIT = 10  # AWS WAF's lowest rate-based limit

COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
KNOWN_BAD_INPUTS_RULE_SET = "AWSManagedRulesKnownBadInputsRuleSet"

WebAclScope = Literal["REGIONAL", "CLOUDFRONT"]


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def rate_rule(limit: int, priority: int = 0) -> wafv2.CfnWebACL.RuleProperty:
    """Block an IP for as long as it sends more than `limit` requests in the last 5 minutes."""
    if limit < MIN_RATE_LIMIT:
        raise ValueError(f"the WAF rate limit must be at least {MIN_RATE_LIMIT} requests per 5 minutes, got {limit}")
    return wafv2.CfnWebACL.RuleProperty(
        name="RatePerIp",
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                aggregate_key_type="IP", limit=limit, evaluation_window_sec=RATE_WINDOW_S
            )
        ),
        visibility_config=_visibility("RatePerIp"),
    )


def managed_rule(name: str, priority: int, count_only: tuple[str, ...] = ()) -> wafv2.CfnWebACL.RuleProperty:
    """An AWS managed rule group with its own actions; the rules in `count_only` only count (false positives)."""
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in count_only
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )


def web_acl(
    scope: Construct,
    id: str,
    *,
    acl_scope: WebAclScope,
    rate_limit: int,
    description: str,
    common_count_only: tuple[str, ...] = (),
) -> wafv2.CfnWebACL:
    """Allow by default; block an IP over the rate limit, then known bad inputs, then the common rule set."""
    return wafv2.CfnWebACL(
        scope,
        id,
        scope=acl_scope,
        description=description[:256],
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(id),
        rules=[
            rate_rule(rate_limit, priority=0),
            managed_rule(KNOWN_BAD_INPUTS_RULE_SET, priority=1),
            managed_rule(COMMON_RULE_SET, priority=2, count_only=common_count_only),
        ],
    )


class UserPoolFirewall(Construct):
    """A REGIONAL web ACL on the user pool's sign-in and token endpoints."""

    def __init__(self, scope: Construct, id: str, *, user_pool: cognito.IUserPool, rate_limit: int) -> None:
        super().__init__(scope, id)
        self.web_acl = web_acl(
            self,
            "WebAcl",
            acl_scope="REGIONAL",
            rate_limit=rate_limit,
            description="User pool sign-in endpoints: per-IP rate limit, AWS managed rules",
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=user_pool.user_pool_arn, web_acl_arn=self.web_acl.attr_arn
        )
