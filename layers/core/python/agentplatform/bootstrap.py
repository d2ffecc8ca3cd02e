"""The composition root: picks adapters by backend and caches them, once per Lambda container.

Handlers call `container()`; tests call `use_container(...)` with fakes. Nothing here runs at import.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agentplatform.config import Settings, get_settings
from agentplatform.errors import ConfigurationError
from agentplatform.ports import (
    ChatModel,
    EmailSender,
    EmbeddingModel,
    EventBus,
    Function,
    KeyValueTable,
    ObjectStore,
    Queue,
    RerankModel,
    SearchIndex,
    SqlDatabase,
    TaskTokens,
    Workflow,
)

if TYPE_CHECKING:
    from agentplatform.api_keys import ApiKeyStore
    from agentplatform.conversations import ConversationStore
    from agentplatform.documents import DocumentRegistry
    from agentplatform.limits import RateLimiter, TokenMeter
    from agentplatform.mcp_servers import McpServerStore
    from agentplatform.outbox import Outbox


class Container:
    """Builds each client and adapter on first use; one instance per container (module global below)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """A boto3 client for the configured backend; clients are thread-safe and reused."""
        with self._lock:
            if service not in self._clients:
                try:
                    self._clients[service] = self._new_client(service)
                except ValueError as exc:  # e.g. an endpoint URL without a scheme: a deploy problem
                    raise ConfigurationError(f"cannot build a {service} client: {exc}", service=service) from exc
            return self._clients[service]

    def _new_client(self, service: str) -> Any:
        from botocore.config import Config

        if service == "rds-data":
            # A statement's transaction is this adapter's to retry or roll back; the Data API waits up to 45 s.
            config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=50)
        elif service == "sesv2":
            # SendEmail is not idempotent: a resend after a lost answer could deliver twice (the outbox claims once).
            config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=10)
        elif service == "sagemaker-runtime":
            # Generation is slow and not idempotent: wait past InvokeEndpoint's own 60 s limit, never resend.
            config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=70)
        else:
            config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=20)
        if self.settings.backend == "localstack":
            from localstack_client.session import Session as LocalStackSession

            return LocalStackSession(region_name=self.settings.region).client(service, config=config)

        import boto3

        kwargs: dict[str, Any] = {"region_name": self.settings.region, "config": config}
        endpoint_url = self.settings.endpoint_url(service)
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        if self.settings.backend == "local":
            # The emulator's own principals only: a developer's real credentials never travel there.
            s = self.settings
            kwargs.update(aws_access_key_id=s.local_access_key_id, aws_secret_access_key=s.local_secret_access_key)
        return boto3.session.Session().client(service, **kwargs)

    @cached_property
    def drop_store(self) -> ObjectStore:
        from agentplatform.adapters.aws.storage import S3ObjectStore

        return S3ObjectStore(self.settings.require("drop_bucket_name"), self.client("s3"))

    @cached_property
    def artifacts_store(self) -> ObjectStore:
        from agentplatform.adapters.aws.storage import S3ObjectStore

        return S3ObjectStore(self.settings.require("artifacts_bucket_name"), self.client("s3"))

    def table(self, name: str) -> KeyValueTable:
        """Any table of the topology by its name (what checks every table: health)."""
        from agentplatform.adapters.aws.storage import DynamoTable
        from agentplatform.topology import env_var

        field = env_var(f"table:{name}").lower()
        return DynamoTable(self.settings.require(field), self.client("dynamodb"))

    @cached_property
    def registry(self) -> DocumentRegistry:
        from agentplatform.documents import DocumentRegistry

        return DocumentRegistry(self.documents_table)

    @cached_property
    def ingestion_workflow(self) -> Workflow:
        from agentplatform.adapters.aws.storage import StepFunctionsWorkflow

        arn = self.settings.require("ingestion_state_machine_arn")
        return StepFunctionsWorkflow(arn, self.client("stepfunctions"))

    @cached_property
    def alerts_queue(self) -> Queue:
        from agentplatform.adapters.aws.storage import SqsQueue

        return SqsQueue(self.settings.require("alerts_queue_url"), self.client("sqs"))

    @cached_property
    def documents_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("documents_table_name"), self.client("dynamodb"))

    @cached_property
    def api_keys(self) -> ApiKeyStore:
        from agentplatform.adapters.aws.storage import DynamoTable
        from agentplatform.api_keys import ApiKeyStore

        return ApiKeyStore(DynamoTable(self.settings.require("api_keys_table_name"), self.client("dynamodb")))

    @cached_property
    def limits_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("limits_table_name"), self.client("dynamodb"))

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        from agentplatform.limits import RateLimiter

        return RateLimiter(self.limits_table, self.settings.tenant_rate_per_s, self.settings.tenant_burst)

    @cached_property
    def token_meter(self) -> TokenMeter:
        from agentplatform.limits import TokenMeter

        s = self.settings
        return TokenMeter(self.limits_table, s.tenant_token_quota, s.token_quota_period)

    @cached_property
    def event_bus(self) -> EventBus:
        from agentplatform.adapters.aws.storage import EventBridgeBus

        return EventBridgeBus(self.settings.require("platform_event_bus_name"), self.client("events"))

    @cached_property
    def canary_workflow(self) -> Workflow:
        from agentplatform.adapters.aws.storage import StepFunctionsWorkflow

        return StepFunctionsWorkflow(self.settings.require("canary_state_machine_arn"), self.client("stepfunctions"))

    @cached_property
    def embedding_model(self) -> EmbeddingModel:
        from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
        from agentplatform.model_clients import EndpointEmbeddings

        name = self.settings.require("embedding_endpoint_name")
        return EndpointEmbeddings(SageMakerEndpoint(name, self.client("sagemaker-runtime")))

    @cached_property
    def chat_model(self) -> ChatModel:
        from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
        from agentplatform.model_clients import EndpointChat

        name = self.settings.require("generation_endpoint_name")
        return EndpointChat(SageMakerEndpoint(name, self.client("sagemaker-runtime")))

    @cached_property
    def reranker(self) -> RerankModel:
        from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
        from agentplatform.model_clients import EndpointReranker

        name = self.settings.require("rerank_endpoint_name")
        return EndpointReranker(SageMakerEndpoint(name, self.client("sagemaker-runtime")))

    @cached_property
    def llm_gateway_function(self) -> Function:
        from agentplatform.adapters.aws.functions import LambdaFunction

        return LambdaFunction(self.settings.require("llm_gateway_function_name"), self.client("lambda"))

    @cached_property
    def llm_state_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("llm_state_table_name"), self.client("dynamodb"))

    @cached_property
    def llm_cache_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("llm_cache_table_name"), self.client("dynamodb"))

    @cached_property
    def llm_usage_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("llm_usage_table_name"), self.client("dynamodb"))

    @cached_property
    def conversations(self) -> ConversationStore:
        from agentplatform.adapters.aws.storage import DynamoTable
        from agentplatform.conversations import ConversationStore

        return ConversationStore(
            DynamoTable(self.settings.require("conversations_table_name"), self.client("dynamodb"))
        )

    @cached_property
    def tool_state_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("tool_state_table_name"), self.client("dynamodb"))

    @cached_property
    def tools_function(self) -> Function:
        from agentplatform.adapters.aws.functions import LambdaFunction

        return LambdaFunction(self.settings.require("tools_function_name"), self.client("lambda"))

    @cached_property
    def outbox(self) -> Outbox:
        from agentplatform.adapters.aws.storage import DynamoTable
        from agentplatform.outbox import Outbox

        return Outbox(DynamoTable(self.settings.require("outbox_table_name"), self.client("dynamodb")))

    @cached_property
    def email_sender(self) -> EmailSender:
        if self.settings.backend == "local":  # the outbox is the delivery: nothing leaves the machine
            from agentplatform.adapters.local.outbox import OutboxEmailSender

            return OutboxEmailSender(self.outbox)
        from agentplatform.adapters.aws.ses import SesEmailSender

        return SesEmailSender(self.outbox, self.settings.require("email_sender"), self.client("sesv2"))

    @cached_property
    def files_bucket(self) -> ObjectStore:
        from agentplatform.adapters.aws.storage import S3ObjectStore

        return S3ObjectStore(self.settings.require("files_bucket_name"), self.client("s3"))

    @cached_property
    def mcp_servers(self) -> McpServerStore:
        from agentplatform.adapters.aws.storage import DynamoTable
        from agentplatform.mcp_servers import McpServerStore

        return McpServerStore(DynamoTable(self.settings.require("mcp_servers_table_name"), self.client("dynamodb")))

    @cached_property
    def memory_table(self) -> KeyValueTable:
        from agentplatform.adapters.aws.storage import DynamoTable

        return DynamoTable(self.settings.require("memory_table_name"), self.client("dynamodb"))

    @cached_property
    def memory_function(self) -> Function:
        from agentplatform.adapters.aws.functions import LambdaFunction

        return LambdaFunction(self.settings.require("memory_function_name"), self.client("lambda"))

    @cached_property
    def memory_index(self) -> SearchIndex:
        """Memory's own index on the knowledge domain: knowledge searches never see a memory."""
        return self._search_index(f"{self.settings.search_index}-memory")

    @cached_property
    def agent_workflow(self) -> Workflow:
        from agentplatform.adapters.aws.storage import StepFunctionsWorkflow

        arn = self.settings.require("agent_loop_state_machine_arn")
        return StepFunctionsWorkflow(arn, self.client("stepfunctions"))

    @cached_property
    def task_tokens(self) -> TaskTokens:
        from agentplatform.adapters.aws.task_tokens import StepFunctionsTaskTokens

        return StepFunctionsTaskTokens(self.client("stepfunctions"))

    @cached_property
    def retrieval_function(self) -> Function:
        from agentplatform.adapters.aws.functions import LambdaFunction

        return LambdaFunction(self.settings.require("retrieval_function_name"), self.client("lambda"))

    @cached_property
    def sql_database(self) -> SqlDatabase:
        """The business tools' CRM + ERP database: a SQLite file locally, Aurora through the Data API in AWS."""
        if self.settings.sql_database_path:
            from agentplatform.adapters.sqlite_db import SqliteDatabase

            return SqliteDatabase(self.settings.sql_database_path)
        from agentplatform.adapters.aws.rds_data import RdsDataDatabase

        return RdsDataDatabase(
            self.settings.require("sql_cluster_arn"),
            self.settings.require("sql_secret_arn"),
            self.settings.sql_database,
            self.client("rds-data"),
        )

    @cached_property
    def search_index(self) -> SearchIndex:
        return self._search_index(self.settings.search_index)

    def _search_index(self, name: str) -> SearchIndex:
        url = self.settings.require("knowledge_search_url")
        if url.startswith("file://"):
            from pathlib import Path

            from agentplatform.adapters.local.search import EmbeddedSearchIndex

            return EmbeddedSearchIndex(Path(url.removeprefix("file://")) / name)
        from agentplatform.adapters.opensearch import OpenSearchIndex, connect

        client = connect(url, region=self.settings.region, sigv4=self.settings.backend == "aws")
        return OpenSearchIndex(client, index=name)

    def close(self) -> None:
        """Release what outlives a request (the embedded index's directory lock)."""
        for name in ("search_index", "memory_index"):
            index = self.__dict__.pop(name, None)
            if index is not None and hasattr(index, "close"):
                index.close()


_container: Container | None = None
_container_lock = threading.Lock()
# The container of the function running in this context: the local runtime runs every function in one process and
# binds each invocation to its function's own container (its own settings and credentials), as a Lambda has.
_scoped: ContextVar[Container | None] = ContextVar("agentplatform_container", default=None)


def container() -> Container:
    global _container
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    with _container_lock:
        if _container is None:
            _container = Container(get_settings())
        return _container


def use_container(replacement: Container | None) -> None:
    """Swap the container (tests pass one holding fakes; None rebuilds from settings on next use)."""
    global _container
    with _container_lock:
        if _container is not None and _container is not replacement:
            _container.close()
        _container = replacement


@contextmanager
def scoped_container(scoped: Container) -> Iterator[None]:
    """`container()` answers `scoped` in this context (and in contexts copied from it) until the block ends."""
    token = _scoped.set(scoped)
    try:
        yield
    finally:
        _scoped.reset(token)
