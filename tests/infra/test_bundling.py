"""The Lambda assets built without Docker: what the layer and each function asset contain, and the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentplatform.topology import PLATFORM, Function
from infra.cdk import bundling
from tests.infra.cdk_synth import REPO_ROOT, Synth

pytestmark = pytest.mark.infra

RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "jmespath")


def _layer(synth: Synth) -> Path:
    (lid,) = synth.of_type("AWS::Lambda::LayerVersion")
    return synth.asset_path(synth.props(lid)["Content"]["S3Key"])


def test_layer_requirements_come_from_pyproject_without_what_lambda_ships() -> None:
    requirements = bundling.layer_requirements()
    names = {bundling.canonical_name(r) for r in requirements}
    assert "boto3" not in names and "botocore" not in names
    assert {"aws-lambda-powertools", "pydantic", "pydantic-settings", "tenacity"} <= names
    assert all("==" in r for r in requirements), "layer dependencies must be pinned"


def test_canonical_name() -> None:
    assert bundling.canonical_name("aws-lambda-powertools[tracer]==3.37.0") == "aws-lambda-powertools"
    assert bundling.canonical_name("Pydantic_Settings>=2") == "pydantic-settings"


def test_layer_holds_the_core_package_and_wheels_for_the_lambda_platform(synth: Synth) -> None:
    python = _layer(synth) / "python"
    core = REPO_ROOT / "layers" / "core" / "python" / "agentplatform"
    assert (python / "agentplatform" / "topology.py").read_bytes() == (core / "topology.py").read_bytes()
    assert list((python / "pydantic_core").glob("*.cpython-313-aarch64-linux-gnu.so")), "pydantic-core for cp313/arm64"
    assert (python / "aws_lambda_powertools").is_dir()
    assert (python / "aws_xray_sdk").is_dir()  # the [tracer] extra
    for module in RUNTIME_MODULES:
        assert not (python / module).exists(), f"{module} ships with the Lambda runtime and must not be shadowed"
    assert not list(python.rglob("__pycache__"))


@pytest.mark.parametrize("function", [pytest.param(f, id=f.name) for f in PLATFORM.functions])
def test_function_asset_imports_the_handler_as_in_development(synth: Synth, function: Function) -> None:
    asset = synth.asset_path(synth.props(f"function:{function.name}")["Code"]["S3Key"])
    module = function.module
    assert (asset / "functions" / "__init__.py").is_file()
    assert (asset / Path(*module.split("."))).with_suffix(".py").is_file()
    assert {p.name for p in (asset / "functions").iterdir()} == {"__init__.py", function.service}
    assert not list(asset.rglob("__pycache__"))


def test_a_second_build_reuses_the_cache_without_pip(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pip(*args: str) -> None:
        raise AssertionError(f"pip ran although the layer is cached: {args}")

    monkeypatch.setattr(bundling, "_pip", no_pip)
    first = bundling.build_assets([f.service for f in PLATFORM.functions])
    second = bundling.build_assets([f.service for f in PLATFORM.functions])
    assert first == second
