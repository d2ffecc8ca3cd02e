"""SageMaker real-time endpoints from `topology.model_endpoints`: one model, endpoint config, endpoint, execution
role, log group and autoscaling target each.

The container is AWS's Hugging Face PyTorch inference Deep Learning Container (GPU) running our own inference
code: the model data is `model.tar.gz` built by bundling.py (`code/` with `inference.py`, the `endpoints` and
`agentplatform` packages; the weights at the root where the endpoint's task has packaged ones, else the container
downloads `HF_MODEL_ID` at start). The DLC registry account differs per region: a CfnMapping from the published
list resolves it at deploy time, and a template rule refuses a region the list does not cover before anything
is created (a synth with an explicit, unmapped region fails outright).

Each endpoint has an explicit name (registry.endpoint_name), so functions get its name and ARN without a token
reference. The volume encryption is SageMaker's default: the g5/g6 GPU hosts keep the model on local NVMe
storage, which their hardware module encrypts, and CreateEndpointConfig refuses a KmsKeyId for such instance
types; EBS-backed types are encrypted with the AWS managed key.
"""

from __future__ import annotations

from aws_cdk import AssetHashType, Aws, CfnMapping, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Token
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from agentplatform.inference import CHAT_MAX_OUTPUT_TOKENS, EMBEDDING_MAX_BATCH, EMBEDDING_MAX_TOKENS
from agentplatform.topology import ModelEndpoint, Topology
from infra.cdk.bundling import ModelArchive
from infra.cdk.nag import acknowledge
from infra.cdk.registry import Registry, construct_id, tag_with_ref
from infra.cdk.settings import EndpointSettings, InfraSettings

DLC_REPOSITORY = "huggingface-pytorch-inference"

# Region -> the AWS account whose ECR registry holds the Deep Learning Containers in that region. Source: the
# published list, aws/deep-learning-containers docs/reference/region_availability.md ("Private ECR account IDs
# by region"), aws partition; where aws-cdk-lib's region-info knows the account too, the two agree
# (tests/infra/test_endpoints.py checks it). Not listed, so refused: the China and GovCloud partitions, and
# regions the list does not name. Adding a region is one line here.
DLC_REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-7": "590183813437",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# A new GPU instance takes minutes to pull the image and load the model: scaling out again before it serves
# would overshoot; scaling in waits longer still, so a short lull does not drop a warm instance.
SCALE_OUT_COOLDOWN = Duration.minutes(5)
SCALE_IN_COOLDOWN = Duration.minutes(10)
# The namespace SageMaker's hosting instances publish their utilization metrics to (the only one allowed).
ENDPOINT_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"
CODE_DIR = "/opt/ml/model/code"

# HF_TASK (the toolkit's pipeline task, if inference.py leaves model_fn to it) and the serving limits, by task.
# The limits use the TEI / TGI variable names and come from the contracts (agentplatform.inference), so the
# server and its clients agree; the generation window is the default model's (SmolLM2: 8192 tokens).
HF_TASK = {"embedding": "feature-extraction", "generation": "text-generation"}
GENERATION_MAX_TOTAL_TOKENS = 8192
LIMITS: dict[str, dict[str, int]] = {
    "embedding": {"MAX_CLIENT_BATCH_SIZE": EMBEDDING_MAX_BATCH, "MAX_INPUT_TOKENS": EMBEDDING_MAX_TOKENS},
    "generation": {
        "MAX_INPUT_TOKENS": GENERATION_MAX_TOTAL_TOKENS - CHAT_MAX_OUTPUT_TOKENS,
        "MAX_TOTAL_TOKENS": GENERATION_MAX_TOTAL_TOKENS,
    },
}

EXECUTION_ROLE_WILDCARD_REASON = (
    "Two actions with no resource-level permissions, so AWS requires Resource '*': ecr:GetAuthorizationToken "
    "(the registry login before pulling the Deep Learning Container; the pull actions themselves are scoped to "
    "the one DLC repository) and cloudwatch:PutMetricData, limited by a cloudwatch:namespace condition to "
    f"{ENDPOINT_METRICS_NAMESPACE} (the endpoint instances' own metrics)."
)


def container_environment(spec: ModelEndpoint, settings: EndpointSettings) -> dict[str, str]:
    """What the inference container is started with."""
    environment = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": CODE_DIR,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "HF_TASK": HF_TASK[spec.task],
        **{name: str(value) for name, value in LIMITS[spec.task].items()},
    }
    if settings.hub_model:
        environment["HF_MODEL_ID"] = settings.hub_model
    return environment


class ModelEndpoints(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        registry: Registry,
        archives: dict[str, ModelArchive],
        settings: InfraSettings,
    ) -> None:
        super().__init__(scope, id)
        unknown = sorted(set(settings.endpoint_overrides) - {e.name for e in topology.model_endpoints})
        if unknown:
            raise ValueError(f"context agentplatform:endpoint:<name>:* names endpoints not in the topology: {unknown}")
        self.registry = registry
        self.settings = {spec.name: settings.endpoint(spec) for spec in topology.model_endpoints}
        self.roles: dict[str, iam.Role] = {}
        if not topology.model_endpoints:
            return
        self.registry_account = self._registry_account()
        for spec in topology.model_endpoints:
            if spec.name not in archives:
                raise KeyError(f"no model archive built for endpoint {spec.name!r}: build_assets(..., endpoints)")
            registry.endpoints[spec.name] = self._endpoint(
                spec, self.settings[spec.name], archives[spec.name], settings.log_retention
            )

    def _registry_account(self) -> str:
        """The DLC registry account of the deployment region, from the published list; an unlisted region fails."""
        stack = self.registry.stack
        if not Token.is_unresolved(stack.region) and stack.region not in DLC_REGISTRY_ACCOUNTS:
            raise ValueError(
                f"region {stack.region} has no Deep Learning Containers registry account in "
                "infra/cdk/endpoints.py DLC_REGISTRY_ACCOUNTS: add it from the published list, do not guess it"
            )
        mapping = CfnMapping(
            self,
            "DlcRegistry",
            mapping={region: {"account": account} for region, account in sorted(DLC_REGISTRY_ACCOUNTS.items())},
        )
        CfnRule(
            self,
            "DlcRegion",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_contains(sorted(DLC_REGISTRY_ACCOUNTS), Aws.REGION),
                    assert_description=(
                        "The model endpoints run AWS Deep Learning Containers, whose registry account is mapped "
                        "for the regions in infra/cdk/endpoints.py DLC_REGISTRY_ACCOUNTS only; this region is not."
                    ),
                )
            ],
        )
        return mapping.find_in_map(Aws.REGION, "account")

    def _image(self, tag: str) -> str:
        return f"{self.registry_account}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{DLC_REPOSITORY}:{tag}"

    def _endpoint(
        self, spec: ModelEndpoint, settings: EndpointSettings, archive: ModelArchive, retention: logs.RetentionDays
    ) -> sagemaker.CfnEndpoint:
        name = construct_id(spec.name)
        endpoint_name = self.registry.endpoint_name(spec.name)
        # The build's own content hash as the asset hash: CDK would otherwise re-read the archive on every synth.
        model_data = s3_assets.Asset(
            self,
            f"{name}ModelData",
            path=str(archive.path),
            asset_hash=archive.key,
            asset_hash_type=AssetHashType.CUSTOM,
        )
        # SageMaker writes to /aws/sagemaker/Endpoints/<endpoint name>; made here to give it a retention. Its name
        # is fixed by SageMaker, so a retained group would block re-creating the stack under the same name.
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            log_group_name=f"/aws/sagemaker/Endpoints/{endpoint_name}",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = self._execution_role(name, spec, model_data, log_group)

        model = sagemaker.CfnModel(
            self,
            f"{name}Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self._image(settings.image_tag),
                model_data_url=model_data.s3_object_url,
                environment=container_environment(spec, settings),
            ),
        )
        model.node.add_dependency(role)  # the policy too: SageMaker checks it can read the model when creating it
        config = sagemaker.CfnEndpointConfig(
            self,
            f"{name}Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=model.attr_model_name,
                    instance_type=settings.instance_type,
                    initial_instance_count=settings.min_instances,
                    initial_variant_weight=1.0,
                )
            ],
        )
        endpoint = sagemaker.CfnEndpoint(
            self, f"{name}Endpoint", endpoint_name=endpoint_name, endpoint_config_name=config.attr_endpoint_config_name
        )
        endpoint.node.add_dependency(log_group)
        tag_with_ref(endpoint, f"endpoint:{spec.name}", "AWS::SageMaker::Endpoint")
        self._autoscaling(name, endpoint, endpoint_name, settings)
        return endpoint

    def _execution_role(
        self, name: str, spec: ModelEndpoint, model_data: s3_assets.Asset, log_group: logs.LogGroup
    ) -> iam.Role:
        stack = self.registry.stack
        role = iam.Role(
            self,
            f"{name}ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Endpoint {spec.name}: its model archive, the DLC image, its own log group and metrics.",
        )
        repository = stack.format_arn(
            service="ecr", account=self.registry_account, resource="repository", resource_name=DLC_REPOSITORY
        )
        statements = [
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[model_data.bucket.arn_for_objects(model_data.s3_object_key)]
            ),
            iam.PolicyStatement(
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[repository],
            ),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": ENDPOINT_METRICS_NAMESPACE}},
            ),
        ]
        for statement in statements:
            role.add_to_principal_policy(statement)
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", EXECUTION_ROLE_WILDCARD_REASON)
        self.roles[spec.name] = role
        return role

    def _autoscaling(
        self, name: str, endpoint: sagemaker.CfnEndpoint, endpoint_name: str, settings: EndpointSettings
    ) -> None:
        stack = self.registry.stack
        # Application Auto Scaling acts through its service-linked role for SageMaker (created on first use);
        # passing it keeps CDK from creating a role of its own.
        scaling_role = iam.Role.from_role_arn(
            self,
            f"{name}ScalingRole",
            stack.format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            ),
            mutable=False,
        )
        target = appscaling.ScalableTarget(
            self,
            f"{name}Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint_name}/variant/{VARIANT}",
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=settings.min_instances,
            max_capacity=settings.max_instances,
            role=scaling_role,
        )
        target.node.add_dependency(endpoint)  # a variant can be registered only once the endpoint exists
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=settings.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
        )
