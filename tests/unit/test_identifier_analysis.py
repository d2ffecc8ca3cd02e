"""search.identifier_terms: what the identifier field indexes; Boosts: which BM25 clauses a query gets; and
search.keyword_query: which queries are keyword queries, with what terms."""

from __future__ import annotations

import pytest

from agentplatform.search import (
    KEYWORD_QUERY_TERMS,
    MAX_TOKEN_CHARS,
    Boosts,
    Chunk,
    KeywordQuery,
    chunk_document,
    identifier_terms,
    keyword_query,
)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("Error E-4012.", ["e-4012", "e4012"]),
        ("part BRK-220-S,", ["brk-220-s", "brk220s"]),
        ("see INC-2291", ["inc-2291", "inc2291"]),
        ("section 4.2.1 of it", ["4.2.1", "421"]),
        ("set max_retry_count", ["max_retry_count", "maxretrycount"]),
        ("E4012 and v2", ["e4012", "v2"]),
        ("3rd floor", ["3rd"]),
        ("path /etc/app-1/conf", ["etc/app-1/conf", "etcapp1conf"]),
        ("report at speakup.corvane.com.", ["speakup.corvane.com", "speakupcorvanecom"]),
        ("mail IT-Help@Corvane.com", ["it-help@corvane.com", "ithelpcorvanecom"]),
        ("set server.tls.enabled", ["server.tls.enabled", "servertlsenabled"]),
    ],
)
def test_identifiers_are_kept_whole_and_without_separators(text: str, terms: list[str]) -> None:
    assert identifier_terms(text) == terms


@pytest.mark.parametrize(
    "text",
    ["e.g. this and/or that", "plain words only", "2024 was a year", "well-known", "at Mach 2.5", "see corvane.com"],
)
def test_words_numbers_and_abbreviations_are_not_identifiers(text: str) -> None:
    assert identifier_terms(text) == []


def test_an_identifier_too_long_for_the_analyzer_is_dropped() -> None:
    blob = "a1-" + "b" * MAX_TOKEN_CHARS
    assert identifier_terms(f"{blob} E-1") == ["e-1", "e1"]


def test_the_chunk_document_carries_the_identifier_terms_of_its_title_heading_and_text() -> None:
    chunk = Chunk("c", "t", "d", "v", "Fault INC-7 closed.", title="Model X-100", section="Code E-5")
    assert chunk_document(chunk)["identifiers"] == "x-100 x100 e-5 e5 inc-7 inc7"


def test_boosts_leave_out_zero_weighted_clauses_and_queries_without_identifiers() -> None:
    assert [f for f, _, _ in Boosts().fields("brake E-4012")] == ["text", "title", "identifiers"]  # the defaults
    assert [f for f, _, _ in Boosts(identifiers=0).fields("brake E-4012")] == ["text", "title"]
    assert Boosts(section=0.2, identifiers=2).fields("brake E-4012") == [
        ("text", "brake E-4012", 1.0),
        ("title", "brake E-4012", 0.5),
        ("section", "brake E-4012", 0.2),
        ("identifiers", "e-4012 e4012", 2),
    ]
    assert [f for f, _, _ in Boosts(identifiers=2).fields("brake pads")] == ["text", "title"]
    with pytest.raises(ValueError):
        Boosts(section=-1)


@pytest.mark.parametrize(
    ("text", "identifiers", "words"),
    [
        ("E-3301", {"e3301"}, set()),
        ("E3301", {"e3301"}, set()),  # one identifier, however it is spelled
        ("Corvane Robotics SAS", set(), {"corvane", "robotics", "sas"}),
        ("E-3307 certificate rejected", {"e3307"}, {"certificate", "rejected"}),
        ("BAT-48-LFP-XL weight", {"bat48lfpxl"}, {"weight"}),
        ("Eindhoven  Centraal!", set(), {"eindhoven", "centraal"}),
        ("cafe\u0301 menu", set(), {"caf\u00e9", "menu"}),  # composed, as ingestion writes chunks
    ],
)
def test_a_few_terms_without_a_function_word_are_a_keyword_query(
    text: str, identifiers: set[str], words: set[str]
) -> None:
    assert keyword_query(text) == KeywordQuery(frozenset(identifiers), frozenset(words))


@pytest.mark.parametrize(
    "text",
    ["what does E-3301 mean", "E-3301 in v2", "fan blade crack inspection", "E-1 E-2 E-3 E-4", "", "?!", "  "],
)
def test_questions_longer_queries_and_empty_text_are_not_keyword_queries(text: str) -> None:
    assert keyword_query(text) is None


def test_a_keyword_query_has_at_most_so_many_terms_and_none_the_engines_drop() -> None:
    assert KEYWORD_QUERY_TERMS == 3  # the dev half's choice (docs/retrieval.md); the cases above assume it
    assert keyword_query("fan blade crack inspection", most_terms=4) == KeywordQuery(
        frozenset(), frozenset({"fan", "blade", "crack", "inspection"})
    )
    blob = "a" * MAX_TOKEN_CHARS
    assert keyword_query(f"{blob} ledger") == KeywordQuery(frozenset(), frozenset({"ledger"}))
    assert keyword_query(blob) is None
