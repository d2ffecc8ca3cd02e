"""The agent loop with the real gateway, as `make up` runs it without a generation model: a file dropped into
the folder is ingested, a question in a conversation is answered by the gateway's extractive provider from the
knowledge_search passages, cited to the document. The local runtime asks the tool_use step only when the searches
found nothing (AGENT_MODEL_STEP=when_needed); its target (the generation endpoint) is not hosted here, so then the
loop answers from what it has and notes the fallback on the turn."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agentplatform.bootstrap import container
from agentplatform.documents import DocumentStatus, document_id
from tests.integration.conftest import bearer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MANUAL = """# Engine maintenance

## Turbine blades

Inspect the turbine blades for cracks after every 100 hours of flight. Replace a blade with a crack longer than
2 mm.

## Oil

Change the engine oil every 50 hours.
"""


REPO_POLICY = Path(__file__).resolve().parents[2] / "policies" / "llm_gateway.json"


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Iterator[Path]:
    """A copy of the local policy the gateway reads (LLM_POLICY_PATH), so a test can flip its fault switches."""
    path = tmp_path_factory.mktemp("policy") / "llm_gateway.json"
    path.write_text(REPO_POLICY.read_text())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LLM_POLICY_PATH", str(path))
        yield path


@pytest.fixture(scope="module")
def runtime_overrides(policy):
    return {"LOCAL_MODELS": "embedding"}


@pytest.fixture(scope="module")
def ingested(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    target = runtime.settings.drop_dir / "acme" / "manuals" / "engine.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(MANUAL)
    doc = document_id("acme", "manuals/engine.md")
    wait_for(lambda: (r := container().registry.get("acme", doc)) and r.status == DocumentStatus.INDEXED, 120)
    return runtime, doc


def test_a_dropped_document_answers_a_question_with_its_citation(ingested):
    rt, doc = ingested
    headers = bearer(rt, "acme", ("conversations",))
    cid = requests.post(f"{rt.http_url}/v1/conversations", json={}, headers=headers, timeout=30).json()["id"]
    response = requests.post(
        f"{rt.http_url}/v1/conversations/{cid}/messages",
        json={"content": "How often should the turbine blades be inspected?"},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    turn = response.json()
    assert turn["status"] == "answered", turn
    assert "100 hours" in turn["answer"], turn["answer"]
    cited = turn["citations"]
    assert cited and cited[0]["doc_id"] == doc and cited[0]["path"] == "manuals/engine.md"
    assert cited[0]["section"]  # the heading the passage came from
    assert turn["tool_runs"][0]["name"] == "knowledge_search" and turn["tool_runs"][0]["status"] == "ok"
    assert turn["answered_by"] == "extractive" and turn["total_ms"] >= turn["model_ms"] >= 0
    # The local runtime's AGENT_MODEL_STEP=when_needed: the search found the passage, so no tool_use step.
    assert not any(n.startswith("tool_use") for n in turn["notes"]), turn["notes"]

    other = bearer(rt, "globex", ("conversations",))
    cid = requests.post(f"{rt.http_url}/v1/conversations", json={}, headers=other, timeout=30).json()["id"]
    response = requests.post(
        f"{rt.http_url}/v1/conversations/{cid}/messages",
        json={"content": "How often should the turbine blades be inspected?"},
        headers=other,
        timeout=60,
    )
    turn = response.json()
    assert turn["status"] == "answered" and turn["citations"] == [] and "100 hours" not in turn["answer"], turn
    # Nothing found: the model was asked for more tools (its endpoint is not hosted here, so the loop says so).
    assert [n for n in turn["notes"] if n.startswith("tool_use step 1:")], turn["notes"]


def test_a_compound_question_searches_each_part_in_one_map_step(ingested):
    rt, doc = ingested
    headers = bearer(rt, "acme", ("conversations",))
    cid = requests.post(f"{rt.http_url}/v1/conversations", json={}, headers=headers, timeout=30).json()["id"]
    question = "How often should the turbine blades be inspected and how often is the engine oil changed?"
    turn = requests.post(
        f"{rt.http_url}/v1/conversations/{cid}/messages", json={"content": question}, headers=headers, timeout=60
    ).json()
    assert turn["status"] == "answered", turn
    first = [r for r in turn["tool_runs"] if r["step"] == 0]
    assert [r["name"] for r in first] == ["knowledge_search", "knowledge_search"]
    assert all(r["status"] == "ok" and r["result"]["passages"] for r in first)
    assert turn["citations"] and all(c["doc_id"] == doc for c in turn["citations"])


def test_the_model_forced_down_gives_a_safe_answer_naming_the_failure(ingested, policy):
    rt, _ = ingested
    sound = policy.read_text()
    broken = json.loads(sound)
    for target in broken["targets"].values():
        target["fault"] = {"mode": "fail"}
    policy.write_text(json.dumps(broken))
    time.sleep(0.6)  # the gateway looks at the file's mtime every 0.5 s
    try:
        headers = bearer(rt, "acme", ("conversations",))
        cid = requests.post(f"{rt.http_url}/v1/conversations", json={}, headers=headers, timeout=30).json()["id"]
        response = requests.post(
            f"{rt.http_url}/v1/conversations/{cid}/messages",
            json={"content": "When must a cracked blade be replaced?"},  # asked first here: no cached answer
            headers=headers,
            timeout=60,
        )
        turn = response.json()
        assert response.status_code == 200 and turn["status"] == "failed", turn
        assert turn["failure"] == "UpstreamUnavailable" and "language model failed" in turn["answer"]
        assert turn["question"] == "When must a cracked blade be replaced?"
        arn = turn["execution_arn"]
        sfn = rt.client("stepfunctions")
        wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] == "FAILED", timeout_s=10)
    finally:
        policy.write_text(sound)
