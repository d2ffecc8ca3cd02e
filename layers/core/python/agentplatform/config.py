"""Settings from the environment: one pydantic model, validated on first use, never at import.

Resource names arrive in the variables that `topology.env_var` names; each function is given only the ones it
uses, so those fields are optional here and `require()` turns a missing one into a ConfigurationError that
names the variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentplatform.errors import ConfigurationError, FieldError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # `aws`: real AWS, or any endpoint that speaks its APIs (e.g. LocalStack through AWS_ENDPOINT_URL).
    # `localstack`: clients from localstack-client (LOCALSTACK_HOST), for a LocalStack user with no other setup.
    # `local`: the local runtime (moto server on LOCAL_AWS_ENDPOINT_URL, embedded search, local model server).
    backend: Literal["aws", "localstack", "local"] = Field(default="aws", alias="PLATFORM_BACKEND")
    region: str = Field(default="us-east-1", alias="AWS_REGION")
    # Standard AWS SDK variable: boto3 reads it too, so a LocalStack user only sets this one.
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    local_aws_endpoint_url: str = Field(default="http://127.0.0.1:5000", alias="LOCAL_AWS_ENDPOINT_URL")
    # The local model server (SageMaker runtime's InvokeEndpoint contract) when backend is `local`.
    local_model_endpoint_url: str = Field(default="http://127.0.0.1:8090", alias="LOCAL_MODEL_ENDPOINT_URL")
    # The emulator credentials a function signs with locally: its own principal's, given by the local runtime (the
    # emulator enforces that principal's grants); "local" is the runtime's admin principal.
    local_access_key_id: str = Field(default="local", alias="LOCAL_AWS_ACCESS_KEY_ID")
    local_secret_access_key: str = Field(default="local", alias="LOCAL_AWS_SECRET_ACCESS_KEY")
    max_request_bytes: int = Field(default=1_048_576, alias="MAX_REQUEST_BYTES", gt=0)

    # Resource names (topology.env_var of each reference).
    drop_bucket_name: str | None = Field(default=None, alias="DROP_BUCKET_NAME")
    alerts_queue_url: str | None = Field(default=None, alias="ALERTS_QUEUE_URL")
    documents_table_name: str | None = Field(default=None, alias="DOCUMENTS_TABLE_NAME")
    platform_event_bus_name: str | None = Field(default=None, alias="PLATFORM_EVENT_BUS_NAME")
    canary_state_machine_arn: str | None = Field(default=None, alias="CANARY_STATE_MACHINE_ARN")
    artifacts_bucket_name: str | None = Field(default=None, alias="ARTIFACTS_BUCKET_NAME")
    ingest_queue_url: str | None = Field(default=None, alias="INGEST_QUEUE_URL")
    ingestion_state_machine_arn: str | None = Field(default=None, alias="INGESTION_STATE_MACHINE_ARN")
    embedding_endpoint_name: str | None = Field(default=None, alias="EMBEDDING_ENDPOINT_NAME")
    generation_endpoint_name: str | None = Field(default=None, alias="GENERATION_ENDPOINT_NAME")
    # Optional: a TEI /rerank-contract endpoint; unset, search does not rerank.
    rerank_endpoint_name: str | None = Field(default=None, alias="RERANK_ENDPOINT_NAME")
    retrieval_function_name: str | None = Field(default=None, alias="RETRIEVAL_FUNCTION_NAME")
    # https://<OpenSearch domain endpoint>, or file://<folder> for the embedded engine.
    knowledge_search_url: str | None = Field(default=None, alias="KNOWLEDGE_SEARCH_URL")
    search_index: str = Field(default="chunks", alias="SEARCH_INDEX")
    api_keys_table_name: str | None = Field(default=None, alias="API_KEYS_TABLE_NAME")
    limits_table_name: str | None = Field(default=None, alias="LIMITS_TABLE_NAME")
    # The LLM gateway (functions/llm_gateway) and its tables.
    llm_gateway_function_name: str | None = Field(default=None, alias="LLM_GATEWAY_FUNCTION_NAME")
    llm_state_table_name: str | None = Field(default=None, alias="LLM_STATE_TABLE_NAME")
    llm_cache_table_name: str | None = Field(default=None, alias="LLM_CACHE_TABLE_NAME")
    llm_usage_table_name: str | None = Field(default=None, alias="LLM_USAGE_TABLE_NAME")
    # The gateway's routing policy: an SSM parameter in AWS (its name), a file locally (its path; the repo's
    # policies/llm_gateway.json when neither is set).
    llm_policy_parameter: str | None = Field(default=None, alias="LLM_POLICY_PARAMETER")
    llm_policy_path: str | None = Field(default=None, alias="LLM_POLICY_PATH")
    # The agent loop (functions/orchestrator).
    conversations_table_name: str | None = Field(default=None, alias="CONVERSATIONS_TABLE_NAME")
    agent_loop_state_machine_arn: str | None = Field(default=None, alias="AGENT_LOOP_STATE_MACHINE_ARN")
    # Model steps before the loop is cut off, and the wall clock of a turn's tool loop (escalation waits aside).
    agent_max_steps: int = Field(default=4, alias="AGENT_MAX_STEPS", ge=1, le=20)
    agent_wall_clock_s: int = Field(default=90, alias="AGENT_WALL_CLOCK_S", ge=5)
    # After the retrieval-first search, ask the model for more tool calls `always`, or only `when_needed` (the
    # searches found no passage, or a tool of the last step failed). The local runtime sets `when_needed`: its
    # small model routes slowly and no better than the plan (docs/agent-loop.md).
    agent_model_step: Literal["always", "when_needed"] = Field(default="always", alias="AGENT_MODEL_STEP")
    # How long a paused turn waits for an operator before it resumes with the timeout outcome.
    escalation_timeout_s: int = Field(default=3600, alias="ESCALATION_TIMEOUT_S", ge=1, le=86_400 * 7)
    # How long POST /v1/conversations/{id}/messages waits for the answer before 202 (under API Gateway's 29 s).
    conversation_wait_s: float = Field(default=25.0, alias="CONVERSATION_WAIT_S", ge=0, le=28)
    # The business tools' SQL database: a SQLite file locally; in AWS the Aurora cluster and its secret (Data API).
    sql_database_path: str | None = Field(default=None, alias="SQL_DATABASE_PATH")
    sql_cluster_arn: str | None = Field(default=None, alias="SQL_CLUSTER_ARN")
    sql_secret_arn: str | None = Field(default=None, alias="SQL_SECRET_ARN")
    sql_database: str = Field(default="crm", alias="SQL_DATABASE")
    # The memory service (functions/memory): its function and table. Its search index lives on the knowledge
    # domain as an index of its own, named after the knowledge index (`<SEARCH_INDEX>-memory`).
    memory_function_name: str | None = Field(default=None, alias="MEMORY_FUNCTION_NAME")
    memory_table_name: str | None = Field(default=None, alias="MEMORY_TABLE_NAME")
    # Preference extraction with the gateway's `classify` task where no pattern matched (off: the local route's
    # SmolLM2 is not reliable enough for it, docs/memory.md).
    memory_classify: bool = Field(default=False, alias="MEMORY_CLASSIFY")
    # The tools service (functions/tools): its function, its state (breakers), and the per-tenant tool policy (an
    # SSM parameter in AWS; a file locally, the repo's policies/tools.json when neither is set).
    tools_function_name: str | None = Field(default=None, alias="TOOLS_FUNCTION_NAME")
    tool_state_table_name: str | None = Field(default=None, alias="TOOL_STATE_TABLE_NAME")
    tools_policy_parameter: str | None = Field(default=None, alias="TOOLS_POLICY_PARAMETER")
    tools_policy_path: str | None = Field(default=None, alias="TOOLS_POLICY_PATH")
    mcp_servers_table_name: str | None = Field(default=None, alias="MCP_SERVERS_TABLE_NAME")
    # Email (send_email) and files (read_file, write_file, list_files): the outbox table (every email once per
    # idempotency key), the files bucket, and the verified SES identity's address emails are sent from in AWS
    # (unset there: send_email is not available; locally the outbox is the delivery).
    outbox_table_name: str | None = Field(default=None, alias="OUTBOX_TABLE_NAME")
    files_bucket_name: str | None = Field(default=None, alias="FILES_BUCKET_NAME")
    email_sender: str | None = Field(default=None, alias="EMAIL_SENDER")

    # The evaluation service (functions/evaluation): its results table, and its policy file (sampling rates,
    # faithfulness method, degradation rule); the repo's policies/evaluation.json when unset.
    evaluations_table_name: str | None = Field(default=None, alias="EVALUATIONS_TABLE_NAME")
    evaluation_policy_path: str | None = Field(default=None, alias="EVALUATION_POLICY_PATH")
    # In AWS the policy's JSON itself (CDK sets it from policies/evaluation.json: the file is not in the asset).
    evaluation_policy: str | None = Field(default=None, alias="EVALUATION_POLICY")

    # Users' JWTs, as the Lambda authorizer verifies them: the issuer, the audiences a token's `aud` (or, for
    # Cognito access tokens, `client_id`) must name (comma-separated), and where the issuer's keys are.
    jwt_issuer: str | None = Field(default=None, alias="JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, alias="JWT_AUDIENCE")
    jwks_url: str | None = Field(default=None, alias="JWKS_URL")

    # Per-tenant load shaping (agentplatform.limits): requests per second with a burst, and model tokens per
    # period. Every tenant gets the same limits.
    tenant_rate_per_s: float = Field(default=10.0, alias="TENANT_RATE_PER_S", gt=0)
    tenant_burst: int = Field(default=20, alias="TENANT_BURST", ge=1)
    tenant_token_quota: int = Field(default=2_000_000, alias="TENANT_TOKEN_QUOTA", ge=0)
    token_quota_period: Literal["day", "month"] = Field(default="month", alias="TOKEN_QUOTA_PERIOD")

    def require(self, field: str) -> str:
        value = getattr(self, field)
        if not value:
            alias = type(self).model_fields[field].alias or field.upper()
            raise ConfigurationError(f"setting {alias} is not set", setting=alias)
        return str(value)

    def endpoint_url(self, service: str) -> str | None:
        """Where a boto3 client points: locally moto (and the model server for sagemaker-runtime),
        AWS_ENDPOINT_URL for LocalStack and friends, None for real AWS."""
        if self.backend != "local":
            return self.aws_endpoint_url
        return self.local_model_endpoint_url if service == "sagemaker-runtime" else self.local_aws_endpoint_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        errors = [FieldError(loc=tuple(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
        raise ConfigurationError("invalid settings", errors=errors) from exc


def reset_settings() -> None:
    """Forget cached settings (tests, and the local runtime after it sets the environment)."""
    get_settings.cache_clear()
