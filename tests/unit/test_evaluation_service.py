"""The evaluator over moto's DynamoDB: sampling, stored records with every score, a failing scorer recorded as
`failed`, the degradation rule's one alert per episode and its clearing, the SQS handler's partial batches."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from agentplatform.adapters.aws.evaluations import EvaluationStore
from agentplatform.errors import ConfigurationError, UpstreamUnavailable
from agentplatform.evaluation import SCORES, Alert, TurnSample, sampled
from agentplatform.topology import PLATFORM
from functions.evaluation.policy import EvaluationPolicy, FilePolicySource, TenantPolicy, Window
from functions.evaluation.service import ALERT_DETAIL_TYPE, Evaluator
from tests.conftest import sample_event
from tests.fakes import MemoryEventBus, MemoryFunction
from tests.unit.test_evaluation_scorers import bag_of_words
from tests.unit.test_orchestrator import world  # noqa: F401 - the agent loop fixture, reused

BASE = sample_event("evaluation/turn_completed.json")["detail"]
GOOD = BASE["answer"]
BAD = "The blades are repainted every week by the cabin crew [1]."


def create_table(ddb: Any) -> str:
    table = next(t for t in PLATFORM.tables if t.name == "evaluations")
    index = table.indexes[0]
    ddb.create_table(
        TableName="evaluations",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", index.partition_key)],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    return "evaluations"


@pytest.fixture
def store() -> Iterator[EvaluationStore]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        yield EvaluationStore(create_table(ddb), ddb)


def gateway_handler(request: dict[str, Any]) -> dict[str, Any]:
    if "texts" not in request:
        raise AssertionError("only embeddings are asked for")
    usage = {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}
    info = {"target": "t", "provider": "p", "cache": "bypass", "attempts": 1}
    info |= {"overhead_ms": 0.1, "latency_ms": 1.0, "cost_usd": 0.0, "policy_version": 1}
    return {"vectors": bag_of_words(request["texts"]), "usage": usage, "gateway": info}


POLICY = EvaluationPolicy(
    default_rate=1.0,
    window=Window(samples=5, min_samples=5),
    thresholds={"faithfulness": 0.6},
    max_drop=0.3,
)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_796_814_000_000

    def __call__(self) -> int:
        self.ms += 1000
        return self.ms


def evaluator(store: EvaluationStore, policy: EvaluationPolicy = POLICY, **kwargs: Any) -> Evaluator:
    clock = Clock()
    gateway = kwargs.pop("gateway", MemoryFunction("llm_gateway", gateway_handler))
    return Evaluator(store, lambda: policy, gateway=gateway, now_ms=clock, **kwargs)


def detail(n: int, answer: str = GOOD, tenant: str = "acme", **changes: Any) -> dict[str, Any]:
    return {**BASE, "tenant": tenant, "turn": n, "answer": answer, "completed_ms": None, **changes}


def test_sampling_is_deterministic_per_turn_and_follows_the_rate() -> None:
    ids = [f"acme|c_{n:04d}#1" for n in range(4000)]
    picked = [i for i in ids if sampled(i, 0.25)]
    assert picked == [i for i in ids if sampled(i, 0.25)]  # the same turns every time
    assert 0.22 < len(picked) / len(ids) < 0.28
    assert set(picked) <= {i for i in ids if sampled(i, 0.5)}  # a higher rate keeps what a lower one took
    assert not any(sampled(i, 0.0) for i in ids) and all(sampled(i, 1.0) for i in ids)


def test_a_tenant_at_zero_is_not_evaluated_and_a_sampled_turn_has_every_score(store) -> None:
    policy = POLICY.model_copy(update={"tenants": {"globex": TenantPolicy(rate=0.0)}})
    ev = evaluator(store, policy)
    assert ev.handle(detail(1, tenant="globex")) is None
    record = ev.handle(detail(1))
    assert record is not None and set(record.scores) == set(SCORES)
    assert all(s.status == "ok" for s in record.scores.values()), record.scores
    assert record.scores["faithfulness"].method == "embedding" and record.route == "local-generation"
    assert store.records("globex") == [] and [r.turn_id for r in store.records("acme")] == [record.turn_id]
    assert [r.turn_id for r in store.records("acme", route="local-generation")] == [record.turn_id]
    assert store.records("acme", route="extractive") == []


def test_a_failing_scorer_is_recorded_with_its_reason_and_the_turn_is_kept(store) -> None:
    def down(request: dict[str, Any]) -> Any:
        raise UpstreamUnavailable("the embedding target is down")

    ev = evaluator(store, gateway=MemoryFunction("llm_gateway", down))
    record = ev.handle(detail(2))
    assert record is not None
    failed = record.scores["faithfulness"]
    assert failed.status == "failed" and "UpstreamUnavailable" in (failed.reason or "")
    assert record.scores["answer_relevance"].status == "failed"
    assert record.scores["citation_validity"].value == 1.0 and record.scores["latency_ms"].value == 1480
    no_passages = ev.handle(detail(3, passages=None))
    assert no_passages is not None and no_passages.scores["citation_validity"].status == "failed"
    assert len(store.records("acme")) == 2


def test_degradation_raises_one_alert_per_episode_and_recovery_clears_it(store) -> None:
    bus = MemoryEventBus()
    ev = evaluator(store, bus=bus)
    n = 0
    for answer in [GOOD] * 5 + [BAD] * 8:
        n += 1
        ev.handle(detail(n, answer))
    alerts = [e for e in bus.events if e["detail-type"] == ALERT_DETAIL_TYPE]
    assert len(alerts) == 1, alerts  # eight bad turns, many bad windows: one alert
    assert alerts[0]["detail"]["state"] == "open" and alerts[0]["detail"]["score"] == "faithfulness"
    assert alerts[0]["detail"]["mean"] < 0.6
    assert [a.state for a in store.alerts("acme")] == ["open"] and store.alert_state("acme", "faithfulness")[
        0
    ] == "open"
    for _ in range(5):
        n += 1
        ev.handle(detail(n))
    states = [e["detail"]["state"] for e in bus.events if e["detail-type"] == ALERT_DETAIL_TYPE]
    assert states == ["open", "cleared"]
    (stored,) = store.alerts("acme")
    assert stored.state == "cleared" and stored.cleared_mean is not None and stored.cleared_mean >= 0.6
    assert store.alert_state("acme", "faithfulness") == ("ok", None)
    assert store.alerts("globex") == []  # another tenant's rows are never read


def test_two_evaluators_racing_on_one_window_raise_it_once(store) -> None:
    bus = MemoryEventBus()
    first, second = evaluator(store, bus=bus), evaluator(store, bus=bus)
    for n in range(1, 6):
        store.put(first.evaluate(TurnSample(**detail(n, BAD))))
    # Both read the state before either wrote it: the conditional write lets only one record its alert.
    opened = [
        Alert(
            id=f"a{i}",
            tenant="acme",
            score="faithfulness",
            state="open",
            rule="below_threshold",
            mean=0.1,
            threshold=0.6,
            samples=5,
            opened_ms=1000 + i,
        )
        for i in range(2)
    ]
    assert [store.open_alert(a) for a in opened] == [True, False]
    assert first.watch("acme") == [] and second.watch("acme") == []
    assert [a.id for a in store.alerts("acme")] == ["a0"]


def test_policy_file_is_validated_and_reread(tmp_path) -> None:
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps({"default_rate": 0.5}))
    source = FilePolicySource(path)
    assert source.get().rate("acme") == 0.5
    path.write_text(json.dumps({"default_rate": 2}))
    os.utime(path, (1, 1))
    with pytest.raises(ConfigurationError) as raised:
        source.get()
    assert raised.value.errors[0].loc == ("default_rate",)


def test_handler_reports_only_failed_messages(store, monkeypatch) -> None:
    from functions.evaluation import handler as module

    ev = evaluator(store)
    monkeypatch.setattr(module, "evaluator", lambda: ev)
    monkeypatch.setattr(module, "emit_metrics", lambda record: None)
    good = {"messageId": "m1", "body": json.dumps({"detail-type": "turn.completed", "detail": detail(7)})}
    broken = {"messageId": "m2", "body": "{not json"}
    event = {"Records": [{**good, "eventSource": "aws:sqs"}, {**broken, "eventSource": "aws:sqs"}]}
    result = module.handler.__wrapped__(event, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert len(store.records("acme")) == 1


def test_metrics_are_emf_by_tenant_route_and_platform(store, capsys, monkeypatch) -> None:
    from functions.evaluation.handler import emit_metrics

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    record = evaluator(store).evaluate(TurnSample(**detail(9)))
    emit_metrics(record)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    faithfulness = [line for line in lines if "Eval_faithfulness" in line]
    dims = sorted(d for line in faithfulness for d in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
    assert dims == ["route", "scope", "tenant"]
    assert all(line["Eval_faithfulness"] in (1.0, [1.0]) for line in faithfulness)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    emit_metrics(record)
    assert capsys.readouterr().out == ""


def test_the_agent_loops_turn_completed_event_carries_every_score(world, store) -> None:  # noqa: F811
    from tests.unit.test_orchestrator import Gateway, answer, drive, grounded_chat, start

    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    drive(loop, start(world, "How often are the turbine blades inspected?"))
    event = world.bus.events[-1]
    assert event["detail-type"] == "turn.completed"
    assert len(json.dumps(event)) < 256 * 1024  # EventBridge's limit, passages included
    sample = TurnSample.model_validate(event["detail"])
    assert sample.passages and sample.passages[0].ref == 1 and sample.passages[0].doc_id == "d0"
    assert [t.name for t in sample.tools or []] == ["knowledge_search"]
    assert sample.tokens_in and sample.tokens_in > 0 and sample.cost_usd is not None and sample.completed_ms
    record = evaluator(store).evaluate(sample)
    assert {k: s.status for k, s in record.scores.items()} == dict.fromkeys(SCORES, "ok")
    assert record.value("faithfulness") == 1.0 and record.route == "t"


def test_each_record_logs_under_its_own_turns_correlation_id(store, monkeypatch) -> None:
    from functions.evaluation import handler as module

    ev = evaluator(store)
    monkeypatch.setattr(module, "evaluator", lambda: ev)
    monkeypatch.setattr(module, "emit_metrics", lambda record: None)
    logger = module.telemetry("evaluation").logger
    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(
        logger, "info", lambda msg, extra: logged.append({**extra, "correlation_id": logger.get_correlation_id()})
    )
    records = [
        {
            "messageId": f"m{n}",
            "eventSource": "aws:sqs",
            "body": json.dumps({"detail": detail(n, correlation_id=f"cid-{n}")}),
        }
        for n in (1, 2)
    ]
    assert module.handler.__wrapped__({"Records": records}, None) == {"batchItemFailures": []}
    assert [(line["turn"], line["correlation_id"]) for line in logged] == [(1, "cid-1"), (2, "cid-2")]
    assert [r.correlation_id for r in store.records("acme")] == ["cid-2", "cid-1"]
