"""The real local stack, in-process: moto server, provisioned resources, the real handlers and ASL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentplatform.topology import PLATFORM, Topology
from local.runtime import LocalRuntime, RuntimeSettings

pytestmark = pytest.mark.integration


def start_runtime(tmp_path_factory, topology: Topology = PLATFORM, **overrides: Any) -> LocalRuntime:
    settings = RuntimeSettings.on_free_ports(
        LOCAL_DATA_DIR=tmp_path_factory.mktemp("data"),
        LOCAL_DROP_DIR=tmp_path_factory.mktemp("dropfolder"),
        **overrides,  # model tests ask for models: loading costs seconds
    )
    return LocalRuntime(settings, topology).start()


@pytest.fixture(scope="module")
def runtime_overrides() -> dict[str, Any]:
    """RuntimeSettings overrides for a module's runtime; a module redefines this fixture to change them."""
    return {}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, runtime_overrides) -> Iterator[LocalRuntime]:
    """One runtime per test module (moto's state is per process, so one runtime runs at a time)."""
    rt = start_runtime(tmp_path_factory, **runtime_overrides)
    yield rt
    rt.stop()


USER_SCOPES = ("search", "documents:read", "documents:write")


def bearer(rt: LocalRuntime, tenant: str = "acme", scopes: Any = USER_SCOPES, **kwargs: Any) -> dict[str, str]:
    """An Authorization header with a dev-issuer token for a user of the tenant (every scope but admin)."""
    assert rt.issuer is not None
    minted = rt.issuer.mint(tenant=tenant, subject=kwargs.pop("subject", "alice"), scopes=scopes, **kwargs)
    return {"Authorization": f"Bearer {minted}"}


def seed_passages(docs: dict[str, list[tuple[str, str, str]]]) -> None:
    """Index passages straight into the running stack's search index, one chunk per document, embedded by the
    local model server: {tenant: [(doc_id, title, text)]}, each at `<doc_id>.md`, version "1"."""
    from agentplatform.bootstrap import container
    from agentplatform.search import Chunk

    c = container()
    for tenant, passages in docs.items():
        vectors = c.embedding_model.embed([text for _, _, text in passages])
        c.search_index.upsert(
            [
                Chunk(f"{doc}:1:0", tenant, doc, "1", text, vector=v, title=title, path=f"{doc}.md")
                for (doc, title, text), v in zip(passages, vectors, strict=True)
            ]
        )


def scripted_answer(message: dict[str, Any]) -> dict[str, Any]:
    """What the llm_gateway function answers (agentplatform.llm.ChatAnswer) for a scripted gateway registered in
    its place: `message` as the assistant's, with fixed usage and gateway info."""
    return {
        "message": message,
        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "gateway": {
            "target": "scripted",
            "provider": "scripted",
            "cache": "miss",
            "attempts": 1,
            "overhead_ms": 1.0,
            "latency_ms": 6.0,
            "cost_usd": 0.0,
            "policy_version": 1,
        },
    }


def wait_for(condition: Callable[[], Any], timeout_s: float = 30, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def run_execution(rt: LocalRuntime, machine: str, payload: dict[str, Any], name: str) -> dict[str, Any]:
    sfn = rt.client("stepfunctions")
    arn = rt.provisioned.value(f"statemachine:{machine}", "arn")
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"]

    def finished():
        out = sfn.describe_execution(executionArn=execution)
        return out if out["status"] != "RUNNING" else None

    return wait_for(finished, timeout_s=60)
