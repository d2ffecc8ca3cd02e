"""The grounding check: sentences against the passages they cite."""

from __future__ import annotations

import pytest

from agentplatform import grounding
from agentplatform.llm import Passage
from agentplatform.retrieval import Citation
from tests.fakes import MemoryEmbeddings

LEAVE = (
    "[1] Leave Policy | hr/leave-policy.md | section: Annual leave\n"
    "Full-time employees accrue 25 working days of paid annual leave per calendar year. Up to 5 unused days may "
    "be carried over into the next calendar year."
)
HOTELS = "The nightly hotel limit is EUR 200 in London, Paris and Amsterdam, and EUR 150 in all other cities."
PASSAGES = {1: LEAVE, 2: HOTELS}


def test_a_quoted_or_paraphrased_sentence_with_its_marker_is_supported() -> None:
    report = grounding.check("Full-time staff get 25 working days of paid annual leave a year [1].", PASSAGES)
    assert report.supported and report.share_supported == 1.0
    assert report.cited_refs == (1,) and not report.invalid_refs and not report.abstained
    assert report.sentences[0].refs == (1,) and report.sentences[0].lexical >= grounding.LEXICAL_SUPPORT


def test_a_changed_number_is_unsupported_even_when_the_words_match() -> None:
    report = grounding.check("Full-time employees accrue 30 working days of paid annual leave [1].", PASSAGES)
    assert not report.supported
    assert "30" in report.sentences[0].missing and report.sentences[0].score == 0.0


def test_a_sentence_is_tested_against_the_passages_it_cites_only() -> None:
    # True in passage 2, but it cites passage 1.
    report = grounding.check("The hotel limit in Paris is EUR 200 [1].", PASSAGES)
    assert not report.supported
    assert grounding.check("The hotel limit in Paris is EUR 200 [2].", PASSAGES).supported


def test_a_marker_outside_the_passages_is_an_invalid_citation() -> None:
    report = grounding.check("Up to 5 unused days may be carried over [1]. Hotels cost EUR 200 [7].", PASSAGES)
    assert report.invalid_refs == (7,)
    assert not report.supported


def test_share_supported_counts_tested_sentences_and_skips_empty_ones() -> None:
    answer = "Here it is: [1]\nUp to 5 unused days may be carried over [1]. Staff get 40 days off [1]."
    report = grounding.check(answer, PASSAGES)
    tested = [s for s in report.sentences if s.tested]
    assert len(tested) == 2 and report.share_supported == pytest.approx(0.5)
    assert not report.supported
    assert grounding.check(answer, PASSAGES, min_share=0.5).supported


def test_an_uncited_factual_sentence_is_unsupported() -> None:
    report = grounding.check("Up to 5 unused days may be carried over [1]. Parking costs EUR 40.", PASSAGES)
    assert [s.supported for s in report.sentences] == [True, False]


def test_no_marker_is_an_abstention() -> None:
    assert grounding.is_abstention("I could not find this in the documents I searched.")
    assert grounding.is_abstention("")
    assert not grounding.is_abstention("It is 25 days [1].")
    report = grounding.check("I could not find this in the documents I searched.", PASSAGES)
    assert report.abstained and report.supported and report.sentences == []


def test_markers_after_the_full_stop_stay_with_their_sentence() -> None:
    assert grounding.split_sentences("It is 25 days. [1] Five carry over [1].") == [
        "It is 25 days. [1]",
        "Five carry over [1].",
    ]
    assert grounding.citation_refs("a [2] b [1] c [2]") == [2, 1]


def test_identifiers_and_numbers_stay_whole() -> None:
    assert grounding.tokens("Order BRK-220-S for EUR 14.90 by 07:00.") == [
        "order",
        "brk-220-s",
        "for",
        "eur",
        "14.90",
        "by",
        "07:00",
    ]


def test_passages_as_llm_passages() -> None:
    cite = Citation(doc_id="d1", doc_version="v1", path="finance/eu.docx", title="EU travel")
    passages = [Passage(ref=2, text=HOTELS, citation=cite)]
    assert grounding.check("Paris hotels are capped at EUR 200 a night [2].", passages).supported


def test_the_embedding_score_supports_a_paraphrase_the_words_miss() -> None:
    answer = "Rooms cost at most EUR 200 per night in the capital cities [2]."
    lexical_only = grounding.check(answer, PASSAGES)
    assert not lexical_only.supported  # "rooms", "cost", "capital", "cities" ... not all in the passage

    def near(texts):  # a fake embedder that calls this answer and the passage's sentence the same thing
        return [[1.0, 0.0] if ("EUR 200" in t) else [0.0, 1.0] for t in texts]

    report = grounding.check(answer, PASSAGES, embed=near)
    assert report.supported and report.sentences[0].semantic == pytest.approx(1.0)
    # Still, a changed number is not rescued by similarity.
    assert not grounding.check(answer.replace("200", "250"), PASSAGES, embed=near).supported


def test_one_embedding_call_for_the_whole_check() -> None:
    model = MemoryEmbeddings(dimension=32)
    grounding.check("Up to 5 unused days may be carried over [1]. Paris is EUR 200 [2].", PASSAGES, embed=model.embed)
    assert len(model.calls) == 1


def test_an_identifier_is_also_its_letters_and_digits_but_a_number_is_not_joined() -> None:
    terms = grounding.term_set("Replace BRK-220-S; error E-4012 at 10.5 bar.")
    assert {"brk-220-s", "brk220s", "e-4012", "e4012", "10.5"} <= terms
    assert "105" not in terms
    assert grounding.check(
        "The agent reported E4012 when it lost contact [1].", {1: "E-4012: the agent lost contact."}
    ).supported
    assert not grounding.check("The drive reported 105 bar [1].", {1: "The drive reported 10.5 bar."}).supported


def test_a_text_is_findable_by_the_acronyms_of_its_words_but_a_question_asks_only_what_it_writes() -> None:
    text = "Tier 1 systems have a recovery time objective of 1 hour; sign in with multi-factor authentication."
    assert {"rto", "mfa"} <= grounding.findable_terms(text)
    assert "rto" not in grounding.term_set(text)
    assert grounding.check("The RTO of tier 1 systems is 1 hour [1].", {1: text}).supported


def test_a_place_is_findable_by_the_words_that_name_it() -> None:
    text = "Full-time employees in the Netherlands receive 27 days of paid holiday; the EU policy covers them."
    terms = grounding.findable_terms(text)
    assert {"dutch", "europ", "european"} <= terms  # "Dutch staff", "in Europe"
    assert "japanes" not in terms and "dutch" not in grounding.term_set(text)
