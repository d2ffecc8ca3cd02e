"""Lambda assets built on this machine, without Docker, into `.build/` (gitignored).

- The core layer: `python/` holds the layer's runtime dependencies (pyproject's `[project].dependencies`,
  resolved for the Lambda runtime's CPU and Python with `pip --platform ... --only-binary=:all:`) plus a copy of
  the `agentplatform` package. Whatever the Lambda Python runtime already ships (boto3 and its dependency
  closure) is left out: a botocore in a layer would shadow the runtime's and mismatch its boto3.
  The pip step is cached under `.build/layer-deps/<key>/`, keyed by a hash of the requirements and the target
  platform, so only the first synth (or a change of pins) needs PyPI.
- One asset per service: `functions/__init__.py` + `functions/<service>/`, so the handler's dotted path
  (`functions.<service>.handler.handler`) imports the same inside Lambda as in development.

Every output folder is named by a hash of its content and assembled under a file lock, so a synth running
beside another (tests and `cdk synth`) never sees a half-written folder. Run `python -m infra.cdk.bundling` to
build them without synthesizing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO_ROOT / ".build"
CORE_PACKAGE = REPO_ROOT / "layers" / "core" / "python" / "agentplatform"
FUNCTIONS_DIR = REPO_ROOT / "functions"

# The Lambda runtime the assets are built for; stack code derives the CDK runtime and architecture from these.
PYTHON_VERSION = "3.13"
PIP_PLATFORM = "manylinux2014_aarch64"

# Shipped by the Lambda Python runtime itself (boto3 and its dependency closure): never put in the layer.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})

# Bump when the layout of the built folders changes, to invalidate every cache.
_LAYOUT_VERSION = "1"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")


class BundlingError(RuntimeError):
    """An asset could not be built (pip failed, PyPI unreachable on a cold cache, a package folder is missing)."""


@dataclass(frozen=True)
class Assets:
    layer: Path  # the folder holding `python/`
    functions: dict[str, Path]  # service -> the folder holding `functions/`


def canonical_name(requirement: str) -> str:
    """PEP 503 name of a requirement string: "aws-lambda-powertools[tracer]==3.37.0" -> "aws-lambda-powertools"."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise BundlingError(f"cannot read a package name from requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies from pyproject (the one place they are declared), less what Lambda provides."""
    with pyproject.open("rb") as fh:
        dependencies: list[str] = tomllib.load(fh)["project"]["dependencies"]
    return sorted(d for d in dependencies if canonical_name(d) not in RUNTIME_PROVIDED)


def build_assets(services: list[str]) -> Assets:
    """Build (or reuse) the layer and one asset per service; returns the folders to hand to Code.from_asset."""
    with _build_lock():
        layer = _build_layer()
        functions = {service: _build_function(service) for service in sorted(set(services))}
    return Assets(layer=layer, functions=functions)


def _build_layer() -> Path:
    deps = _layer_dependencies()
    key = _digest(deps.name, _tree_digest(CORE_PACKAGE))
    target = BUILD_DIR / "layer" / key
    if not target.exists():
        with _staging(target) as staging:
            # Hard links: the dependencies are never modified in place, and linking is instant.
            shutil.copytree(deps / "python", staging / "python", copy_function=_link_or_copy)
            shutil.copytree(CORE_PACKAGE, staging / "python" / CORE_PACKAGE.name, ignore=_IGNORED)
    _prune(target)
    return target


def _layer_dependencies() -> Path:
    requirements = layer_requirements()
    key = _digest(_LAYOUT_VERSION, PYTHON_VERSION, PIP_PLATFORM, *requirements, "exclude:", *sorted(RUNTIME_PROVIDED))
    target = BUILD_DIR / "layer-deps" / key
    if target.exists():
        return target
    with _staging(target) as staging:
        pins = _resolve(requirements, staging)
        _pip(
            "install", "--no-deps", "--no-compile", "--target", str(staging / "python"),
            *_platform_args(), *pins,
        )  # fmt: skip
        (staging / "requirements.lock").write_text("\n".join(pins) + "\n")
    _prune(target)
    return target


def _resolve(requirements: list[str], workdir: Path) -> list[str]:
    """Resolve the full dependency set for the Lambda platform; pin everything the runtime does not provide."""
    report = workdir / "resolution.json"
    _pip(
        "install", "--dry-run", "--ignore-installed", "--report", str(report),
        "--target", str(workdir / "resolve-target"), *_platform_args(), *requirements,
    )  # fmt: skip
    installs = json.loads(report.read_text())["install"]
    report.unlink()
    pins = [
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installs
        if canonical_name(item["metadata"]["name"]) not in RUNTIME_PROVIDED
    ]
    return sorted(pins, key=str.lower)


def _platform_args() -> list[str]:
    return [
        "--platform", PIP_PLATFORM, "--implementation", "cp", "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
    ]  # fmt: skip


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundlingError(
            f"pip failed ({result.returncode}) building the Lambda layer: {' '.join(command)}\n{result.stderr}"
        )


def _build_function(service: str) -> Path:
    source = FUNCTIONS_DIR / service
    if not (source / "__init__.py").is_file():
        raise BundlingError(f"no package functions/{service}/ for a function of service {service!r}")
    package_init = FUNCTIONS_DIR / "__init__.py"
    key = _digest(_LAYOUT_VERSION, _file_digest(package_init), _tree_digest(source))
    target = BUILD_DIR / "functions" / service / key
    if not target.exists():
        with _staging(target) as staging:
            (staging / "functions").mkdir()
            shutil.copy2(package_init, staging / "functions" / "__init__.py")
            shutil.copytree(source, staging / "functions" / service, ignore=_IGNORED)
    _prune(target)
    return target


@contextmanager
def _build_lock() -> Iterator[None]:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A scratch folder beside `target`, renamed onto it only when the build inside succeeded."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        shutil.rmtree(staging / "resolve-target", ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prune(keep: Path) -> None:
    """Drop the other builds beside `keep` (older pins, older package contents)."""
    for sibling in keep.parent.iterdir():
        if sibling != keep and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix in {".pyc", ".pyo"} or path.name == ".DS_Store":
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def main() -> None:
    from agentplatform.topology import PLATFORM

    assets = build_assets([f.service for f in PLATFORM.functions])
    print(f"layer: {assets.layer.relative_to(REPO_ROOT)}")
    for service, path in assets.functions.items():
        print(f"function {service}: {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
