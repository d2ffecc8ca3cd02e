"""The one description of the platform's resources.

The CDK app (infra/cdk) and the local runtime (local/) both build the platform from this module, so what
runs on a laptop and what deploys to AWS cannot drift: the same buckets, queues (each with its DLQ), tables,
event rules, state machines (the same ASL files), Lambda functions, the environment each function gets and
the access each one is granted.

A resource is named by a reference `"<kind>:<name>"` (e.g. `"queue:alerts"`). Each reference has one
environment variable, which is how a function learns the physical name (`env_var`); settings.py reads the
same names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

ResourceKind = Literal["bucket", "queue", "table", "bus", "statemachine", "function", "endpoint", "search"]


class Access(StrEnum):
    READ = "read"
    WRITE = "write"
    READ_WRITE = "read_write"
    DESCRIBE = "describe"  # metadata only (health checks): HeadBucket, GetQueueAttributes, DescribeTable, ...
    INVOKE = "invoke"  # functions, model endpoints
    START = "start"  # state machines
    RESUME = "resume"  # state machines: SendTaskSuccess/Failure/Heartbeat on a paused execution's task token
    PUBLISH = "publish"  # event buses
    SEND = "send"  # queues
    CONSUME = "consume"  # queues


class Grant(BaseModel):
    ref: str
    access: Access


class Bucket(BaseModel):
    name: str
    purpose: str
    eventbridge: bool = False  # S3 -> EventBridge notifications (Object Created / Object Deleted)
    versioned: bool = False
    expire_after_days: int | None = None  # objects are deleted this long after they are written


class Queue(BaseModel):
    name: str
    purpose: str
    visibility_timeout_s: int = 60
    max_receive_count: int = 5  # deliveries before a message moves to the DLQ
    dlq_retention_days: int = 14


class TableIndex(BaseModel):
    name: str
    partition_key: str
    sort_key: str | None = None


class Table(BaseModel):
    name: str
    purpose: str
    partition_key: str = "pk"
    sort_key: str | None = "sk"
    ttl_attribute: str | None = None
    indexes: list[TableIndex] = Field(default_factory=list)


class EventBus(BaseModel):
    name: str
    purpose: str


class ModelEndpoint(BaseModel):
    """A SageMaker real-time endpoint (locally: the same name on the local model server)."""

    name: str
    purpose: str
    task: Literal["embedding", "generation"]
    code: str  # package under endpoints/ with the inference code
    instance_type: str  # default GPU instance; CDK context can override per endpoint
    min_instances: int = 1
    max_instances: int = 2
    # Target tracking: invocations per instance per minute that autoscaling holds the fleet at.
    target_invocations_per_instance: int = 600


class SearchDomain(BaseModel):
    """A search engine holding one index of chunks: an OpenSearch domain in AWS, the embedded engine locally."""

    name: str
    purpose: str
    index: str = "chunks"


class Function(BaseModel):
    name: str
    service: str  # the package under functions/
    handler: str  # dotted path, importable as-is both here and inside the Lambda asset
    purpose: str
    memory_mb: int = 512
    timeout_s: int = 30
    uses: list[Grant] = Field(default_factory=list)

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


class StateMachine(BaseModel):
    name: str
    purpose: str
    definition: str  # file name under statemachines/
    # ASL `${Placeholder}` -> resource reference; the value put in is the reference's `placeholder_value`.
    substitutions: dict[str, str]
    uses: list[Grant] = Field(default_factory=list)

    @property
    def path(self) -> Path:
        return statemachines_dir() / self.definition


class InputTransformer(BaseModel):
    paths: dict[str, str]  # name -> JSONPath into the event
    template: str  # JSON text with <name> placeholders


class Target(BaseModel):
    ref: str  # function:..., statemachine:... or queue:...
    input_transformer: InputTransformer | None = None


class Rule(BaseModel):
    name: str
    purpose: str
    bus: str | None = None  # None: the account's default bus (where S3 sends its events)
    event_pattern: dict | None = None
    schedule: str | None = None  # "rate(5 minutes)"
    targets: list[Target]


class EventSourceMapping(BaseModel):
    """An SQS queue polled by a function (Lambda's event source mapping), with partial batch responses."""

    queue: str
    function: str
    batch_size: int = Field(default=10, ge=1, le=10_000)
    # Lambda requires a window of at least 1 s for batches above 10 messages.
    max_batching_window_s: int = Field(default=0, ge=0, le=300)

    @model_validator(mode="after")
    def _window_for_big_batches(self) -> EventSourceMapping:
        if self.batch_size > 10 and self.max_batching_window_s < 1:
            raise ValueError("a batch size above 10 needs max_batching_window_s >= 1 (a Lambda rule)")
        return self


class Route(BaseModel):
    method: str  # GET, POST, ... or ANY
    path: str  # "/health", "/v1/documents/{id}", or "$default"
    function: str
    public: bool = False  # True only where the platform's rules allow no auth (health, the API description)
    scopes: list[str] = Field(default_factory=list)  # the credentials need every one of these (else 403)
    # Who checks the credentials of a non-public route before its function runs: "token" is the platform's
    # Lambda authorizer (a user's JWT or a machine client's API key); "jwt" is API Gateway's JWT authorizer
    # (users' tokens only: the admin routes, where an API key must never manage API keys).
    authorizer: Literal["token", "jwt"] = "token"

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when a request path is this route's (`{name}` is one segment, `{name+}` the
        rest of the path); None when it is not. `$default` matches nothing here: it is the fallback."""
        if self.path == "$default":
            return None
        found = _path_pattern(self.path).match(path)
        return found.groupdict() if found else None


# How long API Gateway keeps a Lambda authorizer's answer for one (Authorization header, route): the most a
# revoked API key can go on working. The local gateway caches the same way.
AUTHORIZER_CACHE_TTL_S = 60
# The scope of the admin routes. Only a tenant's admins hold it: the dev issuer mints it on request, and in
# Cognito the pre-token trigger removes it from the access tokens of users outside the ADMIN_GROUP group.
ADMIN_SCOPE = "admin"
ADMIN_GROUP = "admin"


class CorsPolicy(BaseModel):
    """Browser access to the API. Off (no origins) unless a deployment names its origins: CDK context
    `agentplatform:corsOrigins`, locally LOCAL_CORS_ORIGINS (comma-separated)."""

    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE", "OPTIONS"])
    allow_headers: list[str] = Field(default_factory=lambda: ["authorization", "content-type", "x-correlation-id"])
    expose_headers: list[str] = Field(default_factory=lambda: ["x-correlation-id", "retry-after", "location"])
    max_age_s: int = 600


@lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    def parameter(m: re.Match[str]) -> str:
        return f"(?P<{m.group(1)}>.+)" if m.group(1) else f"(?P<{m.group(2)}>[^/]+)"

    return re.compile("^" + re.sub(r"\\\{(\w+)\\\+\\\}|\\\{(\w+)\\\}", parameter, re.escape(template)) + "$")


class Topology(BaseModel):
    buckets: list[Bucket]
    queues: list[Queue]
    tables: list[Table]
    buses: list[EventBus]
    functions: list[Function]
    state_machines: list[StateMachine]
    rules: list[Rule]
    event_sources: list[EventSourceMapping]
    routes: list[Route]
    model_endpoints: list[ModelEndpoint] = Field(default_factory=list)
    search_domains: list[SearchDomain] = Field(default_factory=list)

    def function(self, name: str) -> Function:
        return next(f for f in self.functions if f.name == name)

    def refs(self) -> set[str]:
        out = {f"bucket:{b.name}" for b in self.buckets}
        out |= {f"queue:{q.name}" for q in self.queues}
        out |= {f"table:{t.name}" for t in self.tables}
        out |= {f"bus:{b.name}" for b in self.buses}
        out |= {f"function:{f.name}" for f in self.functions}
        out |= {f"statemachine:{s.name}" for s in self.state_machines}
        out |= {f"endpoint:{e.name}" for e in self.model_endpoints}
        out |= {f"search:{d.name}" for d in self.search_domains}
        return out


REF_PREFIX = "ref:"  # a string "ref:<kind>:<name>" inside an event pattern stands for that resource's name


def resolve_refs(value: Any, name_of: Callable[[str], str]) -> Any:
    """An event pattern with each "ref:<kind>:<name>" string replaced by that resource's physical name."""
    if isinstance(value, dict):
        return {key: resolve_refs(item, name_of) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_refs(item, name_of) for item in value]
    if isinstance(value, str) and value.startswith(REF_PREFIX):
        return name_of(value.removeprefix(REF_PREFIX))
    return value


def split_ref(ref: str) -> tuple[ResourceKind, str]:
    kind, _, name = ref.partition(":")
    if kind not in ("bucket", "queue", "table", "bus", "statemachine", "function", "endpoint", "search") or not name:
        raise ValueError(f"not a resource reference: {ref!r}")
    return kind, name  # type: ignore[return-value]


_ENV_SUFFIX: dict[str, str] = {
    "bucket": "BUCKET_NAME",
    "queue": "QUEUE_URL",
    "table": "TABLE_NAME",
    "bus": "EVENT_BUS_NAME",
    "statemachine": "STATE_MACHINE_ARN",
    "function": "FUNCTION_NAME",
    "endpoint": "ENDPOINT_NAME",
    "search": "SEARCH_URL",
}


def env_var(ref: str) -> str:
    """The environment variable that carries a resource's physical name to a function."""
    kind, name = split_ref(ref)
    return f"{name.upper()}_{_ENV_SUFFIX[kind]}"


# What a `${Placeholder}` in an ASL file receives for each kind of resource (CDK and the local runtime alike).
SUBSTITUTED_ATTRIBUTE: dict[str, Literal["name", "arn", "url"]] = {
    "bucket": "name",
    "queue": "url",
    "table": "name",
    "bus": "name",
    "statemachine": "arn",
    "function": "arn",
    "endpoint": "name",
}

# What a function's environment variable receives for each kind of resource.
ENV_ATTRIBUTE: dict[str, Literal["name", "arn", "url"]] = {
    "bucket": "name",
    "queue": "url",
    "table": "name",
    "bus": "name",
    "statemachine": "arn",
    "function": "name",
    "endpoint": "name",
    "search": "url",  # https://<domain endpoint> in AWS; file://<folder> for the embedded engine
}


def statemachines_dir() -> Path:
    # The layer ships without statemachines/; only the CDK app and the local runtime (both run from the repo)
    # read the ASL files.
    return Path(__file__).resolve().parents[4] / "statemachines"


# What /health and the canary probe check (functions/api/health.py); every table is added after PLATFORM below.
# Not the search domain: only the VPC reaches it, so the retrieval function (in the VPC) checks it for them.
_HEALTH_DESCRIBE = [
    Grant(ref="bucket:drop", access=Access.DESCRIBE),
    Grant(ref="queue:alerts", access=Access.DESCRIBE),
    Grant(ref="bus:platform", access=Access.DESCRIBE),
    Grant(ref="statemachine:canary", access=Access.DESCRIBE),
    Grant(ref="function:retrieval", access=Access.DESCRIBE),
    Grant(ref="function:retrieval", access=Access.INVOKE),  # its health operation: the search index's check
    # A model endpoint's only proof of serving is an answer: the probe is one tiny InvokeEndpoint.
    Grant(ref="endpoint:embedding", access=Access.INVOKE),
    Grant(ref="endpoint:generation", access=Access.INVOKE),
]

# The ingestion state machine's Lambda tasks (function `ingest_<stage>`, ASL placeholder `<Stage>FunctionArn`).
INGESTION_STAGES = ("extract", "chunk", "embed", "index", "finalize", "delete", "fail")

_INGEST_STATE = [
    Grant(ref="table:documents", access=Access.READ_WRITE),
    Grant(ref="bucket:artifacts", access=Access.READ_WRITE),
]


def _stage(name: str, purpose: str, uses: list[Grant], memory_mb: int = 1024, timeout_s: int = 300) -> Function:
    return Function(
        name=f"ingest_{name}",
        service="ingestion",
        handler=f"functions.ingestion.handler.{name}",
        purpose=purpose,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        uses=uses,
    )


_INGESTION_FUNCTIONS = [
    Function(
        name="ingest_starter",
        service="ingestion",
        handler="functions.ingestion.handler.starter",
        purpose="Drop-folder events (SQS) -> ingestion runs of up to 50 object changes each, idempotently.",
        timeout_s=30,
        uses=[Grant(ref="statemachine:ingestion", access=Access.START)],
    ),
    _stage(
        "extract",
        "Which documents a run's changes are about: claimed, read from the drop bucket (or found deleted), turned "
        "into text, sections, pages and metadata.",
        [*_INGEST_STATE, Grant(ref="bucket:drop", access=Access.READ)],
        memory_mb=2048,
    ),
    _stage("chunk", "Token-aware chunks of the run's extracted texts.", _INGEST_STATE),
    _stage(
        "embed",
        "Embeddings of the run's chunks, in endpoint calls shared across its documents.",
        [
            *_INGEST_STATE,
            Grant(ref="endpoint:embedding", access=Access.INVOKE),
            Grant(ref="table:limits", access=Access.READ_WRITE),
        ],
        timeout_s=900,
    ),
    _stage(
        "index",
        "The run's chunks into the search index at once, each document replacing its previous version.",
        [*_INGEST_STATE, Grant(ref="search:knowledge", access=Access.READ_WRITE)],
    ),
    _stage(
        "finalize",
        "The registry rows of the run's indexed documents; a Document Changed event for each.",
        [*_INGEST_STATE, Grant(ref="bus:platform", access=Access.PUBLISH)],
        memory_mb=256,
        timeout_s=30,
    ),
    _stage(
        "delete",
        "Deleted files' chunks out of the index; a Document Changed event for each.",
        [
            Grant(ref="table:documents", access=Access.READ_WRITE),
            Grant(ref="search:knowledge", access=Access.READ_WRITE),
            Grant(ref="bus:platform", access=Access.PUBLISH),
        ],
        memory_mb=256,
        timeout_s=60,
    ),
    _stage(
        "fail",
        "A failed run's reason on the registry row of each document it held.",
        [Grant(ref="table:documents", access=Access.READ_WRITE)],
        memory_mb=256,
        timeout_s=30,
    ),
]

# The LLM gateway: every model call of the platform (functions/llm_gateway).
_GATEWAY_TABLES = [
    Table(
        name="llm_state",
        purpose="The gateway's shared state: each target's circuit breaker, read and written by every container.",
        ttl_attribute="expires_at",
    ),
    Table(
        name="llm_cache",
        purpose="Tenant-scoped exact and semantic answer cache of the gateway, with TTL and per-document index.",
        ttl_attribute="expires_at",
    ),
    Table(
        name="llm_usage",
        purpose="One record per gateway call: tenant, task, target, tokens, cost, latency, cache, outcome.",
        ttl_attribute="expires_at",
    ),
]

_GATEWAY_FUNCTIONS = [
    Function(
        name="llm_gateway",
        service="llm_gateway",
        handler="functions.llm_gateway.handler.handler",
        purpose="One call shape for every model: routing by policy, retries, fallbacks, breakers, budgets, cache.",
        memory_mb=1024,
        timeout_s=60,
        uses=[
            Grant(ref="endpoint:generation", access=Access.INVOKE),
            Grant(ref="endpoint:embedding", access=Access.INVOKE),
            Grant(ref="table:llm_state", access=Access.READ_WRITE),
            Grant(ref="table:llm_cache", access=Access.READ_WRITE),
            Grant(ref="table:llm_usage", access=Access.READ_WRITE),
            Grant(ref="table:limits", access=Access.READ_WRITE),
        ],
    ),
]

_GATEWAY_FUNCTIONS.append(
    Function(
        name="llm_cache_invalidate",
        service="llm_gateway",
        handler="functions.llm_gateway.handler.document_changed",
        purpose="Document Changed events -> drops the tenant's gateway cache entries that cite the document.",
        memory_mb=256,
        timeout_s=60,
        uses=[Grant(ref="table:llm_cache", access=Access.READ_WRITE)],
    )
)

# Ingestion publishes Document Changed (finalize: a new version indexed; delete: a document removed).
_GATEWAY_RULES = [
    Rule(
        name="document_changed",
        purpose="A document's new version or deletion -> the gateway drops cached answers citing it.",
        bus="platform",
        event_pattern={"source": ["agentplatform.ingestion"], "detail-type": ["Document Changed"]},
        targets=[Target(ref="function:llm_cache_invalidate")],
    )
]

_GATEWAY_ROUTES = [
    Route(method="POST", path="/v1/chat/completions", function="api", scopes=["llm"]),
    Route(method="POST", path="/v1/embeddings", function="api", scopes=["llm"]),
    Route(method="GET", path="/v1/usage", function="api", scopes=["usage"]),
]

# The agent loop: conversations answered from the tenant's documents (functions/orchestrator,
# statemachines/agent_loop.asl.json).
_AGENT_TABLES: list[Table] = [
    Table(
        name="conversations",
        purpose="Conversations (a header per tenant+user), one item per turn and per tool run, and escalations.",
        ttl_attribute="expires_at",
    ),
]

# The agent loop's Lambda tasks (function `agent_<step>`, ASL placeholder `Agent<Step>FunctionArn`).
AGENT_STEPS = ("load", "model", "tool", "append", "escalate", "resume", "answer", "finalize", "fail")

_AGENT_STATE = [Grant(ref="table:conversations", access=Access.READ_WRITE)]
_AGENT_STEP_USES: dict[str, list[Grant]] = {
    "model": [
        Grant(ref="function:llm_gateway", access=Access.INVOKE),
        Grant(ref="function:tools", access=Access.INVOKE),  # the caller's tools, for the model's step
    ],
    "tool": [Grant(ref="function:tools", access=Access.INVOKE)],
    "answer": [Grant(ref="function:llm_gateway", access=Access.INVOKE)],
    "load": [Grant(ref="function:memory", access=Access.INVOKE)],  # recall: what the user's memory holds
    "finalize": [Grant(ref="bus:platform", access=Access.PUBLISH)],
}
_AGENT_STEP_PURPOSE = {
    "load": "The turn and the conversation's recent turns (the seam where memory plugs in).",
    "model": "One model step through the gateway with the registry's tool schemas: tool calls or a final answer.",
    "tool": "One tool call of the Map: arguments and result validated, idempotent per execution+step+call.",
    "append": "The Map's results recorded; the next move: another model step, an escalation or the answer.",
    "escalate": "An escalation row holding the paused loop's task token, for an operator to resolve.",
    "resume": "An operator's decision (approve, reject, answer) or the escalation's timeout applied to the turn.",
    "answer": "The grounded final answer from the gathered passages, retried once, else the extractive answer.",
    "finalize": "The turn answered with its citations and timings; turn.completed on the platform bus.",
    "fail": "A run that failed anywhere: the turn failed with its reason and a safe answer, never stuck.",
}
_AGENT_FUNCTIONS: list[Function] = [
    Function(
        name=f"agent_{step}",
        service="orchestrator",
        handler=f"functions.orchestrator.handler.{step}",
        purpose=_AGENT_STEP_PURPOSE[step],
        memory_mb=512,
        timeout_s=60 if step in ("model", "answer", "tool") else 20,
        uses=[*_AGENT_STATE, *_AGENT_STEP_USES.get(step, [])],
    )
    for step in AGENT_STEPS
]
_AGENT_STATE_MACHINES: list[StateMachine] = [
    StateMachine(
        name="agent_loop",
        purpose="One conversation turn: context -> model -> tools (Map) -> ... -> grounded answer, or a human.",
        definition="agent_loop.asl.json",
        substitutions={f"Agent{step.title()}FunctionArn": f"function:agent_{step}" for step in AGENT_STEPS},
        uses=[Grant(ref=f"function:agent_{step}", access=Access.INVOKE) for step in AGENT_STEPS],
    ),
]
_AGENT_RULES: list[Rule] = []

# The tools service: what the agent loop's Map (and the API's MCP server) run, under the per-tenant tool policy
# (functions/tools, policies/tools.json).
_TOOLS_TABLES: list[Table] = [
    Table(name="tool_state", purpose="The tools' shared state: a breaker per tool, one row each."),
    Table(name="mcp_servers", purpose="Each tenant's external MCP servers: URL, timeout, auth header value."),
    Table(
        name="outbox",
        purpose="Every email a tenant's agent asked to send, once per idempotency key: the local delivery, in AWS "
        "the audit record of what SES sent.",
    ),
]
_TOOLS_BUCKETS: list[Bucket] = [
    Bucket(name="files", purpose="Tenants' own files for the files tools, each under its <tenant>/ prefix."),
]
_TOOLS_FUNCTIONS: list[Function] = [
    Function(
        name="tools",
        service="tools",
        handler="functions.tools.handler.handle",
        purpose="Lists a caller's tools and runs one call: the tenant's policy, then the tool (validated, bounded).",
        memory_mb=512,
        timeout_s=60,
        uses=[
            Grant(ref="table:tool_state", access=Access.READ_WRITE),
            Grant(ref="function:retrieval", access=Access.INVOKE),
            Grant(ref="table:mcp_servers", access=Access.READ),
            Grant(ref="table:outbox", access=Access.READ_WRITE),
            Grant(ref="bucket:files", access=Access.READ_WRITE),
        ],
    ),
]
_TOOLS_ROUTES: list[Route] = [
    Route(method="GET", path="/v1/outbox", function="api", scopes=["admin"], authorizer="jwt"),
    # MCP (Streamable HTTP, stateless): one POST per JSON-RPC message; GET/DELETE answer 405 from the api.
    Route(method="POST", path="/mcp", function="api", scopes=["tools"]),
    Route(method="POST", path="/v1/mcp/servers", function="api", scopes=["admin"], authorizer="jwt"),
    Route(method="GET", path="/v1/mcp/servers", function="api", scopes=["admin"], authorizer="jwt"),
    Route(method="DELETE", path="/v1/mcp/servers/{name}", function="api", scopes=["admin"], authorizer="jwt"),
]
# The memory service: preferences, conversation summaries and entity facts per tenant + user, learned from
# turn.completed and recalled by the agent loop's load step (functions/memory, docs/memory.md).
_MEMORY_TABLES: list[Table] = [
    Table(name="memory", purpose="Each user's memory: preferences, conversation summaries, entity facts."),
]
_MEMORY_FUNCTIONS: list[Function] = [
    Function(
        name="memory",
        service="memory",
        handler="functions.memory.handler.handler",
        purpose="Learns from completed turns; recalls, lists, sets and deletes a user's memory (table + index).",
        memory_mb=512,
        timeout_s=60,
        uses=[
            Grant(ref="table:memory", access=Access.READ_WRITE),
            Grant(ref="search:knowledge", access=Access.READ_WRITE),  # its own index there: `<index>-memory`
            Grant(ref="endpoint:embedding", access=Access.INVOKE),
            Grant(ref="function:llm_gateway", access=Access.INVOKE),
        ],
    ),
]
_MEMORY_RULES: list[Rule] = [
    Rule(
        name="memory_learn",
        purpose="A completed turn -> the memory function learns its preferences, facts and summary.",
        bus="platform",
        event_pattern={"source": ["agentplatform.orchestrator"], "detail-type": ["turn.completed"]},
        targets=[Target(ref="function:memory")],
    )
]
_MEMORY_ROUTES: list[Route] = [
    Route(method="GET", path="/v1/memory", function="api", scopes=["memory"]),
    Route(method="DELETE", path="/v1/memory", function="api", scopes=["memory"]),
    Route(method="PUT", path="/v1/memory/preferences/{key}", function="api", scopes=["memory"]),
    Route(method="DELETE", path="/v1/memory/{memory_id}", function="api", scopes=["memory"]),
]
_AGENT_ROUTES: list[Route] = [
    Route(method="POST", path="/v1/conversations", function="api", scopes=["conversations"]),
    Route(method="GET", path="/v1/conversations", function="api", scopes=["conversations"]),
    Route(method="GET", path="/v1/conversations/{conversation_id}", function="api", scopes=["conversations"]),
    Route(method="POST", path="/v1/conversations/{conversation_id}/messages", function="api", scopes=["conversations"]),
    Route(
        method="GET",
        path="/v1/conversations/{conversation_id}/turns/{turn}",
        function="api",
        scopes=["conversations"],
    ),
    Route(method="GET", path="/v1/escalations", function="api", scopes=["escalations"]),
    Route(method="POST", path="/v1/escalations/{escalation_id}/resolve", function="api", scopes=["escalations"]),
]

# Evaluation: sampled turn.completed events scored, stored, watched for degradation (functions/evaluation).
_EVAL_QUEUES = [
    Queue(
        name="evaluation",
        purpose="turn.completed events waiting for the evaluator (a buffer with a DLQ; sampled by the evaluator).",
        visibility_timeout_s=720,  # six times the evaluator's timeout, as AWS advises for event sources
        max_receive_count=3,
    ),
]
_EVAL_TABLES = [
    Table(
        name="evaluations",
        purpose="One record per evaluated turn (scores, route, passages), the alerts, and each score's alert state.",
        indexes=[TableIndex(name="by_route", partition_key="route_key", sort_key="sk")],
    ),
]
_EVAL_FUNCTIONS = [
    Function(
        name="evaluator",
        service="evaluation",
        handler="functions.evaluation.handler.handler",
        purpose="Scores sampled turns (faithfulness, relevance, citations, abstention, cost), stores them, alerts.",
        memory_mb=512,
        timeout_s=120,
        uses=[
            Grant(ref="table:evaluations", access=Access.READ_WRITE),
            Grant(ref="function:llm_gateway", access=Access.INVOKE),
            Grant(ref="bus:platform", access=Access.PUBLISH),
        ],
    ),
]
_EVAL_RULES = [
    Rule(
        name="turn_completed_evaluation",
        purpose="Every finished turn -> the evaluation queue (the evaluator samples per tenant).",
        bus="platform",
        event_pattern={"source": ["agentplatform.orchestrator"], "detail-type": ["turn.completed"]},
        targets=[Target(ref="queue:evaluation")],
    ),
    Rule(
        name="evaluation_alerts",
        purpose="Evaluation degradation alerts (raised and cleared) -> the operators' alert queue.",
        bus="platform",
        event_pattern={"source": ["agentplatform.evaluation"], "detail-type": ["evaluation.alert"]},
        targets=[Target(ref="queue:alerts")],
    ),
]
_EVAL_EVENT_SOURCES = [EventSourceMapping(queue="evaluation", function="evaluator", batch_size=10)]
# Evaluation results are operators' reading: the `eval` scope (local/auth.py mints it on request).
EVAL_SCOPE = "eval"
_EVAL_ROUTES = [
    Route(method="GET", path="/v1/eval/alerts", function="api", scopes=[EVAL_SCOPE]),
    Route(method="GET", path="/v1/eval/summary", function="api", scopes=[EVAL_SCOPE]),
]

PLATFORM = Topology(
    buckets=[
        Bucket(
            name="drop",
            purpose="The drop folder: <tenant>/<path> objects become searchable knowledge.",
            eventbridge=True,
            versioned=True,
        ),
        Bucket(
            name="artifacts",
            purpose="What one ingestion stage hands the next (text, chunks, vectors): too big for a state payload.",
            expire_after_days=3,
        ),
        *_TOOLS_BUCKETS,
    ],
    queues=[
        Queue(name="alerts", purpose="Platform alerts (canary degraded, evaluation regressions) for operators."),
        Queue(
            name="ingest",
            purpose="Drop-folder object events waiting to start an ingestion run (a buffer with a DLQ).",
            visibility_timeout_s=180,  # six times the starter's timeout, as AWS advises for event sources
        ),
        *_EVAL_QUEUES,
    ],
    tables=[
        Table(name="documents", purpose="Document registry: one row per tenant document and version."),
        Table(
            name="api_keys",
            purpose="Machine clients' API keys: a hash of each secret, its tenant, scopes, use and revocation.",
        ),
        Table(
            name="limits",
            purpose="Per-tenant request-rate buckets and model-token counters, shared by every Lambda container.",
            ttl_attribute="expires_at",
        ),
        *_GATEWAY_TABLES,
        *_AGENT_TABLES,
        *_EVAL_TABLES,
        *_MEMORY_TABLES,
        *_TOOLS_TABLES,
    ],
    buses=[EventBus(name="platform", purpose="The platform's own events (turn.completed, canary, alerts).")],
    functions=[
        Function(
            name="api",
            service="api",
            handler="functions.api.handler.handler",
            purpose="The public HTTP API.",
            memory_mb=1024,
            timeout_s=29,
            uses=[
                *_HEALTH_DESCRIBE,
                Grant(ref="function:retrieval", access=Access.INVOKE),
                Grant(ref="bucket:drop", access=Access.READ_WRITE),
                Grant(ref="table:documents", access=Access.READ_WRITE),
                Grant(ref="table:api_keys", access=Access.READ_WRITE),
                Grant(ref="table:limits", access=Access.READ_WRITE),
                Grant(ref="function:llm_gateway", access=Access.INVOKE),
                Grant(ref="table:llm_usage", access=Access.READ),
                Grant(ref="table:conversations", access=Access.READ_WRITE),
                Grant(ref="statemachine:agent_loop", access=Access.START),
                Grant(ref="statemachine:agent_loop", access=Access.RESUME),
                Grant(ref="table:outbox", access=Access.READ),
                Grant(ref="function:tools", access=Access.INVOKE),  # /mcp
                Grant(ref="table:mcp_servers", access=Access.READ_WRITE),
                Grant(ref="table:evaluations", access=Access.READ),
                Grant(ref="function:memory", access=Access.INVOKE),
            ],
        ),
        Function(
            name="authorizer",
            service="authorizer",
            handler="functions.authorizer.handler.handler",
            purpose="The API's Lambda authorizer: a user's JWT or a machine client's API key -> tenant and scopes.",
            memory_mb=256,
            timeout_s=5,
            uses=[Grant(ref="table:api_keys", access=Access.READ_WRITE)],
        ),
        Function(
            name="canary_probe",
            service="api",
            handler="functions.api.probe.handler",
            purpose="The canary's probe task: checks every component the API depends on.",
            timeout_s=20,
            uses=_HEALTH_DESCRIBE,
        ),
        *_INGESTION_FUNCTIONS,
        Function(
            name="pre_token",
            service="authorizer",
            handler="functions.authorizer.pre_token.handler",
            purpose="Cognito's pre-token-generation trigger: the user's tenant into the access token.",
            memory_mb=256,
            timeout_s=5,
        ),
        Function(
            name="retrieval",
            service="retrieval",
            handler="functions.retrieval.handler.handler",
            purpose="Search: query embedding, hybrid search, dedupe, context assembly with citations.",
            memory_mb=1024,
            timeout_s=29,
            uses=[
                Grant(ref="search:knowledge", access=Access.READ),
                Grant(ref="endpoint:embedding", access=Access.INVOKE),
                Grant(ref="table:limits", access=Access.READ_WRITE),
            ],
        ),
        *_GATEWAY_FUNCTIONS,
        *_AGENT_FUNCTIONS,
        *_EVAL_FUNCTIONS,
        *_MEMORY_FUNCTIONS,
        *_TOOLS_FUNCTIONS,
    ],
    state_machines=[
        StateMachine(
            name="ingestion",
            purpose="A batch of drop-folder changes -> extract, chunk, embed, index, finalize (or delete).",
            definition="ingestion.asl.json",
            substitutions={f"{stage.title()}FunctionArn": f"function:ingest_{stage}" for stage in INGESTION_STAGES},
            uses=[Grant(ref=f"function:ingest_{stage}", access=Access.INVOKE) for stage in INGESTION_STAGES],
        ),
        StateMachine(
            name="canary",
            purpose="Synthetic check of the async path: probe the components, publish the result.",
            definition="canary.asl.json",
            substitutions={
                "CanaryProbeFunctionArn": "function:canary_probe",
                "PlatformEventBusName": "bus:platform",
            },
            uses=[
                Grant(ref="function:canary_probe", access=Access.INVOKE),
                Grant(ref="bus:platform", access=Access.PUBLISH),
            ],
        ),
        *_AGENT_STATE_MACHINES,
    ],
    rules=[
        Rule(
            name="drop_events",
            purpose="Object Created / Object Deleted in the drop bucket -> the ingest queue.",
            event_pattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created", "Object Deleted"],
                "detail": {"bucket": {"name": [f"{REF_PREFIX}bucket:drop"]}},
            },
            targets=[Target(ref="queue:ingest")],
        ),
        Rule(
            name="canary_schedule",
            purpose="Runs the canary on a schedule.",
            schedule="rate(5 minutes)",
            targets=[
                Target(
                    ref="statemachine:canary",
                    input_transformer=InputTransformer(paths={"id": "$.id"}, template='{"correlation_id": "<id>"}'),
                )
            ],
        ),
        Rule(
            name="degraded_alerts",
            purpose="Routes degraded-canary events to the operators' alert queue.",
            bus="platform",
            event_pattern={
                "source": ["agentplatform.canary"],
                "detail-type": ["Canary Completed"],
                "detail": {"status": ["degraded"]},
            },
            targets=[Target(ref="queue:alerts")],
        ),
        *_AGENT_RULES,
        *_EVAL_RULES,
        *_MEMORY_RULES,
        *_GATEWAY_RULES,
    ],
    event_sources=[
        # Up to 50 object changes per starter call: the starter packs them into few ingestion runs (batched
        # embedding and one index commit per run); the 1 s window is what Lambda requires above 10 messages.
        EventSourceMapping(queue="ingest", function="ingest_starter", batch_size=50, max_batching_window_s=1),
        *_EVAL_EVENT_SOURCES,
    ],
    model_endpoints=[
        ModelEndpoint(
            name="embedding",
            purpose="Sentence embeddings (all-MiniLM-L6-v2, 384 dimensions, normalized) for search and memory.",
            task="embedding",
            code="embedding",
            instance_type="ml.g5.xlarge",
        ),
        ModelEndpoint(
            name="generation",
            purpose="Chat generation with tool calls (OpenAI chat-completions contract).",
            task="generation",
            code="generation",
            instance_type="ml.g5.2xlarge",
        ),
    ],
    search_domains=[
        SearchDomain(name="knowledge", purpose="Chunks of every tenant's documents: BM25 + vector, tenant-filtered."),
    ],
    routes=[
        Route(method="GET", path="/health", function="api", public=True),
        Route(method="POST", path="/v1/search", function="api", scopes=["search"]),
        Route(method="GET", path="/v1/documents", function="api", scopes=["documents:read"]),
        Route(method="POST", path="/v1/documents", function="api", scopes=["documents:write"]),
        Route(method="GET", path="/v1/documents/{doc_id}", function="api", scopes=["documents:read"]),
        Route(method="DELETE", path="/v1/documents/{doc_id}", function="api", scopes=["documents:write"]),
        Route(method="POST", path="/v1/admin/api-keys", function="api", scopes=["admin"], authorizer="jwt"),
        Route(method="GET", path="/v1/admin/api-keys", function="api", scopes=["admin"], authorizer="jwt"),
        Route(method="DELETE", path="/v1/admin/api-keys/{key_id}", function="api", scopes=["admin"], authorizer="jwt"),
        *_GATEWAY_ROUTES,
        *_AGENT_ROUTES,
        *_EVAL_ROUTES,
        *_MEMORY_ROUTES,
        *_TOOLS_ROUTES,
        Route(method="GET", path="/openapi.json", function="api", public=True),
        Route(method="GET", path="/docs", function="api", public=True),
        # Anything else: authenticated first (no scope), then the function's 404 problem.
        Route(method="ANY", path="$default", function="api"),
    ],
)

# Health sees every table, whichever area adds it: the functions that run the checks may describe each one.
for _checker in ("api", "canary_probe"):
    PLATFORM.function(_checker).uses.extend(
        Grant(ref=f"table:{t.name}", access=Access.DESCRIBE) for t in PLATFORM.tables
    )
