"""Component outages: the canary's typed error goes through the ASL's Retry, then its Catch, then an alert; /health
answers 503 naming what is down (a table, the search index, the model endpoints)."""

from __future__ import annotations

import json

import pytest
import requests

from agentplatform.bootstrap import container
from tests.integration.conftest import run_execution, wait_for

pytestmark = pytest.mark.integration


def test_typed_error_is_retried_then_caught_by_name_and_becomes_an_alert(runtime):
    rt = runtime
    # Take a component away: the probe raises DependencyUnavailable on every attempt.
    rt.client("dynamodb").delete_table(TableName=rt.provisioned.value("table:documents", "name"))
    result = run_execution(rt, "canary", {"correlation_id": "outage-7"}, name="outage-7")

    assert result["status"] == "FAILED"
    assert result["error"] == "CanaryDegraded"
    # 1 attempt + 2 retries (the ASL's Retry on DependencyUnavailable), then the Catch by the same name.
    assert rt.router.invocations["canary_probe"] == 3
    history = rt.client("stepfunctions").get_execution_history(executionArn=result["executionArn"])["events"]
    failures = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failures == ["DependencyUnavailable"] * 3

    # The Catch path published "degraded"; the rule routed it to the alerts queue, correlation id intact.
    sqs = rt.client("sqs")
    url = rt.provisioned.value("queue:alerts", "url")
    messages = wait_for(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"))
    alert = json.loads(messages[0]["Body"])
    assert alert["detail-type"] == "Canary Completed"
    assert alert["detail"]["status"] == "degraded"
    assert alert["detail"]["correlation_id"] == "outage-7"
    assert alert["detail"]["error"] == "DependencyUnavailable"
    assert "table" in alert["detail"]["cause"]


def test_a_search_or_model_outage_is_a_503_naming_it_and_raises_the_alert(runtime):
    rt = runtime
    before = requests.get(f"{rt.http_url}/health", timeout=30).json()
    status = {c["name"]: c["status"] for c in before["components"]}
    assert status["search_index"] == status["retrieval_function"] == "ok"
    # This runtime hosts no models (LOCAL_MODELS=none): a deployment without its endpoints, not an outage.
    assert status["embedding_endpoint"] == status["generation_endpoint"] == "absent"

    container().search_index.close()  # the embedded engine stops answering
    rt.model_server.stop()  # nothing listens on the model server's port any more
    response = requests.get(f"{rt.http_url}/health", timeout=30)
    assert response.status_code == 503
    down = {c["name"]: c["detail"] for c in response.json()["components"] if c["status"] == "down"}
    assert {"search_index", "embedding_endpoint", "generation_endpoint"} <= set(down)
    assert "search index" in down["search_index"]

    result = run_execution(rt, "canary", {"correlation_id": "outage-8"}, name="outage-8")
    assert result["status"] == "FAILED" and result["error"] == "CanaryDegraded"
    sqs = rt.client("sqs")
    url = rt.provisioned.value("queue:alerts", "url")

    def this_alert():
        bodies = [
            json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        ]
        return next((b["detail"] for b in bodies if b["detail"].get("correlation_id") == "outage-8"), None)

    alert = wait_for(this_alert)
    assert alert["status"] == "degraded"
    for name in ("search_index", "embedding_endpoint", "generation_endpoint"):
        assert name in alert["cause"]
