"""Starts and stops the whole local platform: emulator, resources, Lambda routing, event delivery, HTTP API."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentplatform.bootstrap import Container, container, use_container
from agentplatform.config import reset_settings
from agentplatform.topology import AUTHORIZER_CACHE_TTL_S, PLATFORM, CorsPolicy, Function, Topology, env_var
from local.auth import AUDIENCE, ISSUER, Authorizers, DevIssuer, JwtAuthorizer, LambdaAuthorizer
from local.crm_db import ensure_database
from local.delivery import EventDelivery, QueuePoller
from local.dropfolder import DropFolderMirror
from local.emulator import ACCOUNT, MotoEmulator, Scheduler
from local.gateway import HttpGateway
from local.iam import ADMIN, Credentials, Enforcement, create_admin, create_principals
from local.lambdas import FunctionContainer, FunctionSettings, LambdaRouter
from local.model_server import HostedModel, ModelServer, hosted_model
from local.persistence import TablePersistence, TableSnapshot, fail_interrupted_turns
from local.resources import Provisioned, physical_name, provision
from local.tls import server_context

log = logging.getLogger("local.runtime")

_running: LocalRuntime | None = None

# The tables kept across restarts (under <data>/tables/): the user's conversations (turns, tool runs, escalations),
# what memory knows about them, the outbox, the tenants' MCP servers and the evaluation records. The others start
# empty on purpose: the document registry is rebuilt by the drop-folder mirror, the gateway's caches, budgets and the
# tools' breakers are derived state.
PERSISTED_TABLES = ("conversations", "memory", "outbox", "mcp_servers", "evaluations")


class RuntimeSettings(BaseSettings):
    """Where the local platform listens and keeps its data; every port can be changed (0 picks a free one)."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field(default="127.0.0.1", alias="LOCAL_HOST")
    http_port: int = Field(default=8080, alias="LOCAL_HTTP_PORT", ge=0, le=65535)
    https_port: int = Field(default=8443, alias="LOCAL_HTTPS_PORT", ge=0, le=65535)
    aws_port: int = Field(default=5000, alias="LOCAL_AWS_PORT", ge=0, le=65535)
    model_port: int = Field(default=8090, alias="LOCAL_MODEL_PORT", ge=0, le=65535)
    # Which model endpoints the local model server hosts: "all", "none", or names ("embedding,generation").
    models: str = Field(default="all", alias="LOCAL_MODELS")
    # Threads per model. 1 by default: on a small machine two models (and moto) share the cores, and torch's
    # spinning worker threads slow each other down by an order of magnitude when oversubscribed.
    model_threads: int = Field(default=1, alias="LOCAL_MODEL_THREADS", ge=1)
    # The embedding endpoint's ONNX Runtime threads. 2 by default: its threads do not spin when idle, and a large
    # document embeds ~1.8x faster on two cores (18 vs 10 chunks/s here).
    embedding_threads: int = Field(default=2, alias="LOCAL_EMBEDDING_THREADS", ge=1)
    data_dir: Path = Field(default=Path(".data"), alias="LOCAL_DATA_DIR")
    region: str = Field(default="us-east-1", alias="AWS_REGION")
    prefix: str = Field(default="agentplatform", alias="LOCAL_RESOURCE_PREFIX")
    # Divides every schedule's interval: 60 runs a rate(5 minutes) rule every 5 seconds.
    schedule_speedup: float = Field(default=1.0, alias="LOCAL_SCHEDULE_SPEEDUP", gt=0)
    # The real folder mirrored into the drop bucket: <drop_dir>/<tenant>/<path>.
    drop_dir: Path = Field(default=Path("dropfolder"), alias="LOCAL_DROP_DIR")
    drop_poll_s: float = Field(default=1.0, alias="LOCAL_DROP_POLL_S", gt=0)
    # The tenants whose drop folders are accepted (comma-separated); `python -m local tenant NAME` adds one.
    tenants: str = Field(default="acme,globex,demo", alias="LOCAL_TENANTS")
    # Browser origins allowed to call the API (comma-separated, "*" for any); empty: no CORS headers.
    cors_origins: str = Field(default="", alias="LOCAL_CORS_ORIGINS")
    # How long the gateway keeps a Lambda authorizer answer, as API Gateway does (a revoked key's grace).
    authorizer_cache_s: float = Field(default=AUTHORIZER_CACHE_TTL_S, alias="LOCAL_AUTHORIZER_CACHE_S", ge=0)
    # `enforce`: the emulator authorizes each function's calls against its own grants (local/iam.py), as IAM does;
    # `off`: any call is allowed (each function still sees only its own resources' variables).
    iam: Literal["enforce", "off"] = Field(default="enforce", alias="LOCAL_IAM")

    @classmethod
    def on_free_ports(cls, **overrides: Any) -> RuntimeSettings:
        """A stack beside any other (every port 0: a free one), without models unless `LOCAL_MODELS` says so:
        for one-off invocations, tests and benchmarks."""
        return cls(
            **{
                "LOCAL_HTTP_PORT": 0,
                "LOCAL_HTTPS_PORT": 0,
                "LOCAL_AWS_PORT": 0,
                "LOCAL_MODEL_PORT": 0,
                "LOCAL_MODELS": "none",
                **overrides,
            }
        )

    def tenant_names(self) -> list[str]:
        return [t.strip() for t in self.tenants.split(",") if t.strip()]


class LocalRuntime:
    def __init__(self, settings: RuntimeSettings | None = None, topology: Topology = PLATFORM) -> None:
        self.settings = settings or RuntimeSettings()
        self.topology = topology
        self.router = LambdaRouter(ACCOUNT, self.settings.region)
        self.provisioned = Provisioned()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._saved_env: dict[str, str | None] = {}
        self._pollers: list[QueuePoller] = []
        self.emulator: MotoEmulator | None = None
        self.gateway: HttpGateway | None = None
        self.delivery: EventDelivery | None = None
        self.scheduler: Scheduler | None = None
        self.model_server: ModelServer | None = None
        self.issuer: DevIssuer | None = None
        self.mirror: DropFolderMirror | None = None
        self.persistence: TablePersistence | None = None
        self.credentials: dict[str, Credentials] = {}
        self.enforcement = Enforcement()
        self._function_containers: dict[str, tuple[Container, Container]] = {}
        self.router.containers = self._function_container

    # -- clients to the emulator (the runtime's own; handlers build theirs through the composition root)
    def client(self, service: str) -> Any:
        import boto3

        assert self.emulator is not None, "start() first"
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.session.Session().client(
                    service,
                    region_name=self.settings.region,
                    endpoint_url=self.emulator.url,
                    aws_access_key_id=ADMIN[0],
                    aws_secret_access_key=ADMIN[1],
                )
            return self._clients[service]

    @property
    def aws_endpoint(self) -> str:
        assert self.emulator is not None
        return self.emulator.url

    @property
    def http_url(self) -> str:
        assert self.gateway is not None
        return f"http://{self.settings.host}:{self.gateway.ports[0]}"

    @property
    def https_url(self) -> str:
        assert self.gateway is not None
        return f"https://{self.settings.host}:{self.gateway.ports[1]}"

    @property
    def model_url(self) -> str:
        assert self.model_server is not None
        return self.model_server.url

    def start(self) -> LocalRuntime:
        global _running
        if _running is not None:
            raise RuntimeError("a local runtime is already running in this process (moto's state is per process)")
        _running = self
        try:
            self._start()
        except BaseException:
            self.stop()  # a port in use or a failed provisioning leaves nothing running
            raise
        return self

    def _start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.router.logbook.open(s.data_dir / "logs")
        self.delivery = EventDelivery(self.router, self.client, s.region)
        self.emulator = MotoEmulator(s.host, s.aws_port, self.router, self.delivery)
        self.emulator.start()
        create_admin(self.client("iam"), ACCOUNT)
        self.provisioned = provision(self.topology, self.client, self.router, s.prefix, s.region, s.data_dir)
        self.credentials = create_principals(
            self.client("iam"), self.topology, self.provisioned, s.prefix, s.region, ACCOUNT
        )
        if s.iam == "enforce":
            self.enforcement.start()
        self._restore_tables()
        self.model_server = ModelServer(s.host, s.model_port, models_for(s, self.topology), ACCOUNT)
        self.model_server.start()
        self.issuer = DevIssuer(s.data_dir / "auth")
        self._set_environment()
        for mapping in self.topology.event_sources:
            queue = f"queue:{mapping.queue}"
            poller = QueuePoller(
                self.router,
                self.client("sqs"),
                self.provisioned.value(queue, "url"),
                self.provisioned.value(queue, "arn"),
                physical_name(s.prefix, mapping.function),
                mapping.batch_size,
                s.region,
                window_s=mapping.max_batching_window_s,
            )
            poller.start()
            self._pollers.append(poller)
        self.scheduler = Scheduler(s.region, speedup=s.schedule_speedup)
        self.scheduler.start()
        for tenant in s.tenant_names():
            container().registry.add_tenant(tenant)
            (s.drop_dir / tenant).mkdir(parents=True, exist_ok=True)
        self.mirror = DropFolderMirror(
            s.drop_dir,
            self.client("s3"),
            self.provisioned.value("bucket:drop", "name"),
            s.data_dir / "dropfolder-mirrored.json",
            interval_s=s.drop_poll_s,
        )
        self.mirror.start()
        authorizers = Authorizers(
            JwtAuthorizer(self.issuer), LambdaAuthorizer(self._invoke_route, "authorizer", s.authorizer_cache_s)
        )
        self.gateway = HttpGateway(
            self.topology.routes,
            self._invoke_route,
            authorizers,
            s.host,
            s.http_port,
            s.https_port,
            server_context(s.data_dir / "tls"),
            CorsPolicy(allow_origins=[o.strip() for o in s.cors_origins.split(",") if o.strip()]),
        )
        self.gateway.start()

    def stop(self) -> None:
        if self.mirror:
            self.mirror.stop()
        if self.gateway:
            self.gateway.stop()
        if self.model_server:
            self.model_server.stop()
        for poller in self._pollers:
            poller.stop()
        if self.scheduler:
            self.scheduler.stop()
        if self.delivery:
            self.delivery.stop()
        if self.persistence:
            self.persistence.stop()  # the last snapshot, while the emulator still answers
        if self.emulator:
            self.emulator.stop()
        self.enforcement.stop()
        use_container(None)  # closes what the handlers opened (the embedded search index)
        self.router.logbook.close()
        self._restore_environment()
        global _running
        if _running is self:
            _running = None

    def _restore_tables(self) -> None:
        """Before anything can start a turn: the saved tables back in, then the turns their stop interrupted failed."""
        ddb, streams = self.client("dynamodb"), self.client("dynamodbstreams")
        folder = self.settings.data_dir / "tables"
        kept = [t.name for t in self.topology.tables if t.name in PERSISTED_TABLES]  # a test topology may lack them
        names = {t: self.provisioned.value(f"table:{t}", "name") for t in kept}
        snapshots = [TableSnapshot(ddb, n, folder / f"{t}.jsonl", streams) for t, n in names.items()]
        self.persistence = TablePersistence(snapshots)
        restored = self.persistence.restore()
        if "conversations" in names:
            name = names["conversations"]
            fail_interrupted_turns(ddb, self.client("stepfunctions"), name, restored[name])
        self.persistence.start()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def invoke(self, function: str, event: Any) -> tuple[bool, Any]:
        """Invoke a topology function by its logical name, as Lambda would; returns (failed, result)."""
        result = self.router.invoke(physical_name(self.settings.prefix, function), event)
        return result.failed, json.loads(result.payload)

    _invoke_route = invoke

    def _function_container(self, function: Function) -> Container:
        """The function's own container, as its Lambda would have: the common environment, only its grants'
        resource variables, and its own credentials. Rebuilt when the process's container is (use_container)."""
        shared = contextvars.Context().run(container)  # the process's, not the caller's function's
        cached = self._function_containers.get(function.name)
        if cached is not None and cached[0] is shared:
            return cached[1]
        resources = self.provisioned.env()
        env = {k: v for k, v in os.environ.items() if k not in resources}
        env |= {env_var(g.ref): resources[env_var(g.ref)] for g in function.uses if env_var(g.ref) in resources}
        env |= self.credentials[function.name].env()
        scoped = FunctionContainer(FunctionSettings(**env), shared)
        self._function_containers[function.name] = (shared, scoped)
        return scoped

    def _set_environment(self) -> None:
        """The handlers run in this process: give them what Lambda's configuration would, for every function."""
        assert self.emulator is not None
        env = {
            "PLATFORM_BACKEND": "local",
            "LOCAL_AWS_ENDPOINT_URL": self.emulator.url,
            "LOCAL_MODEL_ENDPOINT_URL": self.model_url,
            "AWS_REGION": self.settings.region,
            "AWS_DEFAULT_REGION": self.settings.region,
            # EMF metrics would print a JSON document per invocation to the console.
            "POWERTOOLS_METRICS_DISABLED": "true",
            # The Lambda authorizer trusts the dev issuer, as in AWS it trusts the Cognito user pool.
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "JWKS_URL": (self.settings.data_dir / "auth" / "jwks.json").resolve().as_uri(),
            # The local tool-routing model (SmolLM2-135M) costs ~10 s a turn and routes no better than the
            # retrieval-first plan (docs/agent-loop.md): ask it only when the searches found nothing. An
            # AGENT_MODEL_STEP already in the environment wins (a test of the model's routing sets `always`).
            "AGENT_MODEL_STEP": os.environ.get("AGENT_MODEL_STEP") or "when_needed",
            # The business tools' CRM + ERP database, built from the shipped sample data set (data/crm).
            "SQL_DATABASE_PATH": str(ensure_database(self.settings.data_dir / "crm.sqlite3")),
            **self.provisioned.env(),
        }
        for key, value in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        reset_settings()
        use_container(None)

    def _restore_environment(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        reset_settings()
        use_container(None)

    def summary(self) -> str:
        rows = [
            ("HTTP API", self.http_url),
            ("HTTPS API (self-signed)", self.https_url),
            ("AWS endpoint (moto)", self.aws_endpoint),
            ("model server (SageMaker runtime)", self.model_url),
            ("data folder", str(self.settings.data_dir.resolve())),
            ("drop folder (<tenant>/<path>)", str(self.settings.drop_dir.resolve())),
            ("tenants", ", ".join(self.settings.tenant_names())),
        ]
        for ref, identity in sorted(self.provisioned.resources.items()):
            rows.append((ref, identity.get("url") or identity["name"]))
        width = max(len(k) for k, _ in rows)
        lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
        hints = [
            f"  export AWS_ENDPOINT_URL={self.aws_endpoint}  # for aws cli / boto3 against the emulator",
            "  make token TENANT=acme USER_ID=alice  # a bearer token for the API's authenticated routes",
        ]
        return "\n".join(["Agent Platform (local) is up:", *lines, "", *hints])


def models_for(settings: RuntimeSettings, topology: Topology = PLATFORM) -> list[HostedModel]:
    """The topology's endpoints that LOCAL_MODELS selects, under their physical names."""
    wanted = settings.models.strip().lower()
    every = {e.name for e in topology.model_endpoints}
    names = every if wanted == "all" else {n.strip() for n in wanted.split(",")} - {"", "none"}
    cache = settings.data_dir / "models"
    return [
        hosted_model(
            physical_name(settings.prefix, e.name),
            e.task,
            cache,
            settings.embedding_threads if e.task == "embedding" else settings.model_threads,
        )
        for e in topology.model_endpoints
        if e.name in names
    ]
