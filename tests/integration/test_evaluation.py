"""Evaluation end to end on the local stack: turns asked through the conversation API, turn.completed on the
platform bus, the rule into the evaluation queue, the evaluator's SQS poller, records and alerts in the
evaluations table, read back through GET /v1/eval/summary and /v1/eval/alerts.

Issue 15, check 1: 20 turns at 100% sampling give 20 records with every score.
Check 2: the gateway policy switches the answering route to a deliberately bad answerer (an OpenAI-compatible
server, started here, that answers off-passage text under the target name the agent's fallback asks for):
faithfulness falls and exactly one alert is raised; switching the policy back clears it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from agentplatform.evaluation import SCORES
from tests.integration.conftest import bearer, seed_passages, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = ("conversations",)
OPERATOR = ("eval",)
REPO = Path(__file__).resolve().parents[2]

FACTS = [
    ("blades", "Engine care", "Inspect the turbine blades for cracks after every hundred hours of flight."),
    ("cabin", "Cabin", "Cabin pressure is held near eight thousand feet of altitude."),
    ("fuel", "Fuel", "Fuel samples are drained from each tank sump before the first flight of the day."),
    ("tyres", "Wheels", "Main wheel tyres are replaced after two hundred landings or when the tread is worn."),
    ("oxygen", "Oxygen", "Crew oxygen bottles are refilled whenever their pressure falls below 1,500 psi."),
    ("deice", "Winter", "Wings are sprayed with type four de-icing fluid when frost is found before departure."),
    ("brakes", "Brakes", "Brake pads are measured every fifty landings and replaced below three millimetres."),
    ("lights", "Lights", "Navigation lights are tested during the walk-around before every night flight."),
]
QUESTIONS = [
    "How often are the turbine blades inspected for cracks?",
    "What cabin pressure altitude is held?",
    "When are fuel samples drained from the tank sumps?",
    "When are the main wheel tyres replaced?",
    "When are crew oxygen bottles refilled?",
    "Which de-icing fluid is sprayed on the wings?",
    "How often are the brake pads measured?",
    "When are the navigation lights tested?",
    "What do inspectors look for on turbine blades?",
    "At which pressure do oxygen bottles get refilled?",
]
BAD_QUESTIONS = [
    "What is checked on the turbine blades every hundred hours?",
    "How are tyres with worn tread handled?",
    "What happens to frost found on the wings?",
    "Below what thickness are brake pads replaced?",
    "What is drained before the first flight of the day?",
    "Which lights are checked on the walk-around?",
]
RECOVERY_QUESTIONS = [
    "What altitude is the cabin pressure held near?",
    "How many landings before tyres are replaced?",
    "What pressure triggers an oxygen bottle refill?",
    "What type of de-icing fluid is used?",
    "How often are brake pads measured for wear?",
    "Before which flights are navigation lights tested?",
]
OFF_PASSAGE = "Our records show the parts are repainted purple by the catering staff every Tuesday [1]."


class _BadAnswerer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat-completions server that cites passage 1 for text no passage says."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {
                "id": "bad-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "bad",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": OFF_PASSAGE}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def bad_answerer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BadAnswerer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def good_policy() -> dict[str, Any]:
    policy = json.loads((REPO / "policies" / "llm_gateway.json").read_text())
    policy["cache"]["semantic"] = False  # each phase's answers must come from its own answerer
    return policy


def bad_policy(base_url: str) -> dict[str, Any]:
    """The same policy with its `extractive` target answered by the bad server: the chat route's answers and the
    agent loop's extractive fallback (which pins that target) both come from it."""
    policy = good_policy()
    policy["targets"]["extractive"] = {
        "provider": "openai",
        "model": "bad-answerer",
        "base_url": base_url,
        "price_in_per_1k": 0.0,
        "price_out_per_1k": 0.0,
        "context_window": 8192,
        "timeout_s": 10,
    }
    return policy


def write_policy(path: Path, policy: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(policy))
    tmp.replace(path)
    time.sleep(1.1)  # the gateway re-reads its file on a changed mtime, checked every 0.5 s


@pytest.fixture(scope="module")
def policies(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("policies")
    gateway = folder / "llm_gateway.json"
    gateway.write_text(json.dumps(good_policy()))
    evaluation = folder / "evaluation.json"
    evaluation.write_text(
        json.dumps(
            {
                "default_rate": 1.0,
                "faithfulness_method": "embedding",
                "window": {"samples": 5, "min_samples": 5, "max_age_s": 3600},
                "thresholds": {"faithfulness": 0.6},
                "max_drop": 0.3,
            }
        )
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LLM_POLICY_PATH", str(gateway))
        env.setenv("EVALUATION_POLICY_PATH", str(evaluation))
        yield gateway


@pytest.fixture(scope="module")
def runtime_overrides(policies):
    return {"LOCAL_MODELS": "embedding"}


@pytest.fixture(scope="module")
def stack(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    seed_passages({"acme": FACTS})
    return runtime


def api(rt, method: str, path: str, headers: dict[str, str], body: Any = None) -> requests.Response:
    return requests.request(method, f"{rt.http_url}{path}", json=body, headers=headers, timeout=60)


def ask_all(rt, questions: list[str]) -> None:
    response = api(rt, "POST", "/v1/conversations", bearer(rt, "acme", USER), {})
    assert response.status_code == 201, response.text
    cid = response.json()["id"]
    for question in questions:
        answer = api(rt, "POST", f"/v1/conversations/{cid}/messages", bearer(rt, "acme", USER), {"content": question})
        assert answer.status_code == 200, answer.text


def records(rt) -> list[dict[str, Any]]:
    from agentplatform.adapters.aws.evaluations import EvaluationStore

    table = rt.provisioned.value("table:evaluations", "name")
    return [r.model_dump() for r in EvaluationStore(table, rt.client("dynamodb")).records("acme")]


def wait_records(rt, n: int) -> list[dict[str, Any]]:
    return wait_for(lambda: (found := records(rt)) and len(found) >= n and found, timeout_s=120, interval_s=0.5)


def alerts(rt) -> list[dict[str, Any]]:
    response = api(rt, "GET", "/v1/eval/alerts", bearer(rt, "acme", OPERATOR))
    assert response.status_code == 200, response.text
    return response.json()["alerts"]


def test_twenty_turns_give_twenty_records_with_every_score(stack) -> None:
    ask_all(stack, QUESTIONS + QUESTIONS)
    found = wait_records(stack, 20)
    assert len(found) == 20
    for record in found:
        assert set(record["scores"]) == set(SCORES)
        # Every score measured; only an abstention skips the scores of claims (and says why), none failed.
        failed = {k: s["reason"] for k, s in record["scores"].items() if s["status"] == "failed"}
        assert not failed, (record["question"], record["answer"], failed)
        skipped = {k for k, s in record["scores"].items() if s["status"] == "skipped"}
        assert skipped <= {"faithfulness", "answer_relevance"}, skipped
        assert not skipped or record["answer_kind"] == "abstained"
        assert record["passages"] and record["tools"][0]["name"] == "knowledge_search"
    faithfulness = [
        r["scores"]["faithfulness"]["value"] for r in found if r["scores"]["faithfulness"]["value"] is not None
    ]
    assert len(faithfulness) >= 18 and sum(faithfulness) / len(faithfulness) >= 0.8, faithfulness
    summary = api(stack, "GET", "/v1/eval/summary?window=1h", bearer(stack, "acme", OPERATOR))
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["records"] == 20 and sum(body["by_route"].values()) == 20
    assert api(stack, "GET", "/v1/eval/summary?window=1h", bearer(stack, "acme", USER)).status_code == 403
    assert api(stack, "GET", "/v1/eval/summary?window=1y", bearer(stack, "acme", OPERATOR)).status_code == 422
    other = api(stack, "GET", "/v1/eval/summary?window=1h", bearer(stack, "globex", OPERATOR)).json()
    assert other["records"] == 0  # the tenant comes from the credentials
    assert alerts(stack) == []


def test_a_bad_answerer_raises_one_alert_and_switching_back_clears_it(stack, policies, bad_answerer) -> None:
    before = len(records(stack))
    write_policy(policies, bad_policy(bad_answerer))
    ask_all(stack, BAD_QUESTIONS)
    bad = wait_records(stack, before + len(BAD_QUESTIONS))[: len(BAD_QUESTIONS)]  # newest first
    assert all("repainted purple" in r["answer"] for r in bad), [r["answer"] for r in bad]
    assert max(r["scores"]["faithfulness"]["value"] for r in bad) < 0.5
    raised = wait_for(lambda: alerts(stack), timeout_s=30)
    assert len(raised) == 1 and raised[0]["state"] == "open" and raised[0]["score"] == "faithfulness"

    write_policy(policies, good_policy())
    ask_all(stack, RECOVERY_QUESTIONS)
    wait_records(stack, before + len(BAD_QUESTIONS) + len(RECOVERY_QUESTIONS))
    cleared = wait_for(lambda: [a for a in alerts(stack) if a["state"] == "cleared"], timeout_s=30)
    assert len(alerts(stack)) == 1 and cleared[0]["cleared_mean"] >= 0.6
    # Both transitions reached the operators' queue as evaluation.alert events.
    sqs = stack.client("sqs")
    url = stack.provisioned.value("queue:alerts", "url")
    seen = []
    for _ in range(5):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(m["Body"])
            if event.get("detail-type") == "evaluation.alert":
                seen.append(event["detail"]["state"])
    assert sorted(seen) == ["cleared", "open"]


def test_eval_report_reads_the_stacks_table(stack, tmp_path) -> None:
    from bench.eval_report import main as eval_report

    out = tmp_path / "report.html"
    table = stack.provisioned.value("table:evaluations", "name")
    endpoint = os.environ["LOCAL_AWS_ENDPOINT_URL"]
    assert eval_report(["--jsonl", "--table", table, "--endpoint-url", endpoint, "--out", str(out)]) == 0
    page = out.read_text()
    stored = len(records(stack))
    assert f"{stored} evaluated turns" in page
    assert page.count('class="point"') >= stored  # faithfulness alone has a point per scored turn
    assert page.count('<details class="turn">') == 8 and "Inspect the turbine blades" in page  # with passages
    if any("repainted purple" in r["answer"] for r in records(stack)):  # after check 2: the worst turns are its
        assert "repainted purple" in page
