"""Ports: what the platform's services need from the outside world, as Protocols.

Adapters implement them: `adapters.aws` (boto3; also LocalStack and the local moto server), `adapters.local` (the
embedded search engine); the tests' in-memory fakes live in `tests/fakes`, outside the layer. Services depend on
these Protocols only. Every adapter raises the platform's own errors (errors.py), never a vendor's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentplatform.inference import ChatRequest, ChatResponse, Usage
    from agentplatform.llm import ChatCall
    from agentplatform.outbox import EmailMessage, SentEmail
    from agentplatform.search import Chunk, SearchHit, SearchRequest


@dataclass(frozen=True)
class StoredObject:
    key: str
    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    size: int | None = None


class HealthCheck(Protocol):
    def check(self) -> None:
        """Return if the backing resource answers; raise DependencyUnavailable if not."""


class ObjectStore(HealthCheck, Protocol):
    def put(self, key: str, body: bytes, metadata: Mapping[str, str] | None = None) -> StoredObject: ...

    def get(self, key: str) -> StoredObject:
        """Raise NotFound for a missing key."""
        ...

    def head(self, key: str) -> StoredObject:
        """The object's metadata and version without its body (`body` is empty, `size` set); NotFound if missing."""
        ...

    def delete(self, key: str) -> None: ...

    def list_folder(self, folder: str, *, limit: int) -> list[str] | None:
        """The keys directly in `folder` (a prefix ending in "/"; not those in its subfolders), in key order; None
        when there are more than `limit`."""
        ...

    def list_page(self, prefix: str, *, limit: int, after: str | None = None) -> tuple[list[StoredObject], str | None]:
        """Up to `limit` objects whose keys start with `prefix` (subfolders included) and sort after the key
        `after`, in key order, without bodies (`size` set); and the key to continue after, None on the last page."""
        ...


class Queue(HealthCheck, Protocol):
    def send(self, body: Mapping[str, Any]) -> str:
        """Send a JSON message carrying the current correlation id; return the message id."""
        ...


class EventBus(HealthCheck, Protocol):
    def publish(self, source: str, detail_type: str, detail: Mapping[str, Any]) -> str:
        """Publish one event (its detail gains the current correlation id); return the event id."""
        ...


class Workflow(HealthCheck, Protocol):
    def start(self, payload: Mapping[str, Any], *, name: str | None = None) -> str:
        """Start an execution with the current correlation id in its input; return the execution id. A `name`
        is an idempotency key: starting a name that already ran returns that execution instead."""
        ...


class TaskTokens(Protocol):
    """Resuming a workflow paused on a task token (Step Functions' callback pattern)."""

    def succeed(self, token: str, output: Mapping[str, Any]) -> None:
        """Resume the paused task with this output; raise Conflict when the token is no longer waiting (it timed
        out, or was resumed already)."""
        ...


@dataclass(frozen=True)
class Update:
    """One item's `KeyValueTable.update`: set `values` on `key`, only if the item matches `expect` (when given)."""

    key: Mapping[str, str]
    values: Mapping[str, Any]
    expect: Mapping[str, Any] | None = None


class KeyValueTable(HealthCheck, Protocol):
    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None: ...

    def put(self, item: Mapping[str, Any]) -> None: ...

    def delete(self, key: Mapping[str, str]) -> None: ...

    def update(
        self, key: Mapping[str, str], values: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        """Set `values` on the item (creating it if missing); with `expect`, only if the item's attributes
        equal those values now (atomically; an expected None means the attribute, or the item, is absent).
        Return whether it was written."""
        ...

    def get_many(self, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any] | None]:
        """The items of these (distinct) keys, in the keys' order (None where missing), in as few calls as the
        store allows; strongly consistent, as `get` is."""
        ...

    def put_many(self, items: Sequence[Mapping[str, Any]]) -> None:
        """`put` of many (distinct) items, in as few calls as the store allows (not atomic as a whole)."""
        ...

    def update_many(self, updates: Sequence[Update]) -> list[bool]:
        """`update` for many (distinct) items, as fast as the store allows; each one written or not on its own
        expectation, as `update` would. Return, in order, whether each was written."""
        ...

    def increment(
        self, key: Mapping[str, str], field: str, amount: int, values: Mapping[str, Any] | None = None
    ) -> int:
        """Add `amount` to a number attribute atomically (missing counts as 0), also setting `values`; return
        the new total."""
        ...

    def add_within(
        self,
        key: Mapping[str, str],
        deltas: Mapping[str, int],
        ceilings: Mapping[str, int] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Add each delta to its number attribute (missing counts as 0) and set `values`, atomically, only if
        every attribute named in `ceilings` stays at or under its ceiling after the addition; return whether
        it was written (a budget's reservation: parallel callers can never pass the ceiling together)."""
        ...

    def query(
        self, partition: Mapping[str, str], *, limit: int = 100, after: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Items of one partition in sort-key order, a page at a time: (items, the key to continue after)."""
        ...


class ModelEndpoint(Protocol):
    """One real-time model endpoint: JSON in, JSON out (SageMaker InvokeEndpoint, or the local model server)."""

    name: str

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        """Raise ModelInputRejected (4xx from the model), DependencyUnavailable, UpstreamThrottled or
        ModelOutputInvalid (an answer that is not JSON)."""
        ...


class EmbeddingModel(Protocol):
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalized vector per text, in order; batches as the endpoint requires."""
        ...


class RerankModel(Protocol):
    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in input order (higher is more relevant)."""
        ...


class ChatModel(Protocol):
    def chat(self, request: ChatRequest) -> ChatResponse: ...


class LlmProvider(Protocol):
    """One kind of model behind the LLM gateway (SageMaker, Bedrock Converse, an OpenAI-compatible URL, the
    extractive answerer). `model` is the target's model id at that provider; `timeout_s` bounds the whole call.
    Providers never retry (the gateway does, in one place) and raise the platform's errors only:
    UpstreamThrottled (throttling), DependencyUnavailable (5xx, timeouts, unreachable), ModelInputRejected (4xx),
    ModelOutputInvalid (an answer that breaks the contract)."""

    name: str

    def chat(self, call: ChatCall, *, model: str, timeout_s: float) -> ChatResponse: ...

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> tuple[list[list[float]], Usage]: ...


class Function(Protocol):
    """Another service's function, invoked synchronously with a JSON payload (Lambda Invoke)."""

    name: str

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        """The function's JSON result; a platform error the function raised is raised again here by name."""
        ...


class SearchIndex(HealthCheck, Protocol):
    """Chunks of tenants' documents, searchable by BM25, vector and hybrid (agentplatform.search).

    Every call is scoped to one tenant, enforced inside the adapter: a search, get or count never sees another
    tenant's chunks, whatever the filters say.
    """

    def ensure(self) -> None:
        """Create the index (and its search pipelines) if missing; idempotent."""
        ...

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Add or replace chunks by chunk_id; visible to searches when this returns."""
        ...

    def replace_document(self, tenant: str, doc_id: str, chunks: Sequence[Chunk]) -> None:
        """Make `chunks` the document's only chunks; readers see the old set or the new one, never a mix
        where the engine allows (the embedded engine: one commit; OpenSearch: one bulk request, one refresh)."""
        ...

    def replace_documents(self, documents: Mapping[tuple[str, str], Sequence[Chunk]]) -> None:
        """`replace_document` for many documents, keyed by (tenant, doc_id), at once (the embedded engine: one
        commit; OpenSearch: one bulk request, one refresh); each document as `replace_document` has it."""
        ...

    def delete_document(self, tenant: str, doc_id: str) -> int:
        """Remove every chunk of the document; return how many there were."""
        ...

    def delete_version(self, tenant: str, doc_id: str, doc_version: str) -> int:
        """Remove the chunks of one version of the document; return how many there were."""
        ...

    def search(self, request: SearchRequest) -> list[SearchHit]: ...

    def get(self, tenant: str, chunk_id: str) -> Chunk | None:
        """The chunk (with its vector), or None if it does not exist for this tenant."""
        ...

    def count(self, tenant: str, doc_id: str | None = None) -> int: ...


@dataclass(frozen=True)
class SqlRows:
    columns: list[str]
    rows: list[list[Any]]  # JSON-ready values: str, int, float, bool or None
    truncated: bool = False  # the statement had more rows than `max_rows`


class SqlDatabase(Protocol):
    """A read-only SQL database (the business tools' CRM + ERP data): SQLite locally, Aurora via the Data API."""

    dialect: str  # the sqlglot dialect its statements are written in: "sqlite" | "postgres"

    def query(self, sql: str, params: Mapping[str, Any], *, timeout_s: float, max_rows: int) -> SqlRows:
        """Run one read-only statement with named `:name` parameters; at most `max_rows` rows. Raise QueryFailed
        when the database refuses the statement, QueryTimedOut past `timeout_s`, DependencyUnavailable when it
        cannot be reached."""
        ...


class EmailSender(Protocol):
    """Sends a tenant's email at most once per idempotency key (SES in AWS, the outbox table locally)."""

    def send(
        self,
        tenant: str,
        message: EmailMessage,
        *,
        idempotency_key: str,
        requested_by: str,
        conversation_id: str | None = None,
    ) -> SentEmail:
        """The outbox entry of this key: sent now, or the earlier request's (`duplicate`), never sent twice.
        Raise the platform error of a transport failure (the entry is then `failed`, and stays so)."""
        ...
