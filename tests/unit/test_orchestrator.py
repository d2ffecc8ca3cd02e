"""The agent loop's steps over in-memory fakes, driven the way agent_loop.asl.json moves between them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentplatform.conversations import ConversationStore, ToolRun
from agentplatform.errors import UpstreamUnavailable
from agentplatform.memory import Recollection
from agentplatform.questions import sub_queries
from agentplatform.tools import ToolCaller, ToolCallRequest, ToolsClient
from functions.orchestrator.service import ABSTAIN, AgentLoop, Clock
from functions.tools.policy import ToolPolicy
from functions.tools.registry import ToolRegistry, ToolSpec, default_specs
from functions.tools.service import ToolService
from tests.fakes import MemoryEventBus, MemoryFunction, MemoryTable

EXEC = "arn:aws:states:us-east-1:123456789012:execution:agent_loop:c_1-1"
PASSAGE = "Inspect the turbine blades for cracks after every hundred hours of flight."


def search_result(query: str, texts: list[str]) -> dict[str, Any]:
    hits = [
        {
            "chunk_id": f"d{i}:1:0",
            "score": 0.9 - i / 10,
            "text": text,
            "citation": {"doc_id": f"d{i}", "doc_version": "1", "path": f"d{i}.md", "title": f"Doc {i}", "page": 2},
        }
        for i, text in enumerate(texts)
    ]
    return {
        "query": query,
        "mode": "hybrid",
        "hits": hits,
        "context": {"text": "", "tokens": 0, "budget": 0, "pieces": []},
    }


def answer(content: str | None = None, tool_calls: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    calls = [
        {"id": f"k{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in enumerate(tool_calls or [])
    ]
    return {
        "message": {"role": "assistant", "content": content, "tool_calls": calls or None},
        "finish_reason": "tool_calls" if calls else "stop",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "gateway": {
            "target": "t",
            "provider": "p",
            "cache": "miss",
            "attempts": 1,
            "overhead_ms": 2.0,
            "latency_ms": 12.0,
            "cost_usd": 0.0,
            "policy_version": 1,
        },
    }


class Gateway:
    """A scripted llm_gateway: `tool_use` and `chat` answers from their own queues (or raising)."""

    def __init__(self, tool_use: list[Any] | None = None, chat: list[Any] | None = None) -> None:
        self.script = {"tool_use": list(tool_use or []), "chat": list(chat or [])}
        self.calls: list[dict[str, Any]] = []

    def __call__(self, call: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(call)
        queue = self.script[call["task"]]
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item(call) if callable(item) else item


def tool_request(service: ToolService, request: dict[str, Any]) -> dict[str, Any]:
    """The tools function's dispatch (functions/tools/handler.py), in-process."""
    if request["action"] == "describe":
        return service.describe(ToolCaller.model_validate(request["caller"])).model_dump(mode="json")
    return service.call(ToolCallRequest.model_validate(request)).model_dump(mode="json")


@pytest.fixture
def world():
    store = ConversationStore(MemoryTable())
    retrieval_calls: list[dict[str, Any]] = []

    def retrieval(request: dict[str, Any]) -> dict[str, Any]:
        retrieval_calls.append(request)
        return search_result(request["query"], [PASSAGE, "Cabin pressure is held near eight thousand feet."])

    class World:
        pass

    w = World()
    w.store, w.retrieval_calls, w.bus = store, retrieval_calls, MemoryEventBus()
    w.retrieval = MemoryFunction("retrieval", retrieval)
    w.now = [1_000_000]
    w.clock = Clock(now_ms=lambda: w.now[0])

    def make(gateway: Gateway, specs: list[ToolSpec] | None = None, **options: Any) -> AgentLoop:
        w.gateway = gateway
        specs = specs or default_specs()
        policy = ToolPolicy(version="t", tenants={"*": {"allow": ["*"]}})
        service = ToolService(ToolRegistry(specs), lambda: policy, {"retrieval_function": w.retrieval})
        tools = MemoryFunction("tools", lambda r: tool_request(service, r))
        return AgentLoop(
            store, MemoryFunction("llm_gateway", gateway), ToolsClient(tools), bus=w.bus, clock=w.clock, **options
        )

    w.make = make
    return w


def start(w, question: str, *, max_steps: int = 4, tenant: str = "acme") -> dict[str, Any]:
    conversation = w.store.create(tenant, "alice")
    turn = w.store.add_turn(tenant, "alice", conversation.id, question)
    w.store.update_turn(tenant, conversation.id, turn.turn, {"created_ms": w.now[0]})
    ctx = {
        "tenant": tenant,
        "user": "alice",
        "groups": ["engineering"],
        "conversation_id": conversation.id,
        "turn": turn.turn,
        "max_steps": max_steps,
        "wall_clock_s": 60,
        "escalation_timeout_s": 600,
    }
    return {"ctx": ctx}


def drive(loop: AgentLoop, state: dict[str, Any], *, until_escalation: bool = True) -> dict[str, Any]:
    """The ASL's transitions, in-process: LoadContext -> CallModel -> (Map -> Append)* -> Answer -> Finalize."""
    state = loop.load(state, EXEC) if "step" not in state else state
    nxt = state.get("next", "model")
    while True:
        if nxt == "model":
            state = loop.call_model(state)
            nxt = "tools" if state["decision"]["has_tools"] else "answer"
        elif nxt == "tools":
            results = [
                loop.run_tool({"ctx": state["ctx"], "step": state["step"], "call": c}, EXEC)
                for c in state["decision"]["tool_calls"]
            ]
            state = loop.append({**state, "tool_results": results}, EXEC)
            nxt = state["next"]
        elif nxt == "escalate":
            loop.escalate(state, "token-1")
            return state
        elif nxt == "answer":
            state = loop.answer(state)
            nxt = "finalize"
        elif nxt == "finalize":
            loop.finalize(state)
            return state


def turn_of(w, state: dict[str, Any]):
    ctx = state["ctx"]
    return w.store.turn(ctx["tenant"], ctx["user"], ctx["conversation_id"], ctx["turn"])


def grounded_chat(call: dict[str, Any]) -> dict[str, Any]:
    return answer(f"{call['passages'][0]['text']} [1]")


def test_retrieval_first_then_a_grounded_cited_answer(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    state = drive(loop, start(world, "How often are the turbine blades inspected?"))
    turn = turn_of(world, state)
    assert turn.status == "answered" and turn.answer_kind == "generated" and turn.grounded is True
    assert turn.answered_by == "t"
    assert turn.answer.endswith("[1]") and "hundred hours" in turn.answer
    assert [(c.ref, c.doc_id, c.path, c.page) for c in turn.citations] == [(1, "d0", "d0.md", 2)]
    assert [r.name for r in turn.tool_runs] == ["knowledge_search"]
    # The first search was the orchestrator's own plan: the model was asked only after it.
    assert [c["task"] for c in world.gateway.calls] == ["tool_use", "chat"]
    assert world.retrieval_calls[0]["tenant"] == "acme" and world.retrieval_calls[0]["acl_groups"] == ["engineering"]
    assert turn.model_ms == 20.0  # provider time only: (12 - 2) ms per call, two calls
    event = world.bus.events[-1]
    assert event["detail-type"] == "turn.completed" and event["detail"]["citations"][0]["doc_id"] == "d0"


def test_tool_messages_carry_the_results_the_model_sees(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    drive(loop, start(world, "blades?"))
    messages = world.gateway.calls[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert json.loads(messages[-1]["content"])["passages"][0]["citation"]["doc_id"] == "d0"
    assert {t["function"]["name"] for t in world.gateway.calls[0]["tools"]} >= {"knowledge_search", "escalate_to_human"}


def test_an_unsupported_answer_is_retried_quoted_then_replaced_by_the_extractive_one(world):
    made_up = answer("The blades are replaced every 7 days [1].")
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[made_up, made_up, grounded_chat]))
    state = drive(loop, start(world, "How often are the turbine blades inspected?"))
    turn = turn_of(world, state)
    chats = [c for c in world.gateway.calls if c["task"] == "chat"]
    assert len(chats) == 3
    assert "Passages:" in chats[1]["messages"][-1]["content"]  # the retry quotes them
    assert chats[2].get("model") == "extractive"
    assert turn.answer_kind == "extractive" and "hundred hours" in turn.answer and "7 days" not in turn.answer
    assert turn.answer.startswith("I could not verify a written answer")


def test_no_passages_means_it_says_it_does_not_know_without_a_model_call(world):
    world.retrieval._handler = lambda request: search_result(request["query"], [])
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    state = drive(loop, start(world, "What is the CEO's shoe size?"))
    turn = turn_of(world, state)
    assert turn.answer == ABSTAIN and turn.answer_kind == "abstained" and turn.citations == []
    assert all(c["task"] != "chat" for c in world.gateway.calls)


def test_a_model_that_keeps_calling_tools_is_cut_off_at_max_steps(world):
    loop = world.make(
        Gateway(tool_use=[answer(tool_calls=[("knowledge_search", {"query": "more"})])], chat=[grounded_chat])
    )
    state = drive(loop, start(world, "blades?", max_steps=3))
    turn = turn_of(world, state)
    assert turn.cut_off is True and turn.steps == 3
    assert "stopped after 3 tool steps" in turn.answer
    assert sorted({r.step for r in turn.tool_runs}) == [0, 1, 2]


def test_the_wall_clock_cuts_the_loop_off_too(world):
    def slow(call):
        world.now[0] += 70_000  # past the 60 s wall clock
        return answer(tool_calls=[("knowledge_search", {"query": "more"})])

    loop = world.make(Gateway(tool_use=[slow], chat=[grounded_chat]))
    state = drive(loop, start(world, "blades?", max_steps=10))
    assert turn_of(world, state).cut_off is True and state["step"] == 2


def test_an_injected_tenant_argument_is_an_invalid_call_the_model_sees(world):
    injected = answer(tool_calls=[("knowledge_search", {"query": "secrets", "tenant": "globex"})])
    loop = world.make(Gateway(tool_use=[injected, answer("done")], chat=[grounded_chat]))
    state = drive(loop, start(world, "blades?"))
    run = next(r for r in turn_of(world, state).tool_runs if r.step == 1)
    assert run.status == "error" and "tenant" in run.error and "Additional properties" in run.error
    assert all(c["tenant"] == "acme" for c in world.retrieval_calls) and len(world.retrieval_calls) == 1


def test_a_tool_run_is_never_repeated_for_one_key(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    state = loop.call_model(loop.load(start(world, "blades?"), EXEC))
    item = {"ctx": state["ctx"], "step": 0, "call": state["decision"]["tool_calls"][0]}
    first = loop.run_tool(item, EXEC)
    again = loop.run_tool(item, EXEC)  # a retried Map iteration
    assert first == again and first["status"] == "ok"
    assert len(world.retrieval_calls) == 1


def test_two_calls_in_one_step_and_a_crashed_one_is_a_result(world):
    two = answer(tool_calls=[("knowledge_search", {"query": "a"}), ("knowledge_search", {"query": "b"})])
    loop = world.make(Gateway(tool_use=[two, answer("done")], chat=[grounded_chat]))
    state = loop.call_model(loop.load(start(world, "blades?"), EXEC))
    results = [
        loop.run_tool({"ctx": state["ctx"], "step": 0, "call": c}, EXEC) for c in state["decision"]["tool_calls"]
    ]
    state = loop.call_model(loop.append({**state, "tool_results": results}, EXEC))
    calls = state["decision"]["tool_calls"]
    assert [c["arguments"]["query"] for c in calls] == ["a", "b"]
    ok = loop.run_tool({"ctx": state["ctx"], "step": 1, "call": calls[0]}, EXEC)
    crashed = {"call_id": calls[1]["id"], "crashed": True, "error": "States.Timeout"}  # what ToolCrashed passes
    state = loop.append({**state, "tool_results": [ok, crashed]}, EXEC)
    runs = {r.call_id: r for r in turn_of(world, state).tool_runs if r.step == 1}
    assert runs[calls[0]["id"]].status == "ok"
    assert runs[calls[1]["id"]].status == "error" and "States.Timeout" in runs[calls[1]["id"]].error
    assert state["next"] == "model"


def test_asking_for_a_person_escalates_and_each_resolution_has_its_outcome(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    ids: dict[str, str] = {}
    for action, kind in (
        ("answer", "operator"),
        ("reject", "refusal"),
        ("timeout", "timeout"),
        ("approve", "generated"),
    ):
        state = drive(loop, start(world, "Can I speak to a human about the blades?"))
        assert state["next"] == "escalate"
        ctx = state["ctx"]
        (escalation,) = [e for e in world.store.escalations("acme") if e.conversation_id == ctx["conversation_id"]]
        ids[action] = escalation.id
        assert escalation.reason == "the user asked for a person" and turn_of(world, state).status == "waiting"
        assert world.store.escalation_item("acme", escalation.id)["token"] == "token-1"
        resolution = {"action": action, "text": "Monday."} if action != "timeout" else None
        state = loop.resume({**state, "resolution": resolution} if resolution else state)
        if state["next"] == "finalize":
            loop.finalize(state)
        else:
            drive(loop, state)
        turn = turn_of(world, {"ctx": ctx})
        assert turn.status == "answered" and turn.answer_kind == kind, (action, turn)
    # The timeout closes its escalation itself; the API closes the others when an operator resolves them.
    assert world.store.escalation("acme", ids["timeout"]).status == "timed_out"
    assert world.store.escalation("acme", ids["answer"]).status == "open"


def test_a_tool_that_needs_approval_runs_only_after_it_and_once(world):
    sent: list[str] = []
    email = ToolSpec(
        name="send_note",
        description="Send a note.",
        parameters={"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]},
        result_schema={"type": "object", "required": ["sent"]},
        run=lambda args, ctx: sent.append(ctx.idempotency_key) or {"sent": True},
        requires_approval=True,
        side_effect=True,
    )
    loop = world.make(
        Gateway(tool_use=[answer(tool_calls=[("send_note", {"to": "ops"})]), answer("done")], chat=[grounded_chat]),
        [*default_specs(), email],
    )
    state = drive(loop, start(world, "Tell ops the blades are fine."))
    assert state["next"] == "escalate" and sent == []
    assert world.store.escalations("acme")[0].pending_tools == ["send_note"]
    state = loop.resume({**state, "resolution": {"action": "approve"}})
    assert state["next"] == "tools"
    state = drive(loop, state)
    assert len(sent) == 1
    run = next(r for r in turn_of(world, state).tool_runs if r.name == "send_note")
    assert run.status == "ok" and run.idempotency_key == sent[0]


def test_the_router_model_down_after_the_search_still_answers_and_says_so(world):
    loop = world.make(Gateway(tool_use=[UpstreamUnavailable("down")], chat=[grounded_chat]))
    state = drive(loop, start(world, "blades?"))
    turn = turn_of(world, state)
    assert turn.status == "answered" and turn.notes == ["tool_use step 1: UpstreamUnavailable"]


def test_a_failed_run_leaves_a_safe_answer_naming_the_failure(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[UpstreamUnavailable("down")]))
    state = loop.load(start(world, "blades?"), EXEC)
    with pytest.raises(UpstreamUnavailable):
        drive(loop, state)
    out = loop.fail({**state, "failure": {"Error": "UpstreamUnavailable", "Cause": "{}"}})
    turn = turn_of(world, state)
    assert out["status"] == "failed" and turn.status == "failed" and turn.failure == "UpstreamUnavailable"
    assert "the language model failed (UpstreamUnavailable)" in turn.answer and turn.question == "blades?"
    assert world.bus.events[-1]["detail"]["status"] == "failed"


def test_history_of_earlier_turns_reaches_the_model(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    first = drive(loop, start(world, "blades?"))
    ctx = first["ctx"]
    second = world.store.add_turn("acme", "alice", ctx["conversation_id"], "and the cabin?")
    state = loop.load({"ctx": {**ctx, "turn": second.turn}}, EXEC)
    assert [m["role"] for m in state["history"]] == ["user", "assistant"]
    assert state["history"][0]["content"] == "blades?"


def test_a_bus_outage_does_not_undo_the_answer(world):
    world.bus.available = False
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    state = drive(loop, start(world, "blades?"))
    assert turn_of(world, state).status == "answered"


@pytest.mark.parametrize(
    ("question", "queries"),
    [
        ("How often are the blades inspected?", ["How often are the blades inspected?"]),
        ("Salt and pepper: what goes with fish?", ["Salt and pepper: what goes with fish?"]),
        (
            "How often are the blades inspected and when is the oil changed?",
            ["How often are the blades inspected", "when is the oil changed?"],
        ),
        ("What is the refund window? Who approves refunds?", ["What is the refund window?", "Who approves refunds?"]),
    ],
)
def test_a_compound_question_is_searched_part_by_part(question, queries):
    assert sub_queries(question) == queries


def test_the_parts_of_a_compound_question_run_in_one_step(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    state = drive(loop, start(world, "How often are the blades inspected and what is the cabin pressure?"))
    first = [r for r in turn_of(world, state).tool_runs if r.step == 0]
    assert [r.arguments["query"] for r in first] == [
        "How often are the blades inspected",
        "what is the cabin pressure?",
    ]


def test_a_side_effect_interrupted_mid_run_is_never_repeated(world):
    sent: list[str] = []
    note = ToolSpec(
        name="send_note",
        description="Send a note.",
        parameters={"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]},
        result_schema={"type": "object", "required": ["sent"]},
        run=lambda args, ctx: sent.append(ctx.idempotency_key) or {"sent": True},
        side_effect=True,
    )
    loop = world.make(Gateway(tool_use=[answer(tool_calls=[("send_note", {"to": "ops"})])]), [*default_specs(), note])
    state = loop.call_model(loop.load(start(world, "Tell ops."), EXEC))
    ctx = state["ctx"]
    call = {"id": "k0", "name": "send_note", "arguments": {"to": "ops"}, "side_effect": True}
    item = {"ctx": ctx, "step": 1, "call": call}
    assert loop.run_tool(item, EXEC)["status"] == "ok" and len(sent) == 1
    assert loop.run_tool(item, EXEC)["status"] == "ok" and len(sent) == 1  # retried: the recorded result

    # An attempt that claimed the call and crashed before recording its outcome.
    crashed = {**item, "call": {**item["call"], "id": "k1"}}
    claim = ToolRun(call_id="k1", name="send_note", step=1, status="started", idempotency_key="x")
    assert world.store.claim_run(ctx["tenant"], ctx["conversation_id"], ctx["turn"], claim, was=None)
    out = loop.run_tool(crashed, EXEC)
    assert out["status"] == "error" and "not repeated" in out["error"] and len(sent) == 1


def test_recalled_memory_joins_the_context_of_the_model_steps(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]))
    loop.recall = lambda tenant, user, conversation, question: Recollection(notes=[f"{user} prefers short answers"])
    drive(loop, start(world, "blades?"))
    for call in world.gateway.calls:
        assert "alice prefers short answers" in " ".join(m.get("content") or "" for m in call["messages"])


# AGENT_MODEL_STEP=when_needed (the local runtime's): the model is asked for tools only when the plan fell short.


def test_when_needed_goes_straight_to_the_answer_when_the_search_found_passages(world):
    loop = world.make(
        Gateway(tool_use=[AssertionError("tool_use must not be called")], chat=[grounded_chat]),
        model_step="when_needed",
    )
    state = drive(loop, start(world, "How often are the turbine blades inspected?"))
    turn = turn_of(world, state)
    assert [c["task"] for c in world.gateway.calls] == ["chat"]
    assert turn.answer_kind == "generated" and turn.grounded is True and "hundred hours" in turn.answer
    assert turn.steps == 1 and turn.cut_off is False and [r.step for r in turn.tool_runs] == [0]


def test_when_needed_asks_the_model_when_the_search_found_nothing(world):
    world.retrieval._handler = lambda request: search_result(
        request["query"], [PASSAGE] if request["query"] == "turbine blades" else []
    )
    again = answer(tool_calls=[("knowledge_search", {"query": "turbine blades"})])
    loop = world.make(
        Gateway(tool_use=[again, AssertionError("asked again")], chat=[grounded_chat]), model_step="when_needed"
    )
    state = drive(loop, start(world, "How often are the blades looked at?"))
    turn = turn_of(world, state)
    # Asked once, after the empty first search; its search found the passage, so no second model step.
    assert [c["task"] for c in world.gateway.calls] == ["tool_use", "chat"]
    assert [(r.step, r.arguments["query"]) for r in turn.tool_runs][1] == (1, "turbine blades")
    assert turn.answer_kind == "generated" and "hundred hours" in turn.answer


def test_when_needed_asks_the_model_when_a_tool_of_the_last_step_failed(world):
    calls = []

    def flaky(request):
        calls.append(request["query"])
        if len(calls) == 1:
            raise UpstreamUnavailable("search is down")
        return search_result(request["query"], [PASSAGE])

    world.retrieval._handler = flaky
    again = answer(tool_calls=[("knowledge_search", {"query": "blades inspection"})])
    loop = world.make(
        Gateway(tool_use=[again, AssertionError("asked again")], chat=[grounded_chat]), model_step="when_needed"
    )
    state = drive(loop, start(world, "blades?"))
    turn = turn_of(world, state)
    assert [r.status for r in turn.tool_runs] == ["error", "ok"]
    assert [c["task"] for c in world.gateway.calls] == ["tool_use", "chat"] and "hundred hours" in turn.answer


def test_always_asks_the_model_after_the_search(world):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[grounded_chat]), model_step="always")
    drive(loop, start(world, "How often are the turbine blades inspected?"))
    assert [c["task"] for c in world.gateway.calls] == ["tool_use", "chat"]


# A generated answer without any [n] marker is an uncited claim, not an abstention.


def from_provider(provider: str, content: str) -> dict[str, Any]:
    out = answer(content)
    out["gateway"] = {**out["gateway"], "target": provider, "provider": provider}
    return out


def test_a_generated_answer_without_markers_is_retried_then_replaced_by_the_extractive_one(world):
    uncited = from_provider("sagemaker", "The blades are inspected every hundred hours of flight.")
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[uncited, uncited, grounded_chat]))
    state = drive(loop, start(world, "How often are the turbine blades inspected?"))
    turn = turn_of(world, state)
    chats = [c for c in world.gateway.calls if c["task"] == "chat"]
    assert len(chats) == 3 and "Passages:" in chats[1]["messages"][-1]["content"]
    assert chats[2].get("model") == "extractive"
    assert turn.answer_kind == "extractive" and turn.answer.startswith("I could not verify a written answer")
    assert turn.answer.endswith("[1]") and [c.ref for c in turn.citations] == [1]
    assert turn.notes == [
        "grounding: first answer unsupported, retried with the passages quoted",
        "grounding: retry unsupported, extractive answer",
    ]


def test_a_generated_answer_without_markers_retried_with_citations_is_kept(world):
    uncited = from_provider("sagemaker", "Every hundred hours.")
    cited = from_provider("sagemaker", f"{PASSAGE} [1]")
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[uncited, cited]))
    turn = turn_of(world, drive(loop, start(world, "How often are the turbine blades inspected?")))
    assert turn.answer_kind == "generated" and turn.grounded is True and turn.answer.endswith("[1]")
    assert len([c for c in world.gateway.calls if c["task"] == "chat"]) == 2


@pytest.mark.parametrize(
    ("provider", "text"),
    [
        ("sagemaker", "I don't know: the passages do not say."),
        ("sagemaker", "The documents do not mention how often."),
        ("bedrock", "I could not find that in the passages."),
        ("extractive", "I found nothing in the passages that answers this."),  # the extractive abstention
    ],
)
def test_a_marker_less_abstention_stays_an_abstention(world, provider, text):
    loop = world.make(Gateway(tool_use=[answer("done")], chat=[from_provider(provider, text)]))
    turn = turn_of(world, drive(loop, start(world, "What is the CEO's shoe size?")))
    assert turn.answer_kind == "abstained" and turn.answer == text and turn.citations == []
    assert len([c for c in world.gateway.calls if c["task"] == "chat"]) == 1


def test_the_model_step_setting_defaults_to_always_and_refuses_other_values(monkeypatch):
    from agentplatform.config import get_settings, reset_settings
    from agentplatform.errors import ConfigurationError

    monkeypatch.delenv("AGENT_MODEL_STEP", raising=False)
    reset_settings()
    try:
        assert get_settings().agent_model_step == "always"
        monkeypatch.setenv("AGENT_MODEL_STEP", "when_needed")
        reset_settings()
        assert get_settings().agent_model_step == "when_needed"
        monkeypatch.setenv("AGENT_MODEL_STEP", "sometimes")
        reset_settings()
        with pytest.raises(ConfigurationError) as raised:
            get_settings()
        assert any("AGENT_MODEL_STEP" in e.loc for e in raised.value.errors)
    finally:
        monkeypatch.delenv("AGENT_MODEL_STEP", raising=False)
        reset_settings()
