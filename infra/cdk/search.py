"""One Amazon OpenSearch Service domain per topology SearchDomain, inside the platform's VPC (network.py).

Why a managed domain and not OpenSearch Serverless:
- Cost at this scale. Serverless bills OpenSearch Compute Units around the clock, idle or not: at least 1 OCU
  for indexing plus 1 for search with redundancy on (0.5 OCU x 2 each), 0.5 + 0.5 with redundancy off (dev/test
  only), at about $0.24 per OCU-hour in us-east-1: ~$350 a month for a production collection before storage,
  ~$175 without redundancy, and a vector collection does not share OCUs with search collections. The default
  domain here (two t3.small.search data nodes, 10 GiB gp3 each) is roughly $55 a month.
- Hybrid search. The platform fuses BM25 and vector results in a search pipeline, with the neural-search
  plugin's normalization-processor (OpenSearch 2.10+) or the score-ranker-processor for reciprocal rank fusion
  (2.19+). A domain on OpenSearch 2.19 or later has both; Serverless documents only the normalization processor
  for hybrid search, so RRF would not be available there.

The engine is the newest OpenSearch version aws-cdk-lib exposes (it must be 2.19 or later for RRF); version
upgrades happen in place (`enable_version_upgrade`), and are one-way.

Security, layer by layer:
- Network: the domain's security group admits HTTPS only from its clients' group, which is the group every
  function granted the domain runs in (functions.py puts those functions in the VPC).
- Domain access policy: the roles of the functions granted the domain, each with exactly the HTTP actions and
  paths its own IAM policy has (permissions.py), and the domain's admin role. IP allow-lists do not apply to a
  VPC domain.
- Fine-grained access control, with an IAM role as master user: a dedicated admin role in this stack, assumable
  by principals of this account whose IAM policies allow it. FGAC maps IAM-signed requests to OpenSearch roles
  by the caller's IAM role ARN (its "backend role"), and nothing deployed here can call the security plugin's
  API, so until a role-mapping step exists an operator maps the function roles once (README: "Search: role
  mapping"). The alternative of making a function's role the master user would give that function all_access
  and still leave the other functions unmapped. FGAC is also what keeps the account's administrators (whose
  identity policies may allow es:ESHttp* everywhere) from reading tenant chunks without assuming the admin role.
- Encryption at rest (AWS owned key), node-to-node encryption, HTTPS only with a TLS 1.2 (forward secrecy) policy.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from agentplatform.topology import SearchDomain, Topology
from infra.cdk.nag import acknowledge
from infra.cdk.network import HTTPS, Network
from infra.cdk.permissions import permissions_for
from infra.cdk.registry import Registry, construct_id, tag_with_ref
from infra.cdk.settings import InfraSettings, SearchSettings

ENGINE_VERSION = opensearch.EngineVersion.OPENSEARCH_3_7
TLS_POLICY = opensearch.TLSSecurityPolicy.TLS_1_2_PFS
ADMIN_ACTIONS = ("es:ESHttp*",)

VPC_ONLY_REASON = (
    "The domain is in a VPC (isolated subnets, no internet route), where IP-based access policies do not apply: "
    "its security group admits HTTPS only from the group of the functions granted the domain, and its access "
    "policy names only those functions' roles (with their own actions and paths) and the domain's admin role, on "
    "top of fine-grained access control with an IAM master role."
)
NO_DEDICATED_MASTERS_REASON = (
    "Dedicated master nodes are off by default for cost: three more instances running around the clock for a "
    "two-node domain holding one small index. Turn them on per domain with the context settings "
    "agentplatform:search:<name>:dedicatedMasterType (and dedicatedMasterCount, 3 or 5)."
)


class Search(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        registry: Registry,
        network: Network,
        settings: InfraSettings,
    ) -> None:
        super().__init__(scope, id)
        unknown = sorted(set(settings.search_overrides) - {d.name for d in topology.search_domains})
        if unknown:
            raise ValueError(
                f"context agentplatform:search:<name>:* names search domains not in the topology: {unknown}"
            )
        self.registry = registry
        self.network = network
        self.admin_roles: dict[str, iam.Role] = {}
        for spec in topology.search_domains:
            name = construct_id(spec.name)
            registry.search_indexes[spec.name] = spec.index
            registry.search_clients[spec.name] = network.client_group(
                self, f"{name}Clients", f"Functions that use search domain {spec.name}: HTTPS out"
            )
            registry.search_domains[spec.name] = self._domain(spec, settings.search(spec), settings.log_retention)

    def _domain(self, spec: SearchDomain, settings: SearchSettings, retention: logs.RetentionDays) -> opensearch.Domain:
        name = construct_id(spec.name)
        group = ec2.SecurityGroup(
            self,
            f"{name}DomainSecurityGroup",
            vpc=self.network.vpc,
            description=f"Search domain {spec.name}: HTTPS from the functions granted it, nothing else",
            allow_all_outbound=False,
        )
        group.add_ingress_rule(self.registry.search_clients[spec.name], HTTPS, "HTTPS from the domain's clients")
        admin = iam.Role(
            self,
            f"{name}AdminRole",
            assumed_by=iam.AccountRootPrincipal(),
            description=(
                f"Search domain {spec.name}: the fine-grained access control master user (maps roles, manages "
                "the security plugin); assumable by this account's principals whose IAM policies allow it."
            ),
        )
        self.admin_roles[spec.name] = admin

        log_groups = {
            kind: logs.LogGroup(self, f"{name}{kind}Logs", retention=retention)
            for kind in ("SlowSearch", "SlowIndex", "Application")
        }
        # The service writes the logs under this account's resource policy; CDK would otherwise deploy a
        # custom-resource Lambda to put the same policy.
        logs_policy = logs.ResourcePolicy(
            self,
            f"{name}LogsPolicy",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn for log_group in log_groups.values()],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        "ArnLike": {"aws:SourceArn": self.registry.search_domain_arn(spec.name)},
                    },
                )
            ],
        )

        domain = opensearch.Domain(
            self,
            f"{name}Domain",
            version=ENGINE_VERSION,
            domain_name=self.registry.search_domain_name(spec.name),
            enable_version_upgrade=True,
            vpc=self.network.vpc,
            vpc_subnets=[self.network.subnets],
            security_groups=[group],
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=True, availability_zone_count=2),
            capacity=opensearch.CapacityConfig(
                data_node_instance_type=settings.instance_type,
                data_nodes=settings.instance_count,
                master_node_instance_type=settings.dedicated_master_type,
                master_nodes=settings.dedicated_master_count or None,
                # Multi-AZ with standby needs three AZs, dedicated masters and no burstable instances.
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(
                enabled=True, volume_size=settings.volume_size_gib, volume_type=ec2.EbsDeviceVolumeType.GP3
            ),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=TLS_POLICY,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(master_user_arn=admin.role_arn),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
                app_log_enabled=True,
                app_log_group=log_groups["Application"],
            ),
            suppress_logs_resource_policy=True,
            off_peak_window_enabled=True,
            removal_policy=settings.removal_policy,
        )
        domain.node.add_dependency(logs_policy)
        tag_with_ref(domain, f"search:{spec.name}", "AWS::OpenSearchService::Domain")
        acknowledge(domain, "AwsSolutions-OS3", VPC_ONLY_REASON)
        if not settings.dedicated_master_count:
            acknowledge(domain, "AwsSolutions-OS4", NO_DEDICATED_MASTERS_REASON)
        return domain

    def admit(self, topology: Topology) -> None:
        """Write each domain's access policy, once the functions exist: every function granted the domain, with
        the HTTP actions and paths of its own IAM policy, and the admin role with every HTTP action."""
        for spec in topology.search_domains:
            ref = f"search:{spec.name}"
            statements = [
                iam.PolicyStatement(
                    sid="Admin",
                    principals=[iam.ArnPrincipal(self.admin_roles[spec.name].role_arn)],
                    actions=list(ADMIN_ACTIONS),
                    resources=[f"{self.registry.arn(ref)}/*"],
                )
            ]
            for function in topology.functions:
                role = self.registry.functions[function.name].role
                assert role is not None
                for grant in (g for g in function.uses if g.ref == ref):
                    for permission in permissions_for(self.registry, grant):
                        # The access policy governs the HTTP data plane; DescribeDomain stays in the role's policy.
                        actions = [a for a in permission.actions if a.startswith("es:ESHttp")]
                        if actions:
                            statements.append(
                                iam.PolicyStatement(
                                    principals=[iam.ArnPrincipal(role.role_arn)],
                                    actions=actions,
                                    resources=list(permission.resources),
                                )
                            )
            cfn = cast(opensearch.CfnDomain, self.registry.search_domains[spec.name].node.default_child)
            cfn.access_policies = iam.PolicyDocument(statements=statements)
