"""The agent loop's steps (statemachines/agent_loop.asl.json), one method each, over ports.

Each step takes the run's state and returns it changed. The state stays small: the turn's identity and limits
(`ctx`), the recent history, the step counter and the current decision; tool results live on their own rows in
the conversations table (one per call, keyed by step and call id) and each model step reads them from there.

    state = {ctx: {tenant, user, groups, conversation_id, turn, max_steps, deadline_ms, escalation_timeout_s},
             history: [...], step, decision: {has_tools, tool_calls}, next, cut_off, notes, escalation, final}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentplatform import grounding
from agentplatform.conversations import (
    AnswerKind,
    ConversationStore,
    EscalationStatus,
    ToolRun,
    TurnCitation,
    TurnStatus,
)
from agentplatform.errors import PlatformError
from agentplatform.evaluation import PASSAGE_CHARS
from agentplatform.inference import ChatMessage, FunctionDefinition, Tool
from agentplatform.llm import ChatAnswer, ChatCall, Passage
from agentplatform.memory import Recollection
from agentplatform.observability import telemetry
from agentplatform.ports import EventBus, Function
from agentplatform.questions import sub_queries
from agentplatform.retrieval import Citation
from agentplatform.tools import ToolCaller, ToolCallRequest, ToolsClient

HISTORY_TURNS = 6  # recent turns sent to the model as messages
HISTORY_CHARS = 1_500  # per message of the history
MAX_CALLS_PER_STEP = 8
MAX_PASSAGES = 8
MAX_TRIGGERED = 3  # lookups planned from the question's identifiers, at most
TOOL_RESULT_CHARS = 4_000  # a tool result as the model reads it

SYSTEM_TOOLS = (
    "You are the organization's assistant. Use the tools to find facts in the organization's documents before "
    "answering. Call knowledge_search with a focused query; call it again with another query if the passages do "
    "not answer the question. Call escalate_to_human when the user asks for a person. When the passages answer "
    "the question, reply without calling a tool."
)
SYSTEM_ANSWER = (
    "Answer the question only from the numbered passages. Cite every sentence with the passage's marker, like "
    "[1]. If the passages do not answer the question, say that you do not know."
)
ABSTAIN = "I could not find the answer in your documents, so I don't know."
REFUSAL = "An operator declined this request, so I can't help with it here."

# The user asking for a person: a policy, not the model's call (small local models miss it).
_WANTS_HUMAN = re.compile(
    r"\b(talk|speak|chat|connect|escalate|transfer|hand)\b[^.?!]{0,40}\b(human|person|operator|agent|someone|"
    r"representative|somebody)\b|\b(human|real person|operator)\s+please\b",
    re.IGNORECASE,
)


# The memory seam: (tenant, user, conversation, question) -> notes the model should know (preferences, a summary of
# older turns, facts), search hints and the last turn the summary covers (functions/memory); none by default.
Recall = Callable[[str, str, str, str], Recollection]

# After the retrieval-first search, when CallModel asks the model for more tool calls (settings.agent_model_step).
ModelStep = Literal["always", "when_needed"]


@dataclass
class Clock:
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))


class AgentLoop:
    def __init__(
        self,
        store: ConversationStore,
        gateway: Function,
        tools: ToolsClient,
        *,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        recall: Recall | None = None,
        model_step: ModelStep = "always",
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.tools = tools
        self.bus = bus
        self.clock = clock or Clock()
        self.recall = recall
        self.model_step = model_step

    # LoadContext ----------------------------------------------------------------------------------------------

    def load(self, state: dict[str, Any], execution: str) -> dict[str, Any]:
        ctx = state["ctx"]
        item = self.store.turn_item(ctx["tenant"], ctx["conversation_id"], ctx["turn"])
        self.store.update_turn(
            ctx["tenant"], ctx["conversation_id"], ctx["turn"], {"execution_arn": execution, "status": "running"}
        )
        history: list[dict[str, Any]] = []
        recalled = Recollection()
        if self.recall is not None:  # memory: preferences, summaries, facts about the user, as context
            recalled = self.recall(ctx["tenant"], ctx["user"], ctx["conversation_id"], item["question"])
            if recalled.notes:
                notes = "\n".join(recalled.notes)
                history.append({"role": "system", "content": f"What you know about this user:\n{notes}"})
        for past in self.store.recent_turns(
            ctx["tenant"], ctx["conversation_id"], limit=HISTORY_TURNS, before=ctx["turn"]
        ):
            if past.status != TurnStatus.ANSWERED or not past.answer or past.turn <= recalled.summarized_through:
                continue  # turns the summary covers reach the model as the summary
            history.append({"role": "user", "content": past.question[:HISTORY_CHARS]})
            history.append({"role": "assistant", "content": past.answer[:HISTORY_CHARS]})
        ctx = {
            **ctx,
            "question": item["question"],  # the user's own words, as stored and evaluated
            "hints": recalled.search_hints,  # the user's context (their office, ...): steers searches and answers
            "deadline_ms": int(item.get("created_ms") or self.clock.now_ms()) + int(ctx["wall_clock_s"]) * 1000,
        }
        return {"ctx": ctx, "history": history, "step": 0, "cut_off": False, "notes": [], "next": "model"}

    # CallModel ------------------------------------------------------------------------------------------------

    def call_model(self, state: dict[str, Any]) -> dict[str, Any]:
        ctx, step = state["ctx"], int(state["step"])
        runs = self.store.runs(ctx["tenant"], ctx["conversation_id"], ctx["turn"])
        searched = any(r.name == "knowledge_search" and r.status == "ok" for r in runs)
        if not runs and _WANTS_HUMAN.search(ctx["question"]):
            calls = [_call(step, 0, "escalate_to_human", {"reason": "the user asked for a person"})]
            return {**state, "decision": {"has_tools": True, "tool_calls": calls, "planned": "policy"}}
        if not any(r.name == "knowledge_search" for r in runs):
            # Retrieval first: the question itself is the first search, one per part of a compound question, all
            # in one Map step (docs/agent-loop.md says why).
            calls = [
                _call(step, i, "knowledge_search", {"query": _hinted(q, ctx)})
                for i, q in enumerate(sub_queries(ctx["question"]))
            ]
            calls += self._triggered(ctx, step, first=len(calls))
            return {**state, "decision": {"has_tools": True, "tool_calls": calls, "planned": "retrieval_first"}}
        if self.model_step == "when_needed" and not _needs_model(runs):
            # The searches found passages and nothing failed: the model would only route to Answer, slowly.
            return {**state, "decision": {"has_tools": False, "tool_calls": [], "planned": "retrieval_enough"}}
        listed = self.tools.describe(_caller(ctx)).tools
        call = ChatCall(
            tenant=ctx["tenant"],
            task="tool_use",
            messages=self._messages(state, runs),
            tools=[
                Tool(function=FunctionDefinition(name=t.name, description=t.description, parameters=t.parameters))
                for t in listed
            ],
            tool_choice="auto",
            max_tokens=96,  # a tool call is ~30 tokens; a long text answer here is discarded anyway
            deadline_ms=self._left_ms(ctx),
        )
        try:
            answer = self._chat(ctx, call)
        except PlatformError as exc:
            if not searched:
                raise  # nothing to answer from: the ASL's catch gives the safe answer naming the failure
            # The router model is down but the passages are in: answer from them, and say so on the turn.
            notes = [*state.get("notes", []), f"tool_use step {step}: {type(exc).__name__}"]
            return {**state, "notes": notes, "decision": {"has_tools": False, "tool_calls": []}}
        calls: list[dict[str, Any]] = []
        for i, tool_call in enumerate((answer.message.tool_calls or [])[:MAX_CALLS_PER_STEP]):
            try:
                arguments: Any = tool_call.function.parsed_arguments()
            except ValueError:
                arguments = tool_call.function.arguments  # the registry refuses it; the model sees why
            taken = {c["id"] for c in calls}
            call_id = tool_call.id if tool_call.id not in taken else None
            name = tool_call.function.name
            described = next((t for t in listed if t.name == name), None)
            calls.append(
                _call(step, i, name, arguments, call_id, side_effect=bool(described and described.side_effect))
            )
        return {**state, "decision": {"has_tools": bool(calls), "tool_calls": calls, "planned": "model"}}

    def _triggered(self, ctx: dict[str, Any], step: int, *, first: int) -> list[dict[str, Any]]:
        """The lookups the question names (an order number, an email: the tools' triggers), planned beside the
        searches. Never a tool that changes something or needs approval: those stay the model's call."""
        calls: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for tool in self.tools.describe(_caller(ctx)).tools:
            if tool.side_effect or tool.requires_approval:
                continue
            for trigger in tool.triggers:
                for match in re.finditer(trigger.pattern, ctx["question"]):
                    if (tool.name, match.group(0).lower()) in seen or len(calls) >= MAX_TRIGGERED:
                        continue
                    seen.add((tool.name, match.group(0).lower()))
                    calls.append(_call(step, first + len(calls), tool.name, {trigger.argument: match.group(0)}))
        return calls

    def _messages(self, state: dict[str, Any], runs: list[ToolRun]) -> list[ChatMessage]:
        ctx = state["ctx"]
        messages = [ChatMessage(role="system", content=SYSTEM_TOOLS)]
        messages += [ChatMessage(**m) for m in state.get("history", [])]
        messages.append(ChatMessage(role="user", content=ctx["question"]))
        by_step: dict[int, list[ToolRun]] = {}
        for run in runs:
            by_step.setdefault(run.step, []).append(run)
        for step in sorted(by_step):
            steps = by_step[step]
            messages.append(
                ChatMessage(
                    role="assistant",
                    tool_calls=[
                        {"id": r.call_id, "function": {"name": r.name, "arguments": json.dumps(r.arguments)}}
                        for r in steps
                    ],
                )
            )
            for r in steps:
                content = json.dumps(r.result) if r.status == "ok" else json.dumps({"error": r.error})
                messages.append(ChatMessage(role="tool", tool_call_id=r.call_id, content=content[:TOOL_RESULT_CHARS]))
        return messages

    def _chat(self, ctx: dict[str, Any], call: ChatCall) -> ChatAnswer:
        answer = ChatAnswer.model_validate(self.gateway.invoke(call.model_dump(mode="json", exclude_none=True)))
        provider_ms = max(0.0, answer.gateway.latency_ms - answer.gateway.overhead_ms)
        self.store.add_model_ms(ctx["tenant"], ctx["conversation_id"], ctx["turn"], provider_ms)
        self._add_usage(ctx, answer)
        return answer

    def _add_usage(self, ctx: dict[str, Any], answer: ChatAnswer) -> None:
        # The turn's tokens and cost, for turn.completed (evaluation). A turn's model calls run one after another
        # (the model steps, then the answer's tries), so reading then writing the sums loses none.
        tenant, conversation_id, turn = ctx["tenant"], ctx["conversation_id"], ctx["turn"]
        item = self.store.turn_item(tenant, conversation_id, turn)
        usage = {
            "tokens_in": int(item.get("tokens_in") or 0) + answer.usage.prompt_tokens,
            "tokens_out": int(item.get("tokens_out") or 0) + answer.usage.completion_tokens,
            "cost_micro_usd": int(item.get("cost_micro_usd") or 0) + round(answer.gateway.cost_usd * 1_000_000),
        }
        self.store.update_turn(tenant, conversation_id, turn, usage)

    def _left_ms(self, ctx: dict[str, Any]) -> int:
        return max(1_000, int(ctx["deadline_ms"]) - self.clock.now_ms())

    # RunTool (one Map iteration) ------------------------------------------------------------------------------

    def run_tool(self, item: dict[str, Any], execution: str) -> dict[str, Any]:
        ctx, step, call = item["ctx"], int(item["step"]), item["call"]
        tenant, conversation_id, turn = ctx["tenant"], ctx["conversation_id"], ctx["turn"]
        done = self.store.run(tenant, conversation_id, turn, step, call["id"])
        approved = call.get("approved", False)
        key = hashlib.sha256(f"{execution}|{step}|{call['id']}".encode()).hexdigest()[:32]
        if done is not None and done.status == "started":
            # An attempt began this side effect and never said how it ended (a crash, a timeout): never again.
            interrupted = done.model_copy(
                update={"status": "error", "error": f"{done.name} was interrupted and is not repeated; it may have run"}
            )
            self.store.save_run(tenant, conversation_id, turn, interrupted)
            return _summary(interrupted)
        if done is not None and done.status != "needs_approval":
            return _summary(done)  # a retried or resumed step: the tool never runs twice for one key
        if call.get("side_effect"):
            # Claimed before it runs: an attempt that dies mid-call leaves `started`, and no retry repeats it.
            claim = ToolRun(
                call_id=call["id"],
                name=call["name"],
                step=step,
                arguments=call["arguments"] if isinstance(call["arguments"], dict) else {},
                status="started",
                idempotency_key=key,
            )
            if not self.store.claim_run(tenant, conversation_id, turn, claim, was=done.status if done else None):
                return self.run_tool(item, execution)  # another attempt claimed it first: report what it left
        outcome = self.tools.call(
            ToolCallRequest(
                caller=_caller(ctx, step=step, call_id=call["id"], idempotency_key=key),
                name=call["name"],
                arguments=call["arguments"],
                approved=approved,
            )
        )
        run = ToolRun(
            call_id=call["id"],
            name=call["name"],
            step=step,
            arguments=call["arguments"] if isinstance(call["arguments"], dict) else {"raw": str(call["arguments"])},
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            idempotency_key=key,
        )
        self.store.save_run(tenant, conversation_id, turn, run)
        return _summary(run)

    # AppendResults --------------------------------------------------------------------------------------------

    def append(self, state: dict[str, Any], execution: str) -> dict[str, Any]:
        ctx, step = state["ctx"], int(state["step"])
        results = state.pop("tool_results", None) or []
        for result in results:
            if result.get("crashed"):  # the RunTool task itself failed (the ASL caught it): the model sees it
                call = next(c for c in state["decision"]["tool_calls"] if c["id"] == result["call_id"])
                crash = ToolRun(
                    call_id=call["id"],
                    name=call["name"],
                    step=step,
                    arguments=call["arguments"] if isinstance(call["arguments"], dict) else {},
                    status="error",
                    error=f"{call['name']} failed: {result.get('error') or 'the tool crashed'}",
                    idempotency_key=hashlib.sha256(f"{execution}|{step}|{call['id']}".encode()).hexdigest()[:32],
                )
                self.store.save_run(ctx["tenant"], ctx["conversation_id"], ctx["turn"], crash)
        runs = [r for r in self.store.runs(ctx["tenant"], ctx["conversation_id"], ctx["turn"]) if r.step == step]
        pending = [r for r in runs if r.status == "needs_approval"]
        asked = [r for r in runs if r.name == "escalate_to_human" and r.status == "ok"]
        if pending or asked:
            reason = (
                f"approval needed for {', '.join(r.name for r in pending)}"
                if pending
                else str((asked[0].result or {}).get("reason") or "the agent asked for a person")
            )
            escalation = {
                "id": "e_"
                + hashlib.sha256(f"{execution}|{ctx['conversation_id']}|{ctx['turn']}|{step}".encode()).hexdigest()[
                    :24
                ],
                "reason": reason[:500],
                "pending": [c for c in state["decision"]["tool_calls"] if c["id"] in {r.call_id for r in pending}],
            }
            return {**state, "escalation": escalation, "next": "escalate"}
        step += 1
        over_time = self.clock.now_ms() >= int(ctx["deadline_ms"])
        if step >= int(ctx["max_steps"]) or over_time:
            return {**state, "step": step, "cut_off": True, "next": "answer"}
        return {**state, "step": step, "next": "model"}

    # Escalate (.waitForTaskToken) and Resume -----------------------------------------------------------------

    def escalate(self, state: dict[str, Any], token: str) -> dict[str, Any]:
        ctx, escalation = state["ctx"], state["escalation"]
        self.store.open_escalation(
            ctx["tenant"],
            escalation_id=escalation["id"],
            conversation_id=ctx["conversation_id"],
            turn=ctx["turn"],
            user=ctx["user"],
            question=ctx["question"],
            reason=escalation["reason"],
            token=token,
            pending_tools=[c["name"] for c in escalation.get("pending", [])],
        )
        self.store.update_turn(
            ctx["tenant"], ctx["conversation_id"], ctx["turn"], {"status": "waiting", "escalation_id": escalation["id"]}
        )
        return {"escalation_id": escalation["id"]}

    def resume(self, state: dict[str, Any]) -> dict[str, Any]:
        ctx, escalation = state["ctx"], state["escalation"]
        resolution = state.pop("resolution", None) or {}
        self.store.update_turn(ctx["tenant"], ctx["conversation_id"], ctx["turn"], {"status": "running"})
        action = resolution.get("action", "timeout")
        if action == "timeout":
            # Resolved in the same moment: the timeout's outcome still stands, the run moved on.
            with contextlib.suppress(PlatformError):
                self.store.close_escalation(
                    ctx["tenant"], escalation["id"], EscalationStatus.TIMED_OUT, by="timeout", resolution=None
                )
            minutes = max(1, round(int(ctx["escalation_timeout_s"]) / 60))
            text = (
                f"No operator answered within {minutes} minute{'s' if minutes != 1 else ''}, so this request was not "
                "completed. Please try again later or contact support."
            )
            return {**state, "final": {"answer": text, "kind": AnswerKind.TIMEOUT.value}, "next": "finalize"}
        if action == "reject":
            return {**state, "final": {"answer": REFUSAL, "kind": AnswerKind.REFUSAL.value}, "next": "finalize"}
        if action == "answer":
            final = {"answer": str(resolution.get("text") or ""), "kind": AnswerKind.OPERATOR.value}
            return {**state, "final": final, "next": "finalize"}
        # approve: run the calls that waited for it, or go on with the loop.
        pending = [{**c, "approved": True} for c in escalation.get("pending", [])]
        if pending:
            return {**state, "decision": {"has_tools": True, "tool_calls": pending}, "next": "tools"}
        return {**state, "step": int(state["step"]) + 1, "next": "model"}

    # Answer (with the grounding check) ------------------------------------------------------------------------

    def answer(self, state: dict[str, Any]) -> dict[str, Any]:
        ctx = state["ctx"]
        passages = self._passages(ctx)
        if not passages:
            final = {"answer": ABSTAIN, "kind": AnswerKind.ABSTAINED.value, "grounded": True, "refs": []}
            return {**state, "final": final, "next": "finalize"}
        text, target, provider = self._answer_once(ctx, state, passages, quoted=False)
        report = grounding.check(text, passages)
        kind, notes = AnswerKind.GENERATED, list(state.get("notes", []))
        if not _supported(report, text, provider):
            notes.append("grounding: first answer unsupported, retried with the passages quoted")
            text, target, provider = self._answer_once(ctx, state, passages, quoted=True)
            report = grounding.check(text, passages)
            if not _supported(report, text, provider):
                notes.append("grounding: retry unsupported, extractive answer")
                text, target = self._extractive(ctx, passages)
                report = grounding.check(text, passages)
                kind = AnswerKind.EXTRACTIVE
        if report.abstained:
            kind = AnswerKind.ABSTAINED
        if kind == AnswerKind.EXTRACTIVE and not report.abstained:
            text = f"I could not verify a written answer, so here is what your documents say: {text}"
        refs = [r for r in grounding.citation_refs(text) if any(p.ref == r for p in passages)]
        final = {
            "answer": text,
            "kind": kind.value,
            "grounded": report.supported,
            "answered_by": target,
            "refs": refs,
            "citations": [_citation(p) for p in passages if p.ref in refs],
        }
        return {**state, "notes": notes, "final": final, "next": "finalize"}

    def _passages(self, ctx: dict[str, Any]) -> list[Passage]:
        """Every cited passage the turn's tools found: business records (a lookup's exact answer) ahead of the
        searches' passages, so the limit never drops them."""
        seen: set[tuple[str, str]] = set()
        out: list[Passage] = []
        runs = self.store.runs(ctx["tenant"], ctx["conversation_id"], ctx["turn"])
        for run in sorted(runs, key=lambda r: r.name == "knowledge_search"):
            if run.status != "ok" or not run.result or not isinstance(run.result.get("passages"), list):
                continue
            for p in run.result.get("passages", []):
                key = (p["citation"]["doc_id"], p["text"][:200])
                if key in seen or len(out) >= MAX_PASSAGES:
                    continue
                seen.add(key)
                out.append(Passage(ref=len(out) + 1, text=p["text"], citation=Citation(**p["citation"])))
        return out

    def _answer_once(
        self, ctx: dict[str, Any], state: dict[str, Any], passages: list[Passage], *, quoted: bool
    ) -> tuple[str, str, str]:
        """The answer's text, the gateway target and the provider that wrote it."""
        question = _hinted(ctx["question"], ctx)
        if quoted:  # the retry shows the passages verbatim in the prompt as well
            quotes = "\n".join(f"[{p.ref}] {p.text}" for p in passages)
            question = f"Passages:\n{quotes}\n\nQuestion: {question}\nAnswer only with facts quoted from them, cited."
        call = ChatCall(
            tenant=ctx["tenant"],
            task="chat",
            messages=[
                ChatMessage(role="system", content=SYSTEM_ANSWER),
                *[ChatMessage(**m) for m in state.get("history", [])],
                ChatMessage(role="user", content=question),
            ],
            passages=passages,
            max_tokens=256,
            deadline_ms=self._left_ms(ctx),
        )
        answer = self._chat(ctx, call)
        return answer.message.content or "", answer.gateway.target, answer.gateway.provider

    def _extractive(self, ctx: dict[str, Any], passages: list[Passage]) -> tuple[str, str]:
        call = ChatCall(
            tenant=ctx["tenant"],
            task="chat",
            model="extractive",
            messages=[ChatMessage(role="user", content=_hinted(ctx["question"], ctx))],
            passages=passages,
            deadline_ms=self._left_ms(ctx),
        )
        try:
            answer = self._chat(ctx, call)
        except PlatformError:
            return ABSTAIN, "none"  # no quote we can vouch for: say so rather than guess
        return answer.message.content or ABSTAIN, answer.gateway.target

    # Finalize and MarkFailed ----------------------------------------------------------------------------------

    def finalize(self, state: dict[str, Any]) -> dict[str, Any]:
        ctx, final = state["ctx"], state["final"]
        item = self.store.turn_item(ctx["tenant"], ctx["conversation_id"], ctx["turn"])
        answer = final["answer"]
        if state.get("cut_off") and final.get("kind") in ("generated", "extractive", "abstained"):
            answer = f"{answer}\n\n(I stopped after {state['step']} tool steps, the limit for one question.)"
        total_ms = max(0, self.clock.now_ms() - int(item.get("created_ms") or self.clock.now_ms()))
        citations = [TurnCitation(**c).model_dump(mode="json") for c in final.get("citations", [])]
        values = {
            "status": TurnStatus.ANSWERED.value,
            "answer": answer,
            "answer_kind": final["kind"],
            "citations": citations,
            "grounded": final.get("grounded"),
            "answered_by": final.get("answered_by"),
            "steps": int(state.get("step", 0)),
            "cut_off": bool(state.get("cut_off")),
            "notes": state.get("notes", []),
            "total_ms": total_ms,
        }
        self.store.update_turn(ctx["tenant"], ctx["conversation_id"], ctx["turn"], values)
        model_ms = float(
            self.store.turn_item(ctx["tenant"], ctx["conversation_id"], ctx["turn"]).get("model_ms_total") or 0
        )
        self._completed(ctx, values, model_ms)
        return {"status": "answered", "turn": ctx["turn"], "answer_kind": final["kind"]}

    def fail(self, state: dict[str, Any]) -> dict[str, Any]:
        ctx = state["ctx"]
        failure = state.get("failure") or {}
        error = str(failure.get("Error") or "States.Runtime")
        what = "the language model" if error in _MODEL_ERRORS else "a step of the agent"
        text = (
            f"I could not answer this because {what} failed ({error}). Your message is saved; please try again in a "
            "moment."
        )
        item = self.store.turn_item(ctx["tenant"], ctx["conversation_id"], ctx["turn"])
        total_ms = max(0, self.clock.now_ms() - int(item.get("created_ms") or self.clock.now_ms()))
        values = {
            "status": TurnStatus.FAILED.value,
            "answer": text,
            "answer_kind": AnswerKind.SAFE.value,
            "failure": error,
            "total_ms": total_ms,
            "notes": state.get("notes", []),
        }
        self.store.update_turn(ctx["tenant"], ctx["conversation_id"], ctx["turn"], values)
        self._completed(ctx, values, float(item.get("model_ms_total") or 0))
        return {"status": "failed", "turn": ctx["turn"], "failure": error}

    def _completed(self, ctx: dict[str, Any], values: dict[str, Any], model_ms: float) -> None:
        metrics = telemetry("orchestrator").metrics  # business metrics: the dashboard's turn outcomes and latency
        answered = values["status"] == TurnStatus.ANSWERED.value
        metrics.add_metric(name="TurnsAnswered" if answered else "TurnsFailed", unit="Count", value=1)
        metrics.add_metric(name="TurnLatencyMs", unit="Milliseconds", value=float(values["total_ms"]))
        if self.bus is None:
            return
        try:
            self._publish(self.bus, ctx, {**values, **self._evaluated(ctx)}, model_ms)
        except PlatformError as exc:
            # The turn is answered and stored: a lost event costs an evaluation sample, not the user's answer.
            telemetry("orchestrator").logger.warning(
                "turn.completed not published", extra={"error": type(exc).__name__}
            )

    def _evaluated(self, ctx: dict[str, Any]) -> dict[str, Any]:
        """What the evaluation service scores a turn by (agentplatform.evaluation.TurnSample): the passages the
        answer's [n] refer to (text cut to PASSAGE_CHARS: EventBridge takes 256 KB), tools, tokens, cost, time."""
        tenant, conversation_id, turn = ctx["tenant"], ctx["conversation_id"], ctx["turn"]
        item = self.store.turn_item(tenant, conversation_id, turn)
        runs = self.store.runs(tenant, conversation_id, turn)
        return {
            "passages": [
                {"ref": p.ref, "doc_id": p.citation.doc_id, "title": p.citation.title, "text": p.text[:PASSAGE_CHARS]}
                for p in self._passages(ctx)
            ],
            "tools": [{"name": r.name, "status": r.status, "duration_ms": r.duration_ms} for r in runs],
            "tokens_in": int(item.get("tokens_in") or 0),
            "tokens_out": int(item.get("tokens_out") or 0),
            "cost_usd": int(item.get("cost_micro_usd") or 0) / 1_000_000,
            "completed_ms": self.clock.now_ms(),
        }

    @staticmethod
    def _publish(bus: EventBus, ctx: dict[str, Any], values: dict[str, Any], model_ms: float) -> None:
        bus.publish(
            "agentplatform.orchestrator",
            "turn.completed",
            {
                "tenant": ctx["tenant"],
                "user": ctx["user"],
                "conversation_id": ctx["conversation_id"],
                "turn": ctx["turn"],
                "status": values["status"],
                "answer_kind": values.get("answer_kind"),
                "failure": values.get("failure"),
                "question": ctx.get("question", ""),
                "answer": values.get("answer", ""),
                "citations": values.get("citations", []),
                "model_ms": model_ms,
                "total_ms": values.get("total_ms"),
                "answered_by": values.get("answered_by"),
                **{k: values[k] for k in _EVALUATED if k in values},
            },
        )


_EVALUATED = ("passages", "tools", "tokens_in", "tokens_out", "cost_usd", "completed_ms")

_MODEL_ERRORS = {
    "UpstreamUnavailable",
    "UpstreamThrottled",
    "ModelOutputInvalid",
    "ModelInputRejected",
    "BudgetExceeded",
    "QuotaExceeded",
}
_CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _needs_model(runs: list[ToolRun]) -> bool:
    """`when_needed`: the model is asked for more tools only when no search found a passage, or a tool of the
    last step failed (the model may try another query or tool)."""
    last = max(r.step for r in runs)
    if any(r.status == "error" for r in runs if r.step == last):
        return True
    return not any(r.name == "knowledge_search" and r.status == "ok" and (r.result or {}).get("passages") for r in runs)


def _supported(report: grounding.GroundingReport, text: str, provider: str) -> bool:
    """Grounded enough to present. `grounding.check` counts marker-less text as an abstention (supported); from a
    generator (not the extractive provider, whose only marker-less text is its abstention) given passages,
    marker-less text (empty included) that does not say it does not know is an uncited claim, so it is not."""
    if not report.supported:
        return False
    return not report.abstained or provider == "extractive" or grounding.says_unknown(text)


def _call(
    step: int, index: int, name: str, arguments: Any, call_id: str | None = None, *, side_effect: bool = False
) -> dict[str, Any]:
    # The id keys the call's run row: the model's own when it is usable, else one made from the step.
    # `side_effect` (from the tools' listing) makes RunTool claim the call before it runs.
    usable = call_id if call_id and _CALL_ID.match(call_id) else None
    return {"id": usable or f"s{step}c{index}", "name": name, "arguments": arguments, "side_effect": side_effect}


def _hinted(text: str, ctx: dict[str, Any]) -> str:
    """A search or answer question with the user's recalled context (lowercase: the extractive answerer reads
    capitalised words as names a passage must hold)."""
    hints = ctx.get("hints") or []
    return f"{text} ({'; '.join(hints)})" if hints else text


def _caller(ctx: dict[str, Any], *, step: int = 0, call_id: str = "", idempotency_key: str = "") -> ToolCaller:
    return ToolCaller(
        tenant=ctx["tenant"],
        user=ctx["user"],
        groups=tuple(ctx.get("groups") or ()),
        conversation_id=ctx["conversation_id"],
        turn=int(ctx["turn"]),
        step=step,
        call_id=call_id,
        idempotency_key=idempotency_key,
    )


def _summary(run: ToolRun) -> dict[str, Any]:
    """What a Map iteration returns: small (the result itself stays on its row)."""
    return {"call_id": run.call_id, "name": run.name, "status": run.status, "error": run.error}


def _citation(p: Passage) -> dict[str, Any]:
    return {"ref": p.ref, **p.citation.model_dump()}
