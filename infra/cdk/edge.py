"""The optional API edge (`agentplatform:edge=true`): a CloudFront distribution in front of the HTTP API, carrying
a CLOUDFRONT-scope web ACL, since AWS WAF cannot be attached to an HTTP API itself (firewall.py).

- Nothing is cached (managed policy CachingDisabled); every method is forwarded. The managed origin request
  policy AllViewerExceptHostHeader forwards every viewer header but Host (API Gateway routes by its own host
  name), the Authorization header included: CloudFront forwards Authorization from an origin request policy
  only when caching is disabled, as here.
- Viewers: HTTPS only. With `agentplatform:edgeDomainName` + `agentplatform:edgeCertificateArn` (an ACM
  certificate in us-east-1, as CloudFront requires) the distribution answers on that name with the
  TLSv1.2_2021 security policy (SNI). On CloudFront's default *.cloudfront.net name CloudFront fixes the policy
  at TLSv1 whatever the template says; use a domain for production.
- To the origin: HTTPS only, TLS 1.2, to the API's custom domain when it has one, else to its execute-api name.
- The web ACL (firewall.web_acl: the per-IP rate rule and AWS managed rules) must be CLOUDFRONT scope, which
  exists only in us-east-1. Either the stack creates it, and then a template rule refuses any other region before
  anything is created (a synth whose stack region is known and not us-east-1 fails outright), or
  `agentplatform:edgeWebAclArn` names one created in us-east-1 (for a stack deployed elsewhere).
- Access logs (standard logging) go to a bucket of their own: CloudFront's legacy log delivery writes through
  object ACLs, which the platform's other buckets have disabled.

What this does not close: the origin stays reachable on the internet, around the edge. An HTTP API cannot be
private, and nothing in API Gateway checks that a request came through CloudFront; the stage throttling and the
authorizers hold either way. A secret origin header that the Lambda authorizer checks would close it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Aws, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Stack, Token
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.cdk.api import CustomDomain
from infra.cdk.firewall import web_acl
from infra.cdk.nag import acknowledge

# CloudFront-scope web ACLs and CloudFront's ACM certificates live in this region only.
CLOUDFRONT_REGION = "us-east-1"
_EDGE_WEB_ACL_ARN = re.compile(r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[\w-]+/[\w-]+$")
# The common rule set's 8 KB body limit would block document uploads (base64 in JSON); that rule only counts.
EDGE_COUNT_ONLY = ("SizeRestrictions_BODY",)

GEO_REASON = (
    "No geo restriction: the API serves tenants wherever their users and machine clients are, and the platform "
    "has no list of countries to refuse; CloudFront's geo restriction (allow or deny list) is one setting on this "
    "distribution once a deployment has one."
)
DEFAULT_CERTIFICATE_REASON = (
    "No agentplatform:edgeDomainName/edgeCertificateArn given, so the distribution answers on CloudFront's default "
    "*.cloudfront.net name, for which CloudFront fixes the viewer security policy at TLSv1 whatever the template "
    "asks. With the domain and its ACM certificate in us-east-1 the distribution uses TLSv1.2_2021 with SNI and this "
    "finding does not arise; production deployments should set them."
)


@dataclass(frozen=True)
class EdgeOptions:
    """The edge as a deployment configures it: its web ACL (None: created here) and its own DNS name."""

    web_acl_arn: str | None = None
    domain: CustomDomain | None = None

    def __post_init__(self) -> None:
        if self.web_acl_arn is not None and not _EDGE_WEB_ACL_ARN.match(self.web_acl_arn):
            raise ValueError(
                "agentplatform:edgeWebAclArn must be a CLOUDFRONT-scope web ACL (they exist in us-east-1 only: "
                f"arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>), got {self.web_acl_arn!r}"
            )
        if self.domain and f":acm:{CLOUDFRONT_REGION}:" not in self.domain.certificate_arn:
            raise ValueError(
                f"agentplatform:edgeCertificateArn must be an ACM certificate in {CLOUDFRONT_REGION} (CloudFront "
                f"uses no other region's), got {self.domain.certificate_arn!r}"
            )


class Edge(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        options: EdgeOptions,
        origin_domain: str,
        rate_limit: int,
        access_logs: s3.IBucket,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, id)
        self.web_acl: wafv2.CfnWebACL | None = None
        if options.web_acl_arn:
            self.web_acl_arn = options.web_acl_arn
        else:
            self.web_acl = self._web_acl(rate_limit)
            self.web_acl_arn = self.web_acl.attr_arn
        self.logs = s3.Bucket(
            self,
            "Logs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # CloudFront's standard logging grants itself write access through an object ACL.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="edge-logs/",
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(log_retention_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        domain = options.domain
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{Stack.of(self).stack_name} API edge: AWS WAF in front of the HTTP API"[:128],
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.HttpOrigin(
                    origin_domain,
                    protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
                    origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
                ),
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            ),
            domain_names=[domain.name] if domain else None,
            certificate=(
                acm.Certificate.from_certificate_arn(self, "Certificate", domain.certificate_arn) if domain else None
            ),
            # Only with a certificate of our own: on the default certificate CloudFront fixes TLSv1 (and ignores both).
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if domain else None,
            ssl_support_method=cloudfront.SSLMethod.SNI if domain else None,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            web_acl_id=self.web_acl_arn,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        acknowledge(self.distribution, "AwsSolutions-CFR1", GEO_REASON)
        if domain is None:
            acknowledge(self.distribution, "AwsSolutions-CFR4", DEFAULT_CERTIFICATE_REASON)
        self.url = f"https://{domain.name if domain else self.distribution.distribution_domain_name}"

    def _web_acl(self, rate_limit: int) -> wafv2.CfnWebACL:
        """A CLOUDFRONT-scope web ACL of this stack: only in us-east-1, which a template rule enforces."""
        region = Stack.of(self).region
        if not Token.is_unresolved(region) and region != CLOUDFRONT_REGION:
            raise ValueError(
                f"the edge's web ACL is CLOUDFRONT scope, which exists only in {CLOUDFRONT_REGION}; this stack is "
                f"in {region}: create one there and pass its ARN as agentplatform:edgeWebAclArn"
            )
        CfnRule(
            self,
            "WebAclRegion",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_equals(Aws.REGION, CLOUDFRONT_REGION),
                    assert_description=(
                        f"The edge's CLOUDFRONT-scope web ACL can only be created in {CLOUDFRONT_REGION}: deploy the "
                        "stack there, or create the web ACL in us-east-1 and pass agentplatform:edgeWebAclArn."
                    ),
                )
            ],
        )
        return web_acl(
            self,
            "WebAcl",
            acl_scope="CLOUDFRONT",
            rate_limit=rate_limit,
            description="API edge on CloudFront: per-IP rate limit, AWS managed rules",
            common_count_only=EDGE_COUNT_ONLY,
        )
