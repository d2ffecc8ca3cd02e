"""The evaluator: a sampled turn -> its scores -> a record, metrics, and the degradation rule's alerts.

    Evaluator.handle(detail)   turn.completed detail -> sampled? -> evaluate -> store -> metrics -> watch
    Evaluator.evaluate(sample) every scorer; one that raises is recorded `failed` with its reason, never the turn
    Evaluator.watch(tenant)    per watched score: the rolling window's mean against its threshold and against the
                               previous window; one alert per episode (a conditional write), cleared on recovery
    Evaluator.summary(tenant)  GET /v1/eval/summary

The gateway (embeddings, the judge) is reached through the `Function` port; the store, the bus and the metric
emitter are injected, so tests run the whole service on moto or fakes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agentplatform.errors import ModelOutputInvalid, PlatformError
from agentplatform.evaluation import (
    Alert,
    EvaluationRecord,
    SampledPassage,
    Score,
    Summary,
    TurnSample,
    sampled,
    summarize,
)
from agentplatform.inference import ChatMessage
from agentplatform.llm import ChatAnswer, ChatCall, EmbedAnswer, EmbedCall, Passage
from agentplatform.ports import EventBus, Function
from agentplatform.retrieval import Citation
from functions.evaluation.policy import EvaluationPolicy
from functions.evaluation.scorers import ScorerTools, modules

if TYPE_CHECKING:  # the service is given the store; it never builds one
    from agentplatform.adapters.aws.evaluations import EvaluationStore

ALERT_SOURCE = "agentplatform.evaluation"
ALERT_DETAIL_TYPE = "evaluation.alert"
Emit = Callable[[EvaluationRecord], None]

JUDGE_PROMPT = (
    "You check claims against numbered passages. For each numbered claim, answer whether the passages state it. "
    'Reply with JSON only: {"verdicts": [true or false, one per claim, in order]}.'
)


class Evaluator:
    def __init__(
        self,
        store: EvaluationStore,
        policy: Callable[[], EvaluationPolicy],
        *,
        gateway: Function | None = None,
        bus: EventBus | None = None,
        emit: Emit | None = None,
        embed: Callable[[Sequence[str]], list[list[float]]] | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        """`embed`: embeddings to use where there is no gateway (offline runs, with the model in-process)."""
        self.store = store
        self.policy = policy
        self.gateway = gateway
        self.bus = bus
        self.emit = emit
        self.embed = embed
        self.now_ms = now_ms

    # one turn ---------------------------------------------------------------------------------------------------

    def handle(self, detail: dict[str, Any]) -> EvaluationRecord | None:
        """A turn.completed detail: scored and stored when sampled; None when the policy samples it out."""
        sample = TurnSample.model_validate(detail)  # a malformed event is the caller's to retry, then the DLQ
        policy = self.policy()
        if not sampled(f"{sample.tenant}|{sample.turn_id}", policy.rate(sample.tenant)):
            return None
        record = self.evaluate(sample, policy)
        self.store.put(record)
        if self.emit is not None:
            self.emit(record)
        self.watch(sample.tenant, policy)
        return record

    def evaluate(self, sample: TurnSample, policy: EvaluationPolicy | None = None) -> EvaluationRecord:
        policy = policy or self.policy()
        tools = ScorerTools(
            embed=self._embed(sample.tenant) if self.gateway is not None else self.embed,
            judge=self._judge(sample.tenant) if self.gateway is not None else None,
        )
        scores: dict[str, Score] = {}
        for module in modules():
            try:
                if module.NAME == "faithfulness":
                    scores.update(module.score(sample, tools, method=policy.faithfulness_method))
                else:
                    scores.update(module.score(sample, tools))
            except (PlatformError, ValueError, KeyError, IndexError, TypeError) as exc:
                # One scorer's failure is that score's, named with why; the turn keeps every other score.
                names = getattr(module, "NAMES", None) or [module.NAME]
                for name in names:
                    scores[name] = Score(status="failed", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
        return EvaluationRecord(
            tenant=sample.tenant,
            turn_id=sample.turn_id,
            conversation_id=sample.conversation_id,
            turn=sample.turn,
            route=sample.route,
            source="offline" if sample.release else "production",
            release=sample.release,
            at_ms=sample.completed_ms or self.now_ms(),
            status=sample.status,
            answer_kind=sample.answer_kind,
            question=sample.question[:2000],
            answer=sample.answer[:4000],
            passages=sample.passages or [],
            tools=sample.tools or [],
            scores=scores,
            correlation_id=sample.correlation_id,
        )

    # the degradation rule ---------------------------------------------------------------------------------------

    def watch(self, tenant: str, policy: EvaluationPolicy | None = None) -> list[Alert]:
        """Raise or clear each watched score's alert from the tenant's latest production records; return what
        changed. The window is the last `window.samples` records (within `max_age_s`); the rule fires when its
        mean is under the threshold, or fell more than `max_drop` against the window before it."""
        policy = policy or self.policy()
        if not policy.thresholds:
            return []
        now = self.now_ms()
        size = policy.window.samples
        recent = [
            r
            for r in self.store.records(tenant, since_ms=now - policy.window.max_age_s * 1000, limit=4 * size)
            if r.source == "production"
        ]
        changed: list[Alert] = []
        for name, threshold in policy.thresholds.items():
            values = [v for v in (r.value(name) for r in recent) if v is not None]
            current, previous = values[:size], values[size : 2 * size]
            if len(current) < policy.window.min_samples:
                continue
            mean = sum(current) / len(current)
            prev_mean = sum(previous) / len(previous) if len(previous) >= policy.window.min_samples else None
            rule = None
            if mean < threshold:
                rule = "below_threshold"
            elif prev_mean is not None and prev_mean - mean > policy.max_drop:
                rule = "dropped"
            state, open_key = self.store.alert_state(tenant, name)
            if rule is not None and state != "open":
                alert = Alert(
                    id=f"{tenant}:{name}:{now}",
                    tenant=tenant,
                    score=name,
                    state="open",
                    rule=rule,
                    mean=round(mean, 4),
                    previous_mean=None if prev_mean is None else round(prev_mean, 4),
                    threshold=threshold,
                    samples=len(current),
                    opened_ms=now,
                )
                if self.store.open_alert(alert):
                    self._announce(alert)
                    changed.append(alert)
            elif rule is None and state == "open" and open_key:
                opened = self.store.alert(tenant, open_key)
                if opened is None:
                    continue
                cleared = opened.model_copy(
                    update={"state": "cleared", "cleared_ms": now, "cleared_mean": round(mean, 4)}
                )
                if self.store.clear_alert(cleared):
                    self._announce(cleared)
                    changed.append(cleared)
        return changed

    def _announce(self, alert: Alert) -> None:
        if self.bus is not None:
            self.bus.publish(ALERT_SOURCE, ALERT_DETAIL_TYPE, alert.model_dump(mode="json"))

    # reads ------------------------------------------------------------------------------------------------------

    def summary(self, tenant: str, window_s: int) -> Summary:
        since = self.now_ms() - window_s * 1000
        return summarize(tenant, window_s, since, self.store.records(tenant, since_ms=since, limit=5000))

    # the gateway ------------------------------------------------------------------------------------------------

    def _embed(self, tenant: str) -> Callable[[Sequence[str]], list[list[float]]]:
        def embed(texts: Sequence[str]) -> list[list[float]]:
            assert self.gateway is not None
            call = EmbedCall(tenant=tenant, texts=[t[:2000] for t in texts])
            return EmbedAnswer.model_validate(self.gateway.invoke(call.model_dump(mode="json"))).vectors

        return embed

    def _judge(self, tenant: str) -> Callable[[str, Sequence[str], Sequence[SampledPassage]], list[bool]]:
        def judge(question: str, claims: Sequence[str], passages: Sequence[SampledPassage]) -> list[bool]:
            assert self.gateway is not None
            listed = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(claims))
            call = ChatCall(
                tenant=tenant,
                task="judge",
                messages=[
                    ChatMessage(role="system", content=JUDGE_PROMPT),
                    ChatMessage(role="user", content=f"Question: {question}\nClaims:\n{listed}"),
                ],
                passages=[
                    Passage(
                        ref=p.ref,
                        text=p.text or "-",
                        citation=Citation(doc_id=p.doc_id, doc_version="", path="", title=p.title),
                    )
                    for p in passages
                ],
                response_format={"type": "json_object"},
                max_tokens=16 + 8 * len(claims),
                cache="bypass",
            )
            answer = ChatAnswer.model_validate(self.gateway.invoke(call.model_dump(mode="json", exclude_none=True)))
            try:
                verdicts = json.loads(answer.message.content or "")["verdicts"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelOutputInvalid("the judge's reply is not the verdicts JSON") from exc
            if not isinstance(verdicts, list) or not all(isinstance(v, bool) for v in verdicts):
                raise ModelOutputInvalid("the judge's verdicts are not booleans")
            return verdicts

        return judge
