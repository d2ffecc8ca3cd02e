"""The memory service over the fakes: extraction, recall scoped to tenant + user, the summary threshold, deletes
that reach the index, and the memory function's handler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentplatform.errors import NotFound, UpstreamUnavailable, ValidationFailed
from agentplatform.memory import MemoryKind, Recollection
from agentplatform.search import SearchFilters, SearchMode, SearchRequest
from functions.memory.service import MemoryService, Turn, entities, extract_facts, pattern_preferences, user_tag
from tests.fakes import MemoryEmbeddings, MemoryFunction, MemorySearchIndex, MemoryTable
from tests.unit.test_orchestrator import Gateway as LoopGateway
from tests.unit.test_orchestrator import answer as loop_answer
from tests.unit.test_orchestrator import drive, grounded_chat, start
from tests.unit.test_orchestrator import world as loop_world  # noqa: F401 - the agent loop's fixture


def answer(content: str) -> dict[str, Any]:
    return {
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "gateway": {
            "target": "scripted",
            "provider": "scripted",
            "cache": "miss",
            "attempts": 1,
            "overhead_ms": 1.0,
            "latency_ms": 2.0,
            "cost_usd": 0.0,
            "policy_version": 1,
        },
    }


class Gateway:
    """The llm_gateway function, scripted per task; records the calls."""

    def __init__(self, **script: Any) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    def __call__(self, call: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(call)
        reply = self.script[call["task"]]
        if isinstance(reply, Exception):
            raise reply
        return answer(reply(call) if callable(reply) else reply)


@pytest.fixture
def world():
    class World:
        table = MemoryTable()
        index = MemorySearchIndex()
        embeddings = MemoryEmbeddings()
        gateway = Gateway(summarize="The user asked about travel allowances and order 10423.")

        def make(self, **kwargs: Any) -> MemoryService:
            fn = MemoryFunction("llm_gateway", self.gateway)
            return MemoryService(self.table, self.index, self.embeddings, gateway=fn, **kwargs)

    return World()


def turn(n: int, question: str, answer_text: str = "", *, user: str = "alice", tenant: str = "acme", conv: str = "c_1"):
    return Turn(tenant, user, conv, n, question, answer_text, answered=bool(answer_text))


# Extraction -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please answer in German from now on.", [("language", "German")]),
        ("reply to me in french", [("language", "French")]),
        ("I'm in the EU office. What is the meal allowance?", [("office", "EU")]),
        ("I\u2019m at the Tokyo office", [("office", "Tokyo")]),
        ("I am based in New York.", [("location", "New York")]),
        ("Call me Sam, thanks", [("name", "Sam")]),
        ("Keep it short please", [("answer_length", "short")]),
        ("These days I work out of the Lisbon office.", [("office", "Lisbon")]),
        ("I would rather read replies in Spanish.", [("language", "Spanish")]),
        ("I'd like answers in French, please", [("language", "French")]),
        # Not statements about the user: questions, other people, non-languages.
        ("Am I in the EU office?", []),
        ("Is Bob in the EU office?", []),
        ("Please answer in detail", []),
        ("What does the policy say about the US office?", []),
        ("Do you work in the EU office?", []),
        ("Is it true that replies in French are slower?", []),
        ("I want the contract in German law terms", []),
    ],
)
def test_preferences_are_extracted_only_from_statements(text, expected):
    assert pattern_preferences(text) == expected


def test_entities_and_the_facts_a_turn_states_about_them():
    assert entities("Where are order #10423, TCK-88 and ticket 5?") == ["order 10423", "TCK-88"]
    t = Turn(
        "acme",
        "alice",
        "c_1",
        3,
        "What is the status of ORD-1042?",
        "ORD-1042 shipped on 3 May [1]. Returns take 14 days [2].",
        answered=True,
    )
    assert extract_facts(t) == [("ORD-1042", "What is the status of ORD-1042? ORD-1042 shipped on 3 May.")]
    # An abstained or failed turn teaches only what the user said.
    assert extract_facts(Turn("acme", "alice", "c_1", 3, t.question, t.answer, answered=False)) == [
        ("ORD-1042", "What is the status of ORD-1042?")
    ]


def test_the_classifier_runs_only_when_enabled_and_no_pattern_matched_and_its_values_must_be_in_the_text(world):
    world.gateway.script["classify"] = json.dumps(
        {"preferences": [{"key": "language", "value": "Klingon"}, {"key": "office", "value": "Lisbon"}]}
    )
    memory = world.make(classify=True)
    assert memory.extract_preferences("acme", "Answer in German") == [("language", "German", "extracted")]
    assert world.gateway.calls == []  # a pattern matched: no model call
    assert memory.extract_preferences("acme", "What is the travel policy?") == []  # no first-person statement
    assert world.gateway.calls == []
    # "Klingon" is not in the message: the model made it up, so it is dropped.
    assert memory.extract_preferences("acme", "These days I work out of Lisbon") == [("office", "Lisbon", "model")]
    assert world.gateway.calls[0]["task"] == "classify"
    assert world.gateway.calls[0]["response_format"]["type"] == "json_schema"
    assert world.make().extract_preferences("acme", "These days I work out of Lisbon") == []  # off by default


def test_a_classifier_that_answers_no_json_extracts_nothing(world):
    world.gateway.script["classify"] = "office: Lisbon"
    assert world.make(classify=True).extract_preferences("acme", "I work out of Lisbon") == []


# Learning and recall ----------------------------------------------------------------------------------------------


def test_a_stated_preference_is_recalled_in_other_conversations_with_its_search_hint(world):
    memory = world.make()
    learned = memory.learn(turn(1, "I'm in the EU office. Answer in German.", "Noted [1]."))
    assert learned["preferences"] == 2
    recalled = memory.recall("acme", "alice", "c_2", "What is the meal allowance?")
    assert recalled.notes == ["Preference: language = German", "Preference: office = EU"]
    assert recalled.search_hints == ["eu office"]  # the office steers search; the language only the prompt
    items = memory.list("acme", "alice", MemoryKind.PREFERENCE)
    assert {(i.key, i.value, i.source, i.conversation_id, i.turn) for i in items} == {
        ("language", "German", "extracted", "c_1", 1),
        ("office", "EU", "extracted", "c_1", 1),
    }


def test_recall_is_scoped_to_tenant_and_user(world):
    memory = world.make()
    memory.learn(turn(1, "I'm in the EU office. Where is ORD-1042?", "ORD-1042 shipped [1].", user="alice"))
    memory.learn(turn(1, "I'm in the US office. Where is ORD-1042?", "ORD-1042 is late [1].", user="bob"))
    memory.learn(turn(1, "I'm in the APAC office. Where is ORD-1042?", "ORD-1042 lost [1].", tenant="globex"))
    for tenant, user, office, status in [
        ("acme", "alice", "eu", "shipped"),
        ("acme", "bob", "us", "late"),
        ("globex", "alice", "apac", "lost"),
    ]:
        recalled = memory.recall(tenant, user, "c_9", "What about ORD-1042?")
        assert recalled.search_hints == [f"{office} office"]
        facts = [n for n in recalled.notes if "ORD-1042" in n]
        assert len(facts) == 1 and status in facts[0], (tenant, user, recalled.notes)
    assert memory.recall("acme", "carol", "c_9", "What about ORD-1042?").notes == []
    # The index itself holds all three; the user tag keeps each user's search to their own.
    vector = world.embeddings.embed(["ORD-1042"])[0]
    hits = world.index.search(
        SearchRequest("acme", "ORD-1042", vector, SearchMode.HYBRID, 10, SearchFilters(tags=(user_tag("bob"),)))
    )
    assert [h.chunk.text for h in hits] == ["ORD-1042: Where is ORD-1042? ORD-1042 is late."]


def test_facts_unrelated_to_the_question_stay_out_of_recall(world):
    memory = world.make()
    memory.learn(turn(1, "Where is ORD-1042?", "ORD-1042 shipped on 3 May [1]."))
    assert memory.recall("acme", "alice", "c_2", "How many vacation days do I get?").notes == []
    assert memory.recall("acme", "alice", "c_2", "and ORD-1042?").notes == [
        "Known from an earlier turn: ORD-1042: Where is ORD-1042? ORD-1042 shipped on 3 May."
    ]


def test_an_index_entry_without_its_row_is_never_recalled(world):
    memory = world.make()
    memory.learn(turn(1, "Where is ORD-1042?", "ORD-1042 shipped on 3 May [1]."))
    memory.learn(turn(2, "Where is ORD-2000?", "ORD-2000 is late [1]."))
    orphan = next(k for k, v in world.table.items.items() if v.get("key") == "ORD-1042")
    del world.table.items[orphan]  # e.g. the local runtime's table reset while the index folder stayed
    assert world.index.count("acme") == 2
    assert memory.recall("acme", "alice", "c_2", "ORD-1042 and ORD-2000?").notes == [
        "Known from an earlier turn: ORD-2000: Where is ORD-2000? ORD-2000 is late."
    ]


def test_learning_the_same_turn_twice_changes_nothing(world):
    memory = world.make(summary_tokens=10_000)
    t = turn(1, "I'm in the EU office. Where is ORD-1042?", "ORD-1042 shipped [1].")
    memory.learn(t)
    before = {k: dict(v) for k, v in world.table.items.items()}
    memory.learn(t)
    assert {k: dict(v) for k, v in world.table.items.items()}.keys() == before.keys()
    summary_row = next(v for v in world.table.items.values() if v["kind"] == "summary")
    assert [p["turn"] for p in summary_row["pending"]] == [1]


# Summaries --------------------------------------------------------------------------------------------------------


def test_a_summary_is_written_when_the_conversation_passes_the_threshold(world):
    memory = world.make(summary_tokens=60)
    long_answer = "The daily meal allowance depends on the office and the city of the trip. " * 2
    assert memory.learn(turn(1, "What is the meal allowance?", long_answer))["summarized"] == 0
    assert memory.learn(turn(2, "And for hotels?", "Hotels are booked through the portal [1]."))["summarized"] == 0
    assert world.gateway.calls == []  # under the threshold: no summary, the loop sends the turns
    assert memory.recall("acme", "alice", "c_1", "ok").summarized_through == 0
    assert memory.learn(turn(3, "What about taxis?", long_answer))["summarized"] == 1
    (call,) = world.gateway.calls
    assert call["task"] == "summarize" and "Turn 1:" in call["messages"][1]["content"]
    assert "Turn 2:" not in call["messages"][1]["content"]  # the recent turns stay out: the loop sends them
    recalled = memory.recall("acme", "alice", "c_1", "ok")
    assert recalled.summarized_through == 1
    assert recalled.notes == [
        "Summary of this conversation through turn 1: The user asked about travel allowances and order 10423."
    ]
    # Another conversation of the same user does not get this one's summary as its own.
    assert memory.recall("acme", "alice", "c_2", "ok").summarized_through == 0
    (summary,) = memory.list("acme", "alice", MemoryKind.SUMMARY)
    assert summary.key == "c_1" and summary.turn == 1 and summary.source == "summarized"


def test_a_failed_summary_keeps_the_turns_for_the_next_try(world):
    world.gateway.script["summarize"] = UpstreamUnavailable("model down")
    memory = world.make(summary_tokens=10)
    for n in (1, 2, 3):
        assert memory.learn(turn(n, "What is the meal allowance?", "It is 60 euros a day [1]."))["summarized"] == 0
    world.gateway.script["summarize"] = "Meal allowance questions."
    assert memory.learn(turn(4, "And taxis?", "Taxis are refunded [1]."))["summarized"] == 2
    assert memory.recall("acme", "alice", "c_1", "ok").summarized_through == 2


# Deletion ---------------------------------------------------------------------------------------------------------


def test_delete_removes_the_memory_from_the_table_and_the_index_and_from_recall(world):
    memory = world.make()
    memory.learn(turn(1, "I'm in the EU office. Where is ORD-1042?", "ORD-1042 shipped [1]."))
    fact = next(i for i in memory.list("acme", "alice") if i.kind == MemoryKind.FACT)
    assert world.index.count("acme") == 1
    assert memory.delete("acme", "alice", fact.id) == 1
    assert world.index.count("acme") == 0
    assert not any("ORD-1042" in n for n in memory.recall("acme", "alice", "c_2", "ORD-1042?").notes)
    with pytest.raises(NotFound):
        memory.delete("acme", "alice", fact.id)
    office = next(i for i in memory.list("acme", "alice") if i.key == "office")
    with pytest.raises(NotFound):
        memory.delete("acme", "bob", office.id)  # another user's id is not found, not deleted
    memory.delete("acme", "alice", office.id)
    assert memory.recall("acme", "alice", "c_2", "meal allowance?").search_hints == []


def test_clear_removes_all_of_the_callers_memory_and_nobody_elses(world):
    memory = world.make(summary_tokens=10)
    for n in (1, 2, 3):
        memory.learn(turn(n, f"I'm in the EU office. Where is ORD-104{n}?", f"ORD-104{n} shipped [1]."))
    memory.learn(turn(1, "Where is ORD-2000?", "ORD-2000 shipped [1].", user="bob"))
    assert world.index.count("acme") == 5  # alice's three facts and her summary, bob's fact
    assert memory.clear("acme", "alice") == 5  # her preference, three facts, the summary
    assert memory.list("acme", "alice") == []
    assert world.index.count("acme") == 1
    assert [i.key for i in memory.list("acme", "bob")] == ["ORD-2000"]


def test_an_explicit_preference_replaces_an_extracted_one(world):
    memory = world.make()
    memory.learn(turn(1, "I'm in the US office.", "Noted."))
    item = memory.put_preference("acme", "alice", "office", " EU ")
    assert (item.key, item.value, item.source) == ("office", "EU", "explicit")
    assert [i.value for i in memory.list("acme", "alice")] == ["EU"]


# The handler ------------------------------------------------------------------------------------------------------


@pytest.fixture
def handler_world(world, monkeypatch):
    from functions.memory import handler as module

    monkeypatch.setattr(module, "service", lambda: world.make())
    return module.handler


def test_the_handler_learns_from_turn_completed_and_answers_recall(handler_world, lambda_context):
    event = {
        "source": "agentplatform.orchestrator",
        "detail-type": "turn.completed",
        "detail": {
            "tenant": "acme",
            "user": "alice",
            "conversation_id": "c_1",
            "turn": 1,
            "status": "answered",
            "answer_kind": "extractive",
            "question": "I'm in the EU office. What is the allowance?",
            "answer": "It is 60 euros [1].",
        },
    }
    assert handler_world(event, lambda_context)["preferences"] == 1
    recalled = handler_world(
        {"action": "recall", "tenant": "acme", "user": "alice", "conversation_id": "c_2", "question": "allowance?"},
        lambda_context,
    )
    assert recalled["search_hints"] == ["eu office"]
    without_user = {**event, "detail": {k: v for k, v in event["detail"].items() if k != "user"}}
    assert handler_world(without_user, lambda_context) == {"learned": False}


def test_the_handler_refuses_a_bad_request_naming_the_field(handler_world, lambda_context):
    with pytest.raises(ValidationFailed) as caught:
        request = {"action": "put_preference", "tenant": "acme", "user": "alice", "key": "Bad Key!", "value": "x"}
        handler_world(request, lambda_context)
    assert any("key" in e.loc for e in caught.value.errors)


# The agent loop's use of a recollection (functions/orchestrator load step) ----------------------------------------


def test_search_hints_steer_the_search_and_the_summary_stands_in_for_the_turns_it_covers(loop_world):  # noqa: F811
    loop = loop_world.make(LoopGateway(tool_use=[loop_answer("done")], chat=[grounded_chat]))
    ctx = start(loop_world, "How often are the blades inspected?")["ctx"]
    conversation = ctx["conversation_id"]
    loop_world.store.update_turn("acme", conversation, 1, {"status": "answered", "answer": "Every 100 hours [1]."})
    loop_world.store.add_turn("acme", "alice", conversation, "And the engines?")
    loop_world.store.update_turn("acme", conversation, 2, {"status": "answered", "answer": "Yearly [1]."})
    third = loop_world.store.add_turn("acme", "alice", conversation, "What is the meal allowance?").turn
    loop.recall = lambda tenant, user, conversation_id, question: Recollection(
        notes=["Summary of this conversation through turn 1: blade inspections."],
        search_hints=["eu office"],
        summarized_through=1,
    )
    drive(loop, {"ctx": {**ctx, "turn": third}})
    assert loop_world.retrieval_calls[0]["query"] == "What is the meal allowance? (eu office)"
    chat = next(c for c in loop_world.gateway.calls if c["task"] == "chat")
    contents = [m.get("content") or "" for m in chat["messages"]]
    assert "How often are the blades inspected?" not in contents  # turn 1 reaches the model as the summary
    assert "And the engines?" in contents and any("through turn 1" in c for c in contents)


def test_the_load_steps_recall_sends_the_turns_identity_and_survives_a_memory_outage():
    from agentplatform.errors import DependencyUnavailable
    from functions.orchestrator.handler import _recall

    memory = MemoryFunction("memory", lambda request: {"notes": ["n"], "search_hints": [], "summarized_through": 3})
    assert _recall(memory)("acme", "alice", "c_1", "q" * 5_000) == Recollection(notes=["n"], summarized_through=3)
    (sent,) = memory.payloads
    assert (sent["action"], sent["tenant"], sent["user"], sent["conversation_id"]) == ("recall", "acme", "alice", "c_1")
    assert len(sent["question"]) == 4_000

    def down(request):
        raise DependencyUnavailable("memory is down")

    assert _recall(MemoryFunction("memory", down))("acme", "alice", "c_1", "q") == Recollection()


def test_a_fact_keeps_its_numbers_whole():
    turn = Turn(
        tenant="acme",
        user="alice",
        conversation_id="c_1",
        turn=1,
        question="What is the status of order SO-10002?",
        answer="Order SO-10002 was placed on 2026-03-16; its total is 10710.0 USD [1].",
        answered=True,
    )
    facts = dict(extract_facts(turn))
    assert facts["SO-10002"].endswith("its total is 10710.0 USD.")
