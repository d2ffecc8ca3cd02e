"""One chat turn through the API, followed by its correlation id (issue 15, check 3): the runtime's logbook finds
the api, orchestrator, gateway, tools (and evaluation, once that service exists) lines, in order, with durations;
`python -m local trace` prints that timeline; no log line of the turn at INFO carries the question."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from local.trace import per_service, read_lines, render, timeline
from tests.integration.conftest import bearer, seed_passages, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How often should the turbine blades be inspected for cracks?"
PASSAGE = "Inspect the turbine blades for cracks after every 100 hours of flight."


@pytest.fixture(scope="module")
def runtime_overrides():
    return {"LOCAL_MODELS": "embedding"}


@pytest.fixture(scope="module")
def turn(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    seed_passages({"acme": [("engine", "Engine maintenance", PASSAGE)]})
    headers = {**bearer(runtime, "acme", ("conversations",)), "x-correlation-id": "trace-turn-1"}
    conversation = requests.post(f"{runtime.http_url}/v1/conversations", json={}, headers=headers, timeout=30)
    response = requests.post(
        f"{runtime.http_url}/v1/conversations/{conversation.json()['id']}/messages",
        json={"content": QUESTION},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == "trace-turn-1"
    folder = runtime.settings.data_dir / "logs"
    assert response.json()["status"] == "answered", render("trace-turn-1", timeline(read_lines(folder, "trace-turn-1")))
    return runtime, folder


def _services_seen(folder: Path) -> set[str]:
    return {i["service"] for i in timeline(read_lines(folder, "trace-turn-1"))}


def test_the_correlation_id_finds_every_service_of_the_turn_in_order_with_durations(turn):
    _, folder = turn
    expected = ["api", "orchestrator", "llm_gateway"]
    if (ROOT / "functions" / "tools" / "handler.py").is_file():
        expected.append("tools")
    if (ROOT / "functions" / "evaluation" / "handler.py").is_file():
        expected.append("evaluation")  # sampled from turn.completed through its queue: it comes after the answer
    wait_for(lambda: set(expected) <= _services_seen(folder), 30)

    invocations = timeline(read_lines(folder, "trace-turn-1"))
    first = {}
    for invocation in invocations:
        assert invocation["duration_ms"] > 0 and invocation["end"] >= invocation["start"]
        first.setdefault(invocation["service"], invocation)
    # The request opens the timeline (its Lambda authorizer, then the api), before any step of the loop.
    assert invocations[0]["service"] in ("authorizer", "api")
    assert first["api"]["start"] < first["orchestrator"]["start"]
    functions = [i["function"] for i in invocations]
    assert functions.index("agent_load") < functions.index("agent_finalize")
    assert first["orchestrator"]["start"] < first["llm_gateway"]["start"]
    tool_runs = [log for i in invocations for log in i["logs"] if log.get("message") == "tool ran"]
    assert tool_runs and tool_runs[0]["tool"] == "knowledge_search", tool_runs
    if "evaluation" in first:
        finalize = next(i for i in invocations if i["function"] == "agent_finalize")
        assert first["evaluation"]["start"] > finalize["start"]
    # Every line the turn's services wrote carries its tenant (from the credentials, the turn's ctx or the event).
    logs = [log for i in invocations if i["service"] != "authorizer" for log in i["logs"]]
    assert logs and all(log.get("tenant") == "acme" for log in logs), logs
    totals = per_service(invocations)
    assert set(expected) <= set(totals) and all(ms > 0 for _, ms in totals.values())


def test_no_info_line_of_the_turn_carries_the_question(turn):
    _, folder = turn
    lines = read_lines(folder, "trace-turn-1")
    assert any(line.get("kind") == "log" for line in lines)
    # The logbook records at INFO and above: nothing there may hold the user's words.
    for line in lines:
        assert QUESTION not in str(line) and "turbine blades be inspected" not in str(line), line


def test_the_trace_command_prints_the_timeline(turn):
    runtime, folder = turn
    printed = render("trace-turn-1", timeline(read_lines(folder, "trace-turn-1")))
    assert "agent_load" in printed and "llm_gateway" in printed and "time per service" in printed
    out = subprocess.run(
        [sys.executable, "-m", "local", "trace", "trace-turn-1"],
        cwd=ROOT,
        env={**os.environ, "LOCAL_DATA_DIR": str(runtime.settings.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    services = [line.split()[3] for line in out.stdout.splitlines() if line.startswith("+")]
    assert services[0] in ("authorizer", "api") and {"api", "orchestrator", "llm_gateway"} <= set(services)
    missing = subprocess.run(
        [sys.executable, "-m", "local", "trace", "no-such-id"],
        cwd=ROOT,
        env={**os.environ, "LOCAL_DATA_DIR": str(runtime.settings.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no invocation" in missing.stdout
