"""The extractive provider: quotes the passages' best sentences with their markers, or abstains."""

from __future__ import annotations

import pytest

from agentplatform import grounding
from agentplatform.errors import ModelInputRejected
from agentplatform.inference import ChatMessage
from agentplatform.llm import ChatCall, Passage
from agentplatform.retrieval import Citation
from functions.llm_gateway.providers.extractive import ABSTENTION, ExtractiveProvider, Weights
from tests.fakes import MemoryEmbeddings


def passage(ref: int, text: str, path: str, title: str, section: str = "") -> Passage:
    cite = Citation(doc_id=f"d{ref}", doc_version="v1", path=path, title=title, section=section)
    header = f"[{ref}] {title} | {path}" + (f" | section: {section}" if section else "")
    return Passage(ref=ref, text=f"{header}\n{text}", citation=cite)


US = passage(
    1,
    "Hotels\nThe nightly hotel limit is USD 250 in New York, San Francisco and Boston, and USD 180 in all other US "
    "cities. Rooms above the limit need a written justification attached to the expense report.",
    "finance/travel-us.docx",
    "Travel and Expense Policy (US)",
    "Hotels",
)
EU = passage(
    2,
    "Hotels\nThe nightly hotel limit is EUR 200 in London, Paris and Amsterdam, and EUR 150 in all other cities. "
    "Rooms above the limit need a written justification attached to the expense report.",
    "finance/travel-eu.docx",
    "Travel and Expense Policy (EU)",
    "Hotels",
)
MANUAL = passage(
    3,
    "4. Spare parts\nStandard sintered brake pads: part number BRK-220-S. Organic brake pads for quieter operation: "
    "part number BRK-220-O. Spare parts are ordered through the dealer portal; the minimum order is 10 units.",
    "products/manual.pdf",
    "BR-220 Brake Kit Manual",
    "4. Spare parts",
)
RUNBOOK = passage(
    4,
    "Error codes\nThe endpoint agent reports these error codes:\n- E-4012: the agent lost contact with the console "
    "for more than 24 hours.\n- E-4013: tamper protection was disabled on the device.",
    "it/runbook.md",
    "IT Security Runbook",
    "Error codes",
)


@pytest.fixture
def embeddings() -> MemoryEmbeddings:
    return MemoryEmbeddings(dimension=64)


@pytest.fixture
def provider(embeddings: MemoryEmbeddings) -> ExtractiveProvider:
    return ExtractiveProvider(embeddings)


def call(question: str, passages: list[Passage]) -> ChatCall:
    return ChatCall(
        tenant="acme",
        messages=[
            ChatMessage(role="system", content="Answer from the passages."),
            ChatMessage(role="user", content="hello"),
            ChatMessage(role="assistant", content="Hi, how can I help?"),
            ChatMessage(role="user", content=question),
        ],
        passages=passages,
    )


def test_answers_the_last_user_message_with_the_sentence_that_states_the_fact(provider) -> None:
    response = provider.chat(
        call("What is the part number of the standard sintered pads?", [US, MANUAL, RUNBOOK]),
        model="extractive",
        timeout_s=5,
    )
    text = response.choices[0].message.content
    assert "BRK-220-S [3]" in text
    assert response.choices[0].finish_reason == "stop" and response.model == "extractive"
    assert response.usage.prompt_tokens > response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_the_answer_passes_the_grounding_check(provider) -> None:
    passages = [US, EU, MANUAL]
    text = provider.answer("What's the hotel cap per night in Paris for EU staff?", passages).text
    report = grounding.check(text, passages)
    assert report.supported and not report.abstained and report.cited_refs[0] == 2


def test_the_region_the_question_names_picks_the_passage(provider) -> None:
    us = provider.answer("How much may a hotel cost per night in New York under the US policy?", [EU, US])
    eu = provider.answer("How much may a hotel cost per night in Paris under the EU policy?", [US, EU])
    assert "USD 250" in us.text and "[1]" in us.text
    assert "EUR 200" in eu.text and "[2]" in eu.text


def test_abstains_when_the_passages_lack_what_the_question_names(provider) -> None:
    extract = provider.answer("What is the nightly hotel limit in Tokyo?", [US, EU])
    assert extract.abstained and extract.text == ABSTENTION
    assert grounding.is_abstention(extract.text)
    assert extract.best is not None and extract.best.named_coverage < 1.0


def test_a_compound_question_gets_each_of_its_answers_and_says_which_it_could_not_find(provider) -> None:
    both = provider.answer(
        "What is the part number of the standard sintered pads? And what does error E-4013 mean?", [MANUAL, RUNBOOK]
    )
    assert "BRK-220-S [3]" in both.text and "tamper protection was disabled on the device [4]" in both.text
    assert grounding.check(both.text, [MANUAL, RUNBOOK]).supported
    one = provider.answer(
        "What is the part number of the sintered pads? And what is the hotel limit in Tokyo?", [MANUAL, US]
    )
    assert "BRK-220-S [3]" in one.text and 'could not find "And what is the hotel limit in Tokyo?"' in one.text
    assert grounding.check(one.text, [MANUAL, US]).supported
    none = provider.answer("What is the hotel limit in Tokyo? And in Lagos?", [US, EU])
    assert none.abstained and none.text == ABSTENTION


def test_abstains_on_weak_evidence_whatever_the_best_cosine(provider) -> None:
    extract = provider.answer("Can I bring my dog to work on Fridays?", [US, EU, MANUAL])
    assert extract.abstained
    assert not provider.answer("What is the minimum order of spare parts?", [MANUAL]).abstained


def test_a_sentence_that_opens_a_list_brings_its_neighbour(provider) -> None:
    extract = provider.answer("Which error codes does the endpoint agent report?", [RUNBOOK])
    assert not extract.abstained
    assert "these error codes [4]:" in extract.text and "E-4012" in extract.text
    assert len(extract.chosen) <= provider.max_sentences


def test_headings_are_not_quoted(provider) -> None:
    extract = provider.answer("Which spare parts are there for the brake kit?", [MANUAL])
    assert not extract.text.startswith("4. Spare parts")
    assert all(c.text != "4. Spare parts" for c in extract.chosen)


def test_one_embedding_call_for_the_question_and_its_candidates(provider, embeddings) -> None:
    provider.answer("What is the part number of the organic pads?", [US, MANUAL, RUNBOOK])
    assert len(embeddings.calls) == 1
    question, *candidates = embeddings.calls[0]
    assert question.startswith("What is the part number") and len(candidates) >= 6


def test_each_sentence_is_embedded_after_its_documents_title_and_section(provider, embeddings) -> None:
    provider.answer("What is the part number of the organic pads?", [MANUAL])
    _, *candidates = embeddings.calls[0]
    assert candidates and all(c.startswith("BR-220 Brake Kit Manual: 4. Spare parts: ") for c in candidates)


def test_a_sentence_two_passages_share_is_quoted_once(provider) -> None:
    # Overlapping chunks, or a document and its other version, bring the same sentence twice.
    again = passage(5, MANUAL.text.split("\n", 1)[1], "products/manual-copy.pdf", "BR-220 Brake Kit Manual")
    extract = provider.answer("What is the part number of the organic brake pads?", [MANUAL, again])
    keys = [" ".join(c.text.lower().split()) for c in extract.chosen]
    assert not extract.abstained and len(keys) == len(set(keys))


def test_a_prompt_that_quotes_passages_is_answered_for_its_question_line(provider) -> None:
    quoted = f"Passages:\n{MANUAL.text}\n{US.text}\n\nQuestion: What is the nightly hotel limit in Boston?\nCite."
    response = provider.chat(call(quoted, [US, MANUAL]), model="extractive", timeout_s=5)
    assert "USD 250" in response.choices[0].message.content


def test_without_passages_or_a_user_message_the_call_is_refused(provider) -> None:
    with pytest.raises(ModelInputRejected):
        provider.chat(call("What is the hotel limit?", []), model="extractive", timeout_s=5)
    only_system = ChatCall(tenant="acme", messages=[ChatMessage(role="system", content="x")], passages=[US])
    with pytest.raises(ModelInputRejected):
        provider.chat(only_system, model="extractive", timeout_s=5)


def test_embed_passes_through_with_usage(provider) -> None:
    vectors, usage = provider.embed(["one text", "another text"], model="extractive", timeout_s=5)
    assert len(vectors) == 2 and len(vectors[0]) == 64 and usage.prompt_tokens > 0


@pytest.mark.slow
def test_with_the_real_minilm_model(tmp_path) -> None:
    """The local MiniLM embedding engine (ONNX, as the model server hosts it) behind the provider."""
    from endpoints.embedding.engine import SentenceEmbedder

    engine = SentenceEmbedder.load(backend="onnx", cache_dir=tmp_path, threads=1)

    class MiniLM:
        dimension = engine.dimension

        def embed(self, texts):
            return engine.embed(list(texts)).tolist()

    provider = ExtractiveProvider(MiniLM())
    passages = [US, EU, MANUAL, RUNBOOK]
    answer = provider.answer("What does the agent error E-4012 mean?", passages)
    assert "24 hours" in answer.text and "[4]" in answer.text
    assert grounding.check(answer.text, passages).supported
    typed = provider.answer("What does E4013 mean?", passages)  # as users type it
    assert "tamper protection was disabled" in typed.text and grounding.check(typed.text, passages).supported
    paraphrase = provider.answer("How much can I spend on a room per night in Amsterdam?", passages)
    assert "EUR 200" in paraphrase.text
    assert provider.answer("What is the hotel limit per night in Tokyo for APAC staff?", passages).abstained
    assert provider.answer("Who won the football world cup in 2022?", passages).abstained


def test_an_identifier_typed_without_its_separator_finds_the_sentence_that_writes_it(provider) -> None:
    best = provider.answer("What does E4013 mean?", [MANUAL, RUNBOOK]).best
    assert best is not None and best.text.startswith("E-4013: tamper protection")
    assert (best.sentence_terms, best.named_coverage) == (1.0, 1.0)  # the answer then rests on the cosine


def test_a_sentence_about_a_sibling_of_the_asked_identifier_is_not_its_answer(provider) -> None:
    targets = passage(
        5,
        "Response time targets\nFor a SEV1, the on-call engineer acknowledges the page within 5 minutes and the first "
        "customer update is published within 15 minutes. For a SEV2, acknowledge within 15 minutes and publish the "
        "first update within 30 minutes.",
        "it/runbook.html",
        "Incident Response Runbook",
        "Response time targets",
    )
    extract = provider.answer("How fast does the on-call engineer acknowledge a SEV2 page?", [targets])
    assert extract.best is not None and extract.best.text.startswith("For a SEV2")
    sev1 = next(c for c in extract.ranked if c.text.startswith("For a SEV1"))
    assert sev1.names_sibling and sev1.score < extract.best.score
    both = provider.answer("Do SEV1 and SEV2 pages need acknowledging?", [targets]).ranked
    assert not any(c.names_sibling for c in both)  # a question naming both has no sibling to avoid


def test_the_sentence_explaining_the_asked_identifier_wins_over_one_mentioning_it(embeddings) -> None:
    mention = passage(
        7,
        "Playbook\nE-3301 alarms for many robots at once point to the network. Check the switch first.",
        "it/runbook.html",
        "Incident Response Runbook",
        "Playbook",
    )
    codes = passage(
        8,
        "Connectivity errors\nE-3301: a robot missed its heartbeats and is shown offline. E-3307: a certificate "
        "expired.",
        "products/error-codes.md",
        "Orbit error codes",
        "Connectivity errors",
    )
    ranked = ExtractiveProvider(embeddings).answer("E-3301", [mention, codes]).ranked
    by_text = {c.text.split(" ")[0]: c for c in ranked}
    plain = ExtractiveProvider(embeddings, weights=Weights(definition_bonus=0.0)).answer("E-3301", [mention, codes])
    before = {c.text.split(" ")[0]: c for c in plain.ranked}
    assert by_text["E-3301:"].score == pytest.approx(before["E-3301:"].score + Weights().definition_bonus)
    assert by_text["E-3301"].score == pytest.approx(before["E-3301"].score)  # a mention: as it was


def test_an_acronym_finds_the_sentence_that_spells_it_out(provider) -> None:
    objectives = passage(
        6,
        "Recovery objectives\nTier 1 systems have a recovery point objective of 15 minutes and a recovery time "
        "objective of 1 hour. Every tier 1 system is restored every quarter and the restore time is recorded.",
        "it/backup.md",
        "Backup and Recovery Standard",
        "Recovery objectives",
    )
    best = provider.answer("What is the RTO for tier 1 systems?", [objectives]).best
    assert best is not None and "recovery time objective of 1 hour" in best.text
    assert best.named_coverage == 1.0  # RTO, which the passage never writes, is found in its words


def test_a_place_the_question_names_by_its_adjective_is_found_in_the_passage(provider) -> None:
    leave = passage(
        7,
        "Paid time off\nFull-time employees in the Netherlands receive 27 days of paid holiday a year.",
        "hr/handbook.docx",
        "Employee Handbook",
        "Paid time off",
    )
    assert "27 days" in provider.answer("How many holiday days do Dutch employees get?", [leave]).text
    assert provider.answer("How many holiday days do Japanese employees get?", [leave]).abstained
